"""Feature values of the simulated controller (5.27.1): current, default and
saved values, and which can be saved or changed."""
from __future__ import annotations

from aionvme.simulator.config import SimConfig

ARBITRATION = 0x01
POWER_MANAGEMENT = 0x02
TEMPERATURE_THRESHOLD = 0x04
ERROR_RECOVERY = 0x05
VOLATILE_WRITE_CACHE = 0x06
NUMBER_OF_QUEUES = 0x07
INTERRUPT_COALESCING = 0x08
INTERRUPT_VECTOR_CONFIG = 0x09
ASYNC_EVENT_CONFIG = 0x0B
TIMESTAMP = 0x0E

# Temperature threshold defaults (5.27.1.3): over 85 C, under 0 C, per sensor.
OVER_DEFAULT = 273 + 85
UNDER_DEFAULT = 0


class Features:
    """Values by (fid, sub) where sub is the temperature sensor/threshold type
    or the interrupt vector; 0 for the others."""

    SAVEABLE = {ARBITRATION, POWER_MANAGEMENT, TEMPERATURE_THRESHOLD, ERROR_RECOVERY,
                VOLATILE_WRITE_CACHE, INTERRUPT_COALESCING, INTERRUPT_VECTOR_CONFIG,
                ASYNC_EVENT_CONFIG}
    CHANGEABLE = SAVEABLE | {NUMBER_OF_QUEUES, TIMESTAMP}

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        n = cfg.max_io_queues - 1
        self.defaults: dict[tuple[int, int], int] = {
            (ARBITRATION, 0): 0x7,  # AB: no limit (111b)
            (POWER_MANAGEMENT, 0): 0,
            (VOLATILE_WRITE_CACHE, 0): 1 if cfg.vwc else 0,
            (NUMBER_OF_QUEUES, 0): (n << 16) | n,
            (INTERRUPT_COALESCING, 0): 0,
            (ASYNC_EVENT_CONFIG, 0): 0,
        }
        for sel in range(0, 9):  # TMPSEL 0 composite, 1-8 sensors
            self.defaults[(TEMPERATURE_THRESHOLD, sel << 4 | 0)] = OVER_DEFAULT
            self.defaults[(TEMPERATURE_THRESHOLD, sel << 4 | 1)] = UNDER_DEFAULT
        # Error Recovery is namespace specific: one value per NSID.  DULBE (bit 16)
        # is settable as NSFEAT.DAE says (the native data path applies it).
        for nsid in range(1, len(cfg.namespaces) + 1):
            self.defaults[(ERROR_RECOVERY, nsid)] = 0
        for v in range(cfg.vectors):
            # CD (bit 16): coalescing disabled by default on the admin vector (5.27.1.7)
            self.defaults[(INTERRUPT_VECTOR_CONFIG, v)] = v | ((1 << 16) if v == 0 else 0)
        self.saved = dict(self.defaults)
        self.values = dict(self.defaults)
        self.timestamp_base_ms = 0
        self.timestamp_set_at = 0.0
        self.queues_allocated = False

    def reset(self) -> None:
        """After a Controller Level Reset current values revert to saved ones (4.2)."""
        self.values = dict(self.saved)
        self.queues_allocated = False

    def current(self, fid: int, sub: int = 0) -> int:
        return self.values.get((fid, sub), 0)
