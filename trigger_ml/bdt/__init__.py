"""The boosted-decision-tree peer (issue 17): a scikit-learn gradient-boosted ensemble on the flat
inputs of ``dense-small``, its thresholds and leaf scores quantized as conifer's HLS firmware
holds them, and that firmware (a conifer HLS project) checked bit for bit.

=================  ==============================================================
module             does
=================  ==============================================================
``ensemble``       the trees as arrays, float and quantized evaluation (the emulator)
``train``          the ``train`` stage's run: fit, record the trees and the physics
``csim``           the conifer HLS project, the g++ C simulation of its arithmetic
``cost``           latency and resources from a per-node comparator + adder-tree model
``project``        the ``hls`` stage's project: fidelity, evaluation, cost, report
``markdown``       report.md of a BDT project
=================  ==============================================================
"""
