"""Argument checks of the public API: a bad value raises InterfaceError naming
the argument and its limit, before anything reaches a queue."""
from __future__ import annotations

from typing import Any

from aionvme.exceptions import InterfaceError


def integer(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` as an int within ``lo..hi`` (bool and float are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InterfaceError(f"{name} must be an int, not {type(value).__name__} {value!r}")
    if not lo <= value <= hi:
        raise InterfaceError(f"{name} {value:#x} is outside {lo:#x}..{hi:#x}")
    return value


def dwords(**values: Any) -> None:
    """Each keyword an unsigned 32-bit command dword (cdw10 ... cdw15, nsid)."""
    for name, value in values.items():
        integer(name, value, 0, 0xFFFFFFFF)


def qpair(value: Any) -> Any:
    from aionvme.qpair import Qpair
    if not isinstance(value, Qpair):
        raise InterfaceError(f"qpair must be a Qpair, not {type(value).__name__}")
    return value


def buffer(name: str, value: Any, required: bool = False) -> Any:
    from aionvme._core import Buffer
    if value is None and not required:
        return None
    if not isinstance(value, Buffer):
        raise InterfaceError(f"{name} must be an aionvme.Buffer, not {type(value).__name__}")
    return value
