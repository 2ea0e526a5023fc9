"""Device state that outlives commands: namespaces and their formats,
feature values, SMART/health counters, the error log, power history."""
from __future__ import annotations

import collections
import time
from typing import Any

from aionvme.simulator.config import SimConfig
from aionvme.simulator.features import Features

# LBA formats offered by every namespace (NVM 4.1.5.1): (data size, metadata size).
LBA_FORMATS = [(512, 0), (512, 8), (4096, 0), (4096, 8)]


class NamespaceState:
    def __init__(self, nsid: int, size: int, lba_size: int, file: str | None) -> None:
        self.nsid = nsid
        self.capacity = size
        self.file = file
        self.lbaf = LBA_FORMATS.index((lba_size, 0))

    @property
    def lba_size(self) -> int:
        return LBA_FORMATS[self.lbaf][0]

    @property
    def lba_shift(self) -> int:
        return self.lba_size.bit_length() - 1

    @property
    def nlba(self) -> int:
        return (self.capacity & ~0xFFFF) >> self.lba_shift


class DeviceState:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.features = Features(cfg)
        self.namespaces: dict[int, NamespaceState] = {}
        self.power_cycles = 1
        self.unsafe_shutdowns = 0
        self.clean_shutdown = False
        self.poh_seconds = 0.0
        self._powered_at = time.monotonic()
        self.temperature_k = 313
        self.critical_warning = 0
        self.error_log: collections.deque[bytes] = collections.deque(maxlen=64)
        self.error_count = 0
        self.io_errors_seen = 0  # of the native data path's count (SimCore.take_errors)
        self.extra: dict[str, Any] = {}

    def attach_namespaces(self, core: Any) -> None:
        import os
        for nsid, nc in enumerate(self.cfg.namespaces, 1):
            ns = NamespaceState(nsid, nc.size, nc.lba_size, nc.file)
            fd = os.open(nc.file, os.O_RDWR | os.O_CREAT, 0o644) if nc.file else -1
            core.ns_attach(nsid, nc.size, ns.lba_shift, fd, self.cfg.hugepages)
            self.namespaces[nsid] = ns

    @property
    def power_on_hours(self) -> int:
        return int((self.poh_seconds + time.monotonic() - self._powered_at) // 3600)

    def enabled(self) -> None:
        self.clean_shutdown = False

    def controller_reset(self, core: Any) -> None:
        self.features.reset()
        self.apply_write_cache(core)
        self.apply_error_recovery(core)

    def apply_error_recovery(self, core: Any) -> None:
        """DULBE (Error Recovery bit 16) of each namespace as the data path applies it."""
        for nsid in self.namespaces:
            core.ns_set_dulbe(nsid, bool(self.features.current(0x05, nsid) & (1 << 16)))

    def apply_write_cache(self, core: Any) -> None:
        """The data path caches writes when the Volatile Write Cache feature (5.27.1.4)
        is enabled; it is at power on when a cache is present (the default value)."""
        core.vwc_enabled = int(bool(self.features.current(0x06) & 1 and self.cfg.vwc))

    def power_off(self, core: Any) -> None:
        if not self.clean_shutdown:
            self.unsafe_shutdowns += 1
        self.poh_seconds += time.monotonic() - self._powered_at
        self.features.reset()

    def power_on(self) -> None:
        self.power_cycles += 1
        self.clean_shutdown = False
        self._powered_at = time.monotonic()

    def log_error(self, sqid: int, cid: int, status: int, nsid: int = 0, lba: int = 0) -> None:
        """Add an Error Information Log entry (5.16.1.2)."""
        import struct
        self.error_count += 1
        entry = bytearray(64)
        struct.pack_into("<QHHHHQI", entry, 0, self.error_count, sqid, cid,
                         (status << 1) & 0xFFFE, 0xFFFF, lba, nsid)
        self.error_log.appendleft(bytes(entry))
