"""``qemu`` / ``qemu:KEY=VALUE,...`` addresses.

Keys aionvme uses itself: ``size`` (each namespace, default 1G), ``lba_size``
(512 or 4096), ``namespaces`` (how many, default 1).  Every other key goes
to QEMU's ``-device nvme`` as it is, e.g. ``qemu:mdts=5,max_ioqpairs=8``.
"""
from __future__ import annotations

import dataclasses
import re

from aionvme.exceptions import InterfaceError
from aionvme.sim.config import parse_size

OUR_KEYS = {"size", "lba_size", "namespaces"}


@dataclasses.dataclass
class QemuConfig:
    size: int = 1 << 30
    lba_size: int = 512
    namespaces: int = 1
    device_opts: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def vectors(self) -> int:
        return min(64, int(self.device_opts.get("msix_qsize", "64")))

    @classmethod
    def from_address(cls, address: str) -> "QemuConfig":
        cfg = cls()
        opts = address.split(":", 1)[1] if ":" in address else ""
        for item in filter(None, opts.split(",")):
            key, sep, value = item.partition("=")
            if not sep or not re.fullmatch(r"[a-z_][a-z0-9_.-]*", key) or "," in value:
                raise InterfaceError(f"qemu option {item!r} is not KEY=VALUE")
            if key == "size":
                cfg.size = parse_size(value, "size")
            elif key == "lba_size":
                cfg.lba_size = int(value)
            elif key == "namespaces":
                cfg.namespaces = int(value)
            else:
                cfg.device_opts[key] = value
        if cfg.lba_size not in (512, 4096):
            raise InterfaceError(f"lba_size {cfg.lba_size} must be 512 or 4096")
        if not 1 <= cfg.namespaces <= 16:
            raise InterfaceError(f"namespaces {cfg.namespaces} is outside 1..16")
        if cfg.size < 1 << 20 or cfg.size % cfg.lba_size:
            raise InterfaceError(f"size {cfg.size} must be at least 1 MiB and whole LBAs")
        cfg.device_opts.setdefault("msix_qsize", "64")
        cfg.device_opts.setdefault("serial", "AIONVME-QEMU-0001")
        if not 1 <= int(cfg.device_opts["msix_qsize"]) <= 64:
            raise InterfaceError("msix_qsize must be within 1..64")
        return cfg
