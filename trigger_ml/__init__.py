"""trigger-ml: from a jet-flavour tagger to bit-exact FPGA firmware (see README.md)."""

from trigger_ml.numerics import pin_cpu_isa

pin_cpu_isa()  # before TensorFlow starts: the same weights on every x86-64 machine
