"""The firmware's ports as the hls4ml sources declare them: names, sizes, fixed-point types,
interface pragmas, and the integer encoding of values on those types.

Everything is read from the generated C++ (``firmware/<project>.h``, ``defines.h`` and
``<project>.cpp``), not from the configuration, so the specification shipped in a bundle
describes exactly the code in the bundle.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_ml.errors import TriggerMLError

_TYPEDEF = re.compile(r"typedef\s+(ap_u?fixed)\s*<([^>]*)>\s+(\w+)\s*;")
_PARAM = re.compile(r"^\s*(\w+)\s+(\w+)\s*\[([0-9*\s]+)\]\s*$")
_ROUNDING = {
    "AP_TRN": "truncate towards minus infinity",
    "AP_TRN_ZERO": "truncate towards zero",
    "AP_RND": "round half up",
    "AP_RND_CONV": "round half to even",
}
_OVERFLOW = {"AP_WRAP": "wrap around (two's complement)", "AP_SAT": "saturate to the range"}


@dataclass(frozen=True)
class FixedType:
    """An ``ap_fixed``/``ap_ufixed`` type: ``width`` bits, ``integer`` of them above the binary
    point (the sign bit included, Xilinx convention), with its quantization and overflow modes."""

    signed: bool
    width: int
    integer: int
    rounding: str = "AP_TRN"
    overflow: str = "AP_WRAP"

    @classmethod
    def parse(cls, kind: str, args: str) -> FixedType:
        parts = [part.strip() for part in args.split(",")]
        width, integer = int(parts[0]), int(parts[1])
        rounding = parts[2] if len(parts) > 2 else "AP_TRN"
        overflow = parts[3] if len(parts) > 3 else "AP_WRAP"
        return cls(kind == "ap_fixed", width, integer, rounding, overflow)

    @property
    def fractional_bits(self) -> int:
        return self.width - self.integer

    @property
    def lsb(self) -> float:
        return 2.0**-self.fractional_bits

    @property
    def code_range(self) -> tuple[int, int]:
        if self.signed:
            return -(2 ** (self.width - 1)), 2 ** (self.width - 1) - 1
        return 0, 2**self.width - 1

    @property
    def c_type(self) -> str:
        kind = "ap_fixed" if self.signed else "ap_ufixed"
        return f"{kind}<{self.width},{self.integer},{self.rounding},{self.overflow}>"

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Integer codes (value / lsb) of float values converted onto this type, as the C++
        conversion ``ap_fixed(float)`` does it (its rounding and overflow modes)."""
        if self.rounding not in _ROUNDING or self.overflow not in _OVERFLOW:
            raise TriggerMLError(
                f"fixed-point modes {self.rounding}/{self.overflow} of {self.c_type} are not supported here",
                "use AP_TRN/AP_TRN_ZERO/AP_RND/AP_RND_CONV with AP_WRAP/AP_SAT for the ports",
            )
        scaled = np.asarray(values, dtype=np.float64) * 2.0**self.fractional_bits
        rounded = {
            "AP_TRN": np.floor,
            "AP_TRN_ZERO": np.trunc,
            "AP_RND": lambda x: np.floor(x + 0.5),
            "AP_RND_CONV": np.round,
        }[self.rounding](scaled)
        low, high = self.code_range
        if self.overflow == "AP_SAT":
            return np.clip(rounded, low, high).astype(np.int64)
        wrapped = np.mod(rounded.astype(np.int64) - low, 2**self.width) + low
        return wrapped.astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        low, high = self.code_range
        return {
            "c_type": self.c_type,
            "signed": self.signed,
            "width": self.width,
            "integer_bits_including_sign": self.integer,
            "fractional_bits": self.fractional_bits,
            "lsb": self.lsb,
            "code_min": low,
            "code_max": high,
            "value_min": low * self.lsb,
            "value_max": high * self.lsb,
            "rounding": f"{self.rounding}: {_ROUNDING.get(self.rounding, 'see the Vitis HLS user guide')}",
            "overflow": f"{self.overflow}: {_OVERFLOW.get(self.overflow, 'see the Vitis HLS user guide')}",
            "encoding": "code = value / lsb, an integer in two's complement"
            if self.signed
            else "code = value / lsb, an unsigned integer",
        }


@dataclass(frozen=True)
class Port:
    """One array argument of the top function."""

    name: str
    type_name: str
    size_expr: str
    fixed: FixedType
    pragmas: tuple[str, ...]

    @property
    def elements(self) -> int:
        return math.prod(int(factor) for factor in self.size_expr.split("*"))

    @property
    def declaration(self) -> str:
        return f"{self.type_name} {self.name}[{self.size_expr}]"

    def rtl_ports(self) -> str:
        """How the interface pragmas map the array onto RTL ports."""
        text = " ".join(self.pragmas)
        if re.search(rf"ARRAY_RESHAPE variable={self.name} complete", text):
            return (
                f"one {self.fixed.width * self.elements}-bit port `{self.name}`: element e occupies bits "
                f"[{self.fixed.width}*e+{self.fixed.width - 1} : {self.fixed.width}*e] (element 0 in the least "
                "significant bits, the ARRAY_RESHAPE complete convention of Vitis/Vivado HLS)"
            )
        if re.search(rf"ARRAY_PARTITION variable={self.name} complete", text):
            return (
                f"{self.elements} ports `{self.name}_0` ... `{self.name}_{self.elements - 1}` of "
                f"{self.fixed.width} bits each (ARRAY_PARTITION complete)"
            )
        return "see the pragmas"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "c_declaration": self.declaration,
            "elements": self.elements,
            "type_name": self.type_name,
            "type": self.fixed.to_dict(),
            "width": self.fixed.width,
            "fractional_bits": self.fixed.fractional_bits,
            "rtl_ports": self.rtl_ports(),
            "handshake": "ap_vld" if any("ap_vld" in p for p in self.pragmas) else "see the pragmas",
            "pragmas": list(self.pragmas),
        }


@dataclass(frozen=True)
class Interface:
    """The top function ``project`` with its one input and one output array."""

    project: str
    input: Port
    output: Port


def read_interface(project_dir: Path, project: str) -> Interface:
    """Parse the top function, the typedefs and the interface pragmas of an hls4ml project."""
    firmware = project_dir / "firmware"
    try:
        header = (firmware / f"{project}.h").read_text(encoding="utf-8")
        defines = (firmware / "defines.h").read_text(encoding="utf-8")
        source = (firmware / f"{project}.cpp").read_text(encoding="utf-8")
    except FileNotFoundError as error:
        raise TriggerMLError(
            f"{project_dir}: incomplete hls4ml project ({error.filename} missing)",
            "rebuild it with `trigger-ml hls MODEL --force`",
        ) from None
    match = re.search(rf"void\s+{project}\s*\(([^)]*)\)", header)
    params = [_PARAM.match(part) for part in match.group(1).split(",")] if match else []
    if len(params) != 2 or not all(params):
        raise TriggerMLError(
            f"{firmware / (project + '.h')}: expected a top function with one input and one output array",
            "bundles support single-input, single-output io_parallel projects",
        )
    types = {name: FixedType.parse(kind, args) for kind, args, name in _TYPEDEF.findall(defines)}
    pragma_lines = [line.strip() for line in source.splitlines() if line.strip().startswith("#pragma HLS")]
    ports = []
    for param in params:
        type_name, name, size = param.groups()
        if type_name not in types:
            raise TriggerMLError(
                f"{firmware / 'defines.h'}: no ap_fixed typedef for port type {type_name}",
                "bundles support ap_fixed/ap_ufixed ports (io_parallel)",
            )
        pragmas = tuple(
            line for line in pragma_lines if re.search(rf"(variable|port)=(\S*,)?{name}(,|\s|$)", line)
        )
        ports.append(Port(name, type_name, size.replace(" ", ""), types[type_name], pragmas))
    return Interface(project, ports[0], ports[1])
