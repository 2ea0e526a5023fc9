"""Sanitize (5.24) and the Sanitize Status log page (5.16.1.25)."""
from __future__ import annotations

import struct
import time
from typing import TYPE_CHECKING

from aionvme.simulator.command import err
from aionvme.spec import status as S

if TYPE_CHECKING:
    from aionvme.simulator.command import Cmd
    from aionvme.simulator.device import SimDevice

EXIT_FAILURE, BLOCK_ERASE, OVERWRITE, CRYPTO_ERASE = 1, 2, 3, 4
NEVER, COMPLETED, IN_PROGRESS, FAILED, COMPLETED_NO_DEALLOC = 0, 1, 2, 3, 4
# 8.21: admin commands a controller still runs while a sanitize is in progress.
ALLOWED_ADMIN = {0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0C}
SANITIZE_STATUS_BLOCK = S.SANITIZE_IN_PROGRESS.field()


class Sanitize:
    def __init__(self, dev: "SimDevice") -> None:
        self.dev = dev
        self.status = NEVER
        self.cdw10 = 0
        self.started = 0.0
        self.duration = 0.0
        self.passes = 0           # overwrite passes requested (OWPASS, 0h: 16)
        self.pattern = 0          # the Overwrite Pattern (cdw11)
        self.generation = 0

    @property
    def in_progress(self) -> bool:
        return self.status == IN_PROGRESS

    def blocks(self, opcode: int, admin: bool) -> bool:
        return self.in_progress and (not admin or opcode not in ALLOWED_ADMIN)

    def command(self, cmd: "Cmd") -> tuple[int, int]:
        action = cmd.cdw10 & 0x7
        if self.in_progress:
            return err(S.SANITIZE_IN_PROGRESS)
        if action == EXIT_FAILURE:
            if self.status == FAILED:
                self.status = COMPLETED
            return (0, 0)
        if action not in (BLOCK_ERASE, OVERWRITE, CRYPTO_ERASE) or cmd.nsid not in (0, 0xFFFFFFFF):
            return err(S.INVALID_FIELD)
        self.cdw10 = cmd.cdw10
        self.passes = ((cmd.cdw10 >> 4) & 0xF) or 16 if action == OVERWRITE else 0
        self.pattern = cmd.cdw11 if action == OVERWRITE else 0
        self.start()
        return (0, 0)

    def start(self) -> None:
        self.status = IN_PROGRESS
        self.started = time.monotonic()
        self.duration = self.dev.cfg.sanitize_ms / 1000
        self.generation += 1
        self.dev.core.io_block_status = SANITIZE_STATUS_BLOCK
        gen = self.generation
        def done() -> None:
            if gen == self.generation:  # not restarted since
                self.complete()
        self.dev.after(self.duration, done)

    def final_pattern(self) -> int:
        """What the last overwrite pass leaves: OIPBP (bit 8) inverts the pattern
        between passes, so an even pass count ends on the inverted pattern."""
        oipbp = bool(self.cdw10 & (1 << 8))
        if oipbp and self.passes % 2 == 0:
            return ~self.pattern & 0xFFFFFFFF
        return self.pattern

    def complete(self) -> None:
        ndas = bool(self.cdw10 & (1 << 9))
        overwrite = self.cdw10 & 0x7 == OVERWRITE
        for nsid, ns in self.dev.state.namespaces.items():
            if overwrite and ndas:
                # No-Deallocate After Sanitize: the media keeps what the passes wrote.
                self.dev.core.ns_fill(nsid, self.final_pattern())
            else:
                # Erased and deallocated: reads return what DLFEAT says (zeroes).
                self.dev.core.ns_format(nsid, ns.lba_shift, True)
        self.status = COMPLETED_NO_DEALLOC if ndas else COMPLETED
        self.dev.core.io_block_status = 0
        self.dev.admin.selftest.namespace_formatted()
        self.dev.admin.event(6, 0x01, 0x81)  # I/O command specific: sanitize completed

    def power_on(self) -> None:
        # 8.21: a sanitize interrupted by power loss restarts when power returns.
        if self.in_progress:
            self.start()

    def log(self) -> bytes:
        d = bytearray(512)
        if self.in_progress:
            done = (time.monotonic() - self.started) / self.duration
            sprog = min(0xFFFE, int(0x10000 * done))
            passes = min(self.passes - 1, int(done * self.passes)) if self.passes else 0
        else:
            sprog = 0xFFFF
            passes = self.passes if self.status in (COMPLETED, COMPLETED_NO_DEALLOC) else 0
        # SSTAT bits 7:3: overwrite passes completed
        sstat = self.status | ((passes & 0x1F) << 3)
        # Estimated times (bytes 19:8): overwrite, block erase, crypto erase, in seconds.
        secs = int(self.dev.cfg.sanitize_ms / 1000) or 1
        struct.pack_into("<HHIIII", d, 0, sprog, sstat, self.cdw10, secs, secs, secs)
        return bytes(d)
