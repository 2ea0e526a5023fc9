"""Configuration of a simulated SSD: the defaults, and ``sim:PATH.toml``.

Example TOML::

    serial = "SIM0001"
    mdts = 7                  # 2**7 pages of 4 KiB = 512 KiB
    max_io_queues = 64
    [[namespace]]
    size = "8T"               # sparse: memory is used only where written
    lba_size = 512
    file = "/var/tmp/ns1.img" # optional: back it with a file that survives power cycles
"""
from __future__ import annotations

import dataclasses
from typing import Any

from aionvme.checks import parse_size
from aionvme.exceptions import InterfaceError

@dataclasses.dataclass
class NamespaceConfig:
    size: int = 1 << 30
    lba_size: int = 512
    file: str | None = None


@dataclasses.dataclass
class SimConfig:
    serial: str = "AIONVME-SIM-0001"
    model: str = "aionvme simulated SSD"
    firmware: str = "1.0"
    mdts: int = 7               # 2**mdts pages of 4 KiB
    max_io_queues: int = 64
    mqes: int = 1023            # CAP.MQES, 0's based
    vectors: int = 65           # MSI-X table size
    dstrd: int = 0              # CAP.DSTRD: doorbells 4 << dstrd bytes apart (0..2)
    ready_delay_ms: float = 1.0
    shutdown_delay_ms: float = 2.0
    dst_short_ms: float = 300.0
    dst_extended_ms: float = 1500.0
    sanitize_ms: float = 300.0
    sgl: bool = True
    vwc: bool = True            # a volatile write cache is present (and enabled)
    hugepages: bool = False     # media on transparent huge pages: faster copies once written,
                                # but a first write into each 2 MiB region is very slow
    namespaces: list[NamespaceConfig] = dataclasses.field(
        default_factory=lambda: [NamespaceConfig()])

    def check(self) -> "SimConfig":
        if not 0 <= self.mdts <= 9:
            raise InterfaceError(f"mdts {self.mdts} is outside 0..9 (the PRP list limit)")
        if not 1 <= self.max_io_queues <= 64:
            raise InterfaceError(f"max_io_queues {self.max_io_queues} is outside 1..64")
        if not 1 <= self.mqes <= 0xffff:
            raise InterfaceError(f"mqes {self.mqes} is outside 1..65535")
        if not 0 <= self.dstrd <= 2:
            # 65 queues' doorbells, 4 << dstrd bytes each, fill at most the page below the
            # MSI-X table, as the shadow doorbells of Doorbell Buffer Config fill one page
            raise InterfaceError(f"dstrd {self.dstrd} is outside 0..2")
        if not 1 <= self.vectors <= 64 + 1:
            raise InterfaceError(f"vectors {self.vectors} is outside 1..65")
        if not 1 <= len(self.namespaces) <= 16:
            raise InterfaceError(f"{len(self.namespaces)} namespaces: the limit is 1..16")
        for i, ns in enumerate(self.namespaces, 1):
            if ns.lba_size not in (512, 4096):
                raise InterfaceError(f"namespace {i} lba_size {ns.lba_size}: 512 or 4096")
            if ns.size < 1 << 20:
                raise InterfaceError(f"namespace {i} size {ns.size} is below the limit of 1 MiB")
        self.vectors = min(self.vectors, 64)
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SimConfig":
        d = dict(d)
        nss = [NamespaceConfig(size=parse_size(n.get("size", 1 << 30), "size"),
                               lba_size=int(n.get("lba_size", 512)), file=n.get("file"))
               for n in d.pop("namespaces", d.pop("namespace", [{}]))]
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InterfaceError(f"unknown simulator setting(s): {', '.join(sorted(unknown))}")
        return cls(namespaces=nss, **d).check()

    @classmethod
    def from_address(cls, address: str) -> "SimConfig":
        """``sim`` (defaults) or ``sim:PATH.toml``."""
        if address in ("sim", "sim:"):
            return cls().check()
        path = address.split(":", 1)[1]
        try:
            import tomllib
        except ImportError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            with open(path, "rb") as f:
                return cls.from_dict(tomllib.load(f))
        except FileNotFoundError:
            raise InterfaceError(f"simulator config file {path!r} does not exist") from None
