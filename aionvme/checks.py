"""Argument checks of the public API (and the size parser of addresses and
configuration files): a bad value raises InterfaceError naming
the argument and its limit, before anything reaches a queue.  They sit on the
command path, so the good case is one type test and one comparison."""
from __future__ import annotations

import re
from typing import Any

from aionvme._core import Buffer
from aionvme.exceptions import InterfaceError


def integer(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int within ``lo..hi`` (bool and float are refused)."""
    if type(value) is int and lo <= value <= hi:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InterfaceError(f"{name} must be an int, not {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise InterfaceError(f"{name} {value:#x} is outside {lo:#x}..{hi:#x}")
    return value


def dwords(**values: Any) -> None:
    """Each keyword an unsigned 32-bit command dword (cdw10 ... cdw15, nsid)."""
    for name, value in values.items():
        integer(name, value, 0, 0xFFFFFFFF)


def buffer(name: str, value: Any, required: bool = False) -> Any:
    if value is None and not required:
        return None
    if type(value) is not Buffer and not isinstance(value, Buffer):
        raise InterfaceError(f"{name} must be an aionvme.Buffer, not {type(value).__name__}")
    return value


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(value: Any, name: str) -> int:
    """``"8T"``, ``"512M"`` or an int, in bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([KMGT]?)i?B?\s*", str(value), re.I)
    if not m:
        raise InterfaceError(f"{name} {value!r} is not a size like 4096, '512M' or '8T'")
    return int(m.group(1)) * _UNITS[m.group(2).upper()]
