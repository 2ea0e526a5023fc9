"""Readable cmdlog entries: the SQE, the CQE, when, and what they mean."""
from __future__ import annotations

import datetime
import os
import struct
from typing import NamedTuple

from aionvme.spec.names import command_name, status_name

TIMEOUT, DROPPED, KERNEL_ERR = 1, 2, 4


class CmdlogEntry(NamedTuple):
    qid: int
    seq: int
    sqe: bytes
    cqe: bytes
    submit_ns: int
    complete_ns: int
    flags: int
    err: int = 0  # KERNEL_ERR: the errno the kernel failed the command with (no NVMe status)

    @property
    def opcode(self) -> int:
        return self.sqe[0]

    @property
    def cid(self) -> int:
        return struct.unpack_from("<H", self.sqe, 2)[0]

    @property
    def nsid(self) -> int:
        return struct.unpack_from("<I", self.sqe, 4)[0]

    def cdw(self, n: int) -> int:
        """Command dword ``n`` (0..15) of the SQE."""
        return struct.unpack_from("<I", self.sqe, 4 * n)[0]

    @property
    def name(self) -> str:
        return command_name(self.opcode, self.qid == 0)

    @property
    def completed(self) -> bool:
        return self.complete_ns != 0

    @property
    def cdw0(self) -> int:
        return struct.unpack_from("<I", self.cqe, 0)[0]

    @property
    def status(self) -> int:
        """The 15-bit Status Field of the CQE."""
        return struct.unpack_from("<H", self.cqe, 14)[0] >> 1

    @property
    def latency_us(self) -> float | None:
        return (self.complete_ns - self.submit_ns) / 1000 if self.completed else None

    def __str__(self) -> str:
        when = datetime.datetime.fromtimestamp(self.submit_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S.%f")
        cmd = (f"{when} {self.name.upper()} ({self.opcode:02x}) sqid:{self.qid} cid:{self.cid} "
               f"nsid:{self.nsid:x} cdw10:{self.cdw(10):08x} cdw11:{self.cdw(11):08x} "
               f"cdw12:{self.cdw(12):08x}")
        if not self.completed:
            state = "TIMED OUT" if self.flags & TIMEOUT else "DROPPED" if self.flags & DROPPED else "OUTSTANDING"
            return f"{cmd}\n    -> {state}"
        if self.flags & KERNEL_ERR:
            return (f"{cmd}\n    -> KERNEL ERROR {os.strerror(self.err)} (errno {self.err}) "
                    f"latency:{self.latency_us:.1f}us")
        sqhd, sqid, cid, st = struct.unpack_from("<HHHH", self.cqe, 8)
        sct, sc = (st >> 9) & 7, (st >> 1) & 0xFF
        return (f"{cmd}\n    -> {status_name(sct, sc).upper()} ({sct:02x}/{sc:02x}) sqid:{sqid} "
                f"cid:{cid} cdw0:{self.cdw0:x} sqhd:{sqhd:04x} p:{st & 1} m:{(st >> 14) & 1} "
                f"dnr:{st >> 15} latency:{self.latency_us:.1f}us"
                + (" (after its timeout)" if self.flags & TIMEOUT else ""))


class Cmdlog(list):
    """A list of CmdlogEntry that prints one command (and its completion) a line pair."""

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self)


def entries(qid: int, raw: list[tuple]) -> Cmdlog:
    return Cmdlog(CmdlogEntry(qid, *r) for r in raw)
