"""A parsed admin SQE and the answer of a handler to it: ``(status, cdw0)``,
where status is the 15-bit Status Field (``err()`` builds it from a status of
``aionvme.spec.status``)."""
from __future__ import annotations

import struct
from typing import NamedTuple

from aionvme.spec import status as S

SQE = struct.Struct("<BBHIIIQQQIIIIII")

OK = (0, 0)


def err(status: S.Status, dnr: bool = True) -> tuple[int, int]:
    """A handler's answer: the Status Field and cdw0 0."""
    return (status.field(dnr), 0)


class Cmd(NamedTuple):
    raw: bytes
    opcode: int
    flags: int
    cid: int
    nsid: int
    prp1: int
    prp2: int
    cdw10: int
    cdw11: int
    cdw12: int
    cdw13: int
    cdw14: int
    cdw15: int

    @classmethod
    def parse(cls, raw: bytes) -> "Cmd":
        (op, fl, cid, nsid, _c2, _c3, _mptr, p1, p2,
         c10, c11, c12, c13, c14, c15) = SQE.unpack(raw)
        return cls(raw, op, fl, cid, nsid, p1, p2, c10, c11, c12, c13, c14, c15)
