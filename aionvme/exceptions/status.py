"""One CommandError subclass per status code of the specification, so a test
can expect exactly the status it provokes::

    with pytest.raises(aionvme.exceptions.LbaOutOfRange):
        await nvme0n1.read(qpair, buf, nvme0n1.nsze)

The classes are made from the status tables in aionvme.spec.names; a registry
keyed by (SCT, SC) refuses duplicates.
"""
from __future__ import annotations

import re

from aionvme.exceptions._base import CommandError
from aionvme.spec.names import _BY_SCT

_REGISTRY: dict[tuple[int, int], type[CommandError]] = {}


def _class_name(status: str) -> str:
    words = re.sub(r"[^A-Za-z0-9 ]", " ", status).split()
    return "".join(w[:1].upper() + w[1:] for w in words)


def _register(sct: int, sc: int, name: str) -> type[CommandError]:
    if (sct, sc) in _REGISTRY:
        raise RuntimeError(f"status {sct:02x}/{sc:02x} is registered twice")
    cls = type(_class_name(name), (CommandError,), {
        "__doc__": f"{name} (SCT {sct:#x}, SC {sc:#04x}).",
        "SCT": sct, "SC": sc, "__module__": __name__,
    })
    _REGISTRY[(sct, sc)] = cls
    return cls


for _sct, _table in _BY_SCT.items():
    for _sc, _name in _table.items():
        if _sct == 0 and _sc == 0:
            continue  # success is not an error
        _cls = _register(_sct, _sc, _name)
        globals().setdefault(_cls.__name__, _cls)


def error_class(sct: int, sc: int) -> type[CommandError]:
    """The CommandError subclass for a status, or CommandError itself."""
    return _REGISTRY.get((sct, sc), CommandError)
