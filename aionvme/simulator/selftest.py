"""Device Self-test (5.8) and its log page (5.16.1.7)."""
from __future__ import annotations

import collections
import struct
import time
from typing import TYPE_CHECKING

from aionvme.simulator.command import err
from aionvme.spec import status as S

if TYPE_CHECKING:
    from aionvme.simulator.command import Cmd
    from aionvme.simulator.device import SimDevice

SHORT, EXTENDED, ABORT = 0x1, 0x2, 0xF
# Result codes (Self-test Result Data Structure, byte 0 bits 3:0)
NO_ERROR, ABORTED_BY_COMMAND, ABORTED_BY_RESET, ABORTED_BY_FORMAT = 0x0, 0x1, 0x2, 0x4
FATAL_ERROR, FAILED_SEGMENT_UNKNOWN, FAILED_SEGMENT = 0x5, 0x6, 0x7
# Valid Diagnostic Information (byte 2)
NSID_VALID, FLBA_VALID, SCT_VALID, SC_VALID = 0x1, 0x2, 0x4, 0x8


class Failure:
    """How the next self-test to run to its end fails (``nvme0.sim.selftest_fail``)."""

    def __init__(self, segment: int, fatal: bool, nsid: int | None, lba: int | None,
                 sct: int | None, sc: int | None) -> None:
        self.segment, self.fatal = segment, fatal
        self.nsid, self.lba, self.sct, self.sc = nsid, lba, sct, sc


class SelfTest:
    def __init__(self, dev: "SimDevice") -> None:
        self.dev = dev
        self.current = 0          # STC of the test in progress, 0: none
        self.nsid = 0
        self.started = 0.0
        self.duration = 0.0
        self.generation = 0       # stale timers see a newer generation and do nothing
        self.results: collections.deque[bytes] = collections.deque(maxlen=20)
        self.failures: list[Failure] = []

    def command(self, cmd: "Cmd") -> tuple[int, int]:
        stc = cmd.cdw10 & 0xF
        if cmd.nsid not in (0, 0xFFFFFFFF) and cmd.nsid not in self.dev.state.namespaces:
            return err(S.INVALID_NS)
        if stc == ABORT:
            self.finish(ABORTED_BY_COMMAND)
            return (0, 0)
        if stc not in (SHORT, EXTENDED):
            return err(S.INVALID_FIELD)
        if self.current:
            return err(S.SELF_TEST_IN_PROGRESS)
        self.current, self.nsid = stc, cmd.nsid
        self.started = time.monotonic()
        ms = self.dev.cfg.dst_short_ms if stc == SHORT else self.dev.cfg.dst_extended_ms
        self.duration = ms / 1000
        self.generation += 1
        gen = self.generation
        def done() -> None:
            if gen == self.generation:  # not aborted or restarted since
                self.finish(NO_ERROR, self.failures.pop(0) if self.failures else None)
        self.dev.after(self.duration, done)
        return (0, 0)

    def finish(self, result: int, failure: Failure | None = None) -> None:
        if not self.current:
            return
        entry = bytearray(28)
        nsid, valid, segment = self.nsid, 0, 0
        if failure is not None:
            if failure.fatal:
                result = FATAL_ERROR
            elif failure.segment:
                result, segment = FAILED_SEGMENT, failure.segment
            else:
                result = FAILED_SEGMENT_UNKNOWN
            if failure.nsid is not None:
                nsid = failure.nsid
            if failure.lba is not None:
                valid |= FLBA_VALID
                struct.pack_into("<Q", entry, 16, failure.lba)     # Failing LBA
            if failure.sct is not None:
                valid |= SCT_VALID
                entry[24] = failure.sct & 0x7                      # Status Code Type
            if failure.sc is not None:
                valid |= SC_VALID
                entry[25] = failure.sc & 0xFF                      # Status Code
        if nsid not in (0, 0xFFFFFFFF):
            valid |= NSID_VALID
        entry[0] = (self.current << 4) | result
        entry[1] = segment                                         # Segment Number
        entry[2] = valid                                           # Valid Diagnostic Information
        struct.pack_into("<QI", entry, 4, self.dev.state.power_on_hours, nsid)
        self.results.appendleft(bytes(entry))
        self.current = 0
        self.generation += 1

    def controller_reset(self) -> None:
        # 5.8: a short test is aborted by a Controller Level Reset, an extended one goes on.
        if self.current == SHORT:
            self.finish(ABORTED_BY_RESET)

    def power_off(self) -> None:
        self.finish(ABORTED_BY_RESET)

    def namespace_formatted(self) -> None:
        self.finish(ABORTED_BY_FORMAT)

    def log(self) -> bytes:
        d = bytearray(564)
        if self.current:
            d[0] = self.current
            d[1] = min(99, int(100 * (time.monotonic() - self.started) / self.duration))
        for i, entry in enumerate(self.results):
            d[4 + 28 * i:4 + 28 * (i + 1)] = entry
        for i in range(len(self.results), 20):
            d[4 + 28 * i] = 0xF  # entry not used
        return bytes(d)
