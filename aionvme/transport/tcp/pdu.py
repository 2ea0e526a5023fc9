"""The NVMe/TCP PDU codec (NVMe/TCP Transport Specification 1.0): pure, no I/O.

Every PDU starts with the 8-byte common header (type, flags, HLEN, PDO, PLEN),
then its PDU-specific header (HLEN bytes in all), a header digest (HDGST),
padding up to PDO, the data, and a data digest (DDGST).  Both digests are
CRC32C, sent little-endian, and present only when negotiated by
ICReq/ICResp; IC and termination PDUs never carry them.

``PduReader`` takes the byte stream of one connection and returns whole
PDUs; anything malformed raises ``PduError`` with the Fatal Error Status
the termination PDU reports.  ``encode()`` builds a PDU to send.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from aionvme._core import crc32c
from aionvme.transport.tcp.errors import (FES_DATA_LIMIT_EXCEEDED, FES_HDR_DIGEST_ERR,
                                          FES_INVALID_PDU_HDR, FES_PDU_SEQ_ERR,
                                          FES_UNSUPPORTED_PARAM, PduError)

# PDU types
ICREQ, ICRESP, H2C_TERM, C2H_TERM, CMD, RSP, H2C_DATA, C2H_DATA, R2T = 0, 1, 2, 3, 4, 5, 6, 7, 9
TYPE_NAMES = {ICREQ: "ICReq", ICRESP: "ICResp", H2C_TERM: "H2CTermReq", C2H_TERM: "C2HTermReq",
              CMD: "CapsuleCmd", RSP: "CapsuleResp", H2C_DATA: "H2CData", C2H_DATA: "C2HData",
              R2T: "R2T"}
# common header flags
F_HDGST, F_DDGST, F_LAST, F_SUCCESS = 0x01, 0x02, 0x04, 0x08
# ICReq/ICResp DGST field
DGST_HDR, DGST_DATA = 0x01, 0x02

HLEN = {ICREQ: 128, ICRESP: 128, H2C_TERM: 24, C2H_TERM: 24, CMD: 72, RSP: 24,
        H2C_DATA: 24, C2H_DATA: 24, R2T: 24}
FROM_HOST = frozenset((ICREQ, H2C_TERM, CMD, H2C_DATA))
FROM_CONTROLLER = frozenset((ICRESP, C2H_TERM, RSP, C2H_DATA, R2T))
WITH_DATA = frozenset((CMD, H2C_DATA, C2H_DATA))       # PDO/data/DDGST apply
TERM = frozenset((H2C_TERM, C2H_TERM))
NO_DIGESTS = frozenset((ICREQ, ICRESP, H2C_TERM, C2H_TERM))
ALLOWED_FLAGS = {CMD: F_HDGST | F_DDGST, RSP: F_HDGST, R2T: F_HDGST,
                 H2C_DATA: F_HDGST | F_DDGST | F_LAST,
                 C2H_DATA: F_HDGST | F_DDGST | F_LAST | F_SUCCESS}
TERM_MAX_PLEN = 152   # a termination PDU carries at most 128 bytes of the bad PDU's header
DIGEST = 4
COMMON = struct.Struct("<BBBBI")
MIN_MAXH2CDATA = 4096


def digest(data: bytes | memoryview) -> int:
    """CRC32C of ``data``, as HDGST and DDGST carry it."""
    return int(crc32c(data))


@dataclass(slots=True)
class Pdu:
    """One received PDU.  ``header`` is the whole header (HLEN bytes, common
    header included); ``data`` the data (empty when none); ``ddgst_ok`` is
    False when the data digest did not match."""
    type: int
    flags: int
    hlen: int
    pdo: int
    plen: int
    header: bytes
    data: bytes
    ddgst_ok: bool = True

    @property
    def name(self) -> str:
        return TYPE_NAMES.get(self.type, f"type {self.type:#x}")


def _pad_to(n: int, align: int) -> int:
    return (n + align - 1) // align * align


def encode(ptype: int, specific: bytes, data: bytes | memoryview = b"", *, flags: int = 0,
           hdgst: bool = False, ddgst: bool = False, pda: int = 0) -> bytes:
    """A PDU of type ``ptype`` with PDU-specific header ``specific`` (HLEN - 8
    bytes) and ``data``.  ``pda`` is the receiver's PDU data alignment (its
    HPDA or CPDA, in dwords, 0's based)."""
    hlen = 8 + len(specific)
    digests = ptype not in NO_DIGESTS
    hd = DIGEST if hdgst and digests else 0
    if hd:
        flags |= F_HDGST
    if ptype in TERM:
        pdo, plen, dd = 0, hlen + len(data), 0
    elif len(data):
        pdo = _pad_to(hlen + hd, (pda + 1) * 4)
        dd = DIGEST if ddgst else 0
        if dd:
            flags |= F_DDGST
        plen = pdo + len(data) + dd
    else:
        pdo, plen, dd = 0, hlen + hd, 0
    header = COMMON.pack(ptype, flags, hlen, pdo, plen) + specific
    parts = [header]
    if hd:
        parts.append(struct.pack("<I", digest(header)))
    if ptype in TERM:
        parts.append(bytes(data))
    elif len(data):
        parts.append(bytes(pdo - hlen - hd))
        parts.append(bytes(data))
        if dd:
            parts.append(struct.pack("<I", digest(data)))
    return b"".join(parts)


# -- the PDU-specific headers --------------------------------------------------
ICREQ_S = struct.Struct("<HBBI112x")         # PFV, HPDA, DGST, MAXR2T
ICRESP_S = struct.Struct("<HBBI112x")        # PFV, CPDA, DGST, MAXH2CDATA
TERM_S = struct.Struct("<HI10x")             # FES, FEI (at byte 10, not aligned)
DATA_S = struct.Struct("<HHII4x")            # CCCID, TTAG, DATAO, DATAL (H2CData, C2HData, R2T)


def icreq(*, hpda: int = 0, hdgst: bool = False, ddgst: bool = False, maxr2t: int = 0,
          pfv: int = 0) -> bytes:
    dgst = (DGST_HDR if hdgst else 0) | (DGST_DATA if ddgst else 0)
    return encode(ICREQ, ICREQ_S.pack(pfv, hpda, dgst, maxr2t))


def icresp(*, cpda: int = 0, hdgst: bool = False, ddgst: bool = False,
           maxh2cdata: int = 1 << 17, pfv: int = 0) -> bytes:
    dgst = (DGST_HDR if hdgst else 0) | (DGST_DATA if ddgst else 0)
    return encode(ICRESP, ICRESP_S.pack(pfv, cpda, dgst, maxh2cdata))


def term(ptype: int, fes: int, fei: int = 0, bad_header: bytes = b"") -> bytes:
    """H2CTermReq or C2HTermReq with the header of the PDU in error (at most 128 bytes)."""
    return encode(ptype, TERM_S.pack(fes, fei & 0xFFFFFFFF), bad_header[:TERM_MAX_PLEN - 24])


def capsule_cmd(sqe: bytes, data: bytes | memoryview = b"", **kw: object) -> bytes:
    if len(sqe) != 64:
        raise ValueError(f"an SQE is 64 bytes, not {len(sqe)}")
    return encode(CMD, sqe, data, **kw)  # type: ignore[arg-type]


def capsule_resp(cqe: bytes, **kw: object) -> bytes:
    if len(cqe) != 16:
        raise ValueError(f"a CQE is 16 bytes, not {len(cqe)}")
    return encode(RSP, cqe, **kw)  # type: ignore[arg-type]


def data_pdu(ptype: int, cccid: int, offset: int, data: bytes | memoryview, *, ttag: int = 0,
             last: bool = False, success: bool = False, **kw: object) -> bytes:
    flags = (F_LAST if last else 0) | (F_SUCCESS if success else 0)
    return encode(ptype, DATA_S.pack(cccid, ttag, offset, len(data)), data, flags=flags,
                  **kw)  # type: ignore[arg-type]


def r2t(cccid: int, ttag: int, offset: int, length: int, **kw: object) -> bytes:
    return encode(R2T, DATA_S.pack(cccid, ttag, offset, length), **kw)  # type: ignore[arg-type]


def data_fields(pdu: Pdu) -> tuple[int, int, int, int]:
    """CCCID, TTAG, DATAO, DATAL of an H2CData, C2HData or R2T PDU; for the data
    PDUs DATAL must be the length of the data the PDU carries."""
    cccid, ttag, datao, datal = DATA_S.unpack_from(pdu.header, 8)
    if pdu.type != R2T and datal != len(pdu.data):
        raise PduError(f"{pdu.name} DATAL {datal} differs from its {len(pdu.data)} bytes of data",
                       FES_INVALID_PDU_HDR, 16, pdu.header)
    if pdu.type == R2T and datal == 0:
        raise PduError("R2T asks for 0 bytes", FES_INVALID_PDU_HDR, 16, pdu.header)
    return cccid, ttag, datao, datal


def term_fields(pdu: Pdu) -> tuple[int, int]:
    fes, fei = TERM_S.unpack_from(pdu.header, 8)
    return int(fes), int(fei)


def check_icreq(pdu: Pdu) -> tuple[int, bool, bool, int]:
    """HPDA, HDGST, DDGST, MAXR2T of a host's ICReq, checked."""
    pfv, hpda, dgst, maxr2t = ICREQ_S.unpack_from(pdu.header, 8)
    if pfv != 0:
        raise PduError(f"ICReq PFV {pfv} is not 0 (version 1.0)", FES_UNSUPPORTED_PARAM, 8,
                       pdu.header)
    if hpda > 31:
        raise PduError(f"ICReq HPDA {hpda} is above 31", FES_UNSUPPORTED_PARAM, 10, pdu.header)
    if dgst & ~(DGST_HDR | DGST_DATA):
        raise PduError(f"ICReq DGST {dgst:#x} has reserved bits", FES_INVALID_PDU_HDR, 11,
                       pdu.header)
    return hpda, bool(dgst & DGST_HDR), bool(dgst & DGST_DATA), maxr2t


def check_icresp(pdu: Pdu, *, hdgst: bool, ddgst: bool) -> tuple[int, int]:
    """CPDA, MAXH2CDATA of a controller's ICResp, checked against what the host asked."""
    pfv, cpda, dgst, maxh2cdata = ICRESP_S.unpack_from(pdu.header, 8)
    if pfv != 0:
        raise PduError(f"ICResp PFV {pfv} is not 0", FES_UNSUPPORTED_PARAM, 8, pdu.header)
    if cpda > 31:
        raise PduError(f"ICResp CPDA {cpda} is above 31", FES_UNSUPPORTED_PARAM, 10, pdu.header)
    if bool(dgst & DGST_HDR) != hdgst or bool(dgst & DGST_DATA) != ddgst or dgst & ~3:
        raise PduError(f"ICResp DGST {dgst:#x} is not what the ICReq asked "
                       f"({int(hdgst) | int(ddgst) << 1:#x})", FES_UNSUPPORTED_PARAM, 11, pdu.header)
    if maxh2cdata < MIN_MAXH2CDATA or maxh2cdata % 4:
        raise PduError(f"ICResp MAXH2CDATA {maxh2cdata} is below 4096 or not a multiple of 4",
                       FES_INVALID_PDU_HDR, 12, pdu.header)
    return cpda, maxh2cdata


class PduReader:
    """Splits one connection's byte stream into PDUs and checks each header.

    ``side`` is the receiver: "controller" accepts the host's PDU types,
    "host" the controller's.  Set ``hdgst``/``ddgst``/``pda``/``ic_done``
    once ICReq/ICResp are exchanged; ``max_data`` bounds the data of one PDU
    (MAXH2CDATA for H2CData; ``max_capsule_data`` bounds in-capsule data)."""

    def __init__(self, side: str, *, max_data: int = 1 << 17,
                 max_capsule_data: int = 8192) -> None:
        if side not in ("host", "controller"):
            raise ValueError(f"side {side!r} is not 'host' or 'controller'")
        self.side = side
        self.accept = FROM_HOST if side == "controller" else FROM_CONTROLLER
        self.hdgst = False
        self.ddgst = False
        self.pda = 0          # what the peer must align its data to (dwords, 0's based)
        self.ic_done = False
        self.max_data = max_data
        self.max_capsule_data = max_capsule_data
        self._buf = bytearray()
        self._need = 8        # bytes of the PDU now being read that must be there
        self._checked = False  # the header of the PDU at the start of _buf was checked

    def feed(self, chunk: bytes | bytearray | memoryview) -> list[Pdu]:
        """Append ``chunk``; return the PDUs now complete.  Raises PduError."""
        self._buf += chunk
        out: list[Pdu] = []
        buf = self._buf
        pos = 0
        while len(buf) - pos >= 8:
            ptype, flags, hlen, pdo, plen = COMMON.unpack_from(buf, pos)
            if not self._checked:
                self._check_common(bytes(buf[pos:pos + 8]), ptype, flags, hlen, pdo, plen)
                self._checked = True
            if len(buf) - pos < plen:
                break
            out.append(self._take(memoryview(buf)[pos:pos + plen], ptype, flags, hlen, pdo, plen))
            self._checked = False
            pos += plen
            if ptype in TERM:
                break  # nothing after a termination PDU counts
        if pos:
            del buf[:pos]
        return out

    def _check_common(self, ch: bytes, ptype: int, flags: int, hlen: int, pdo: int,
                      plen: int) -> None:
        def bad(msg: str, fei: int, fes: int = FES_INVALID_PDU_HDR) -> PduError:
            return PduError(msg, fes, fei, ch)
        if ptype not in self.accept:
            raise bad(f"PDU type {ptype:#x} is not one a {self.side} receives", 0)
        name = TYPE_NAMES[ptype]
        if ptype not in TERM and (ptype in (ICREQ, ICRESP)) == self.ic_done:
            raise bad(f"{name} {'after' if self.ic_done else 'before'} connection initialization",
                      0, FES_PDU_SEQ_ERR)
        if hlen != HLEN[ptype]:
            raise bad(f"{name} HLEN {hlen} is not {HLEN[ptype]}", 2)
        hd = DIGEST if self.hdgst and ptype not in NO_DIGESTS else 0
        if flags & ~ALLOWED_FLAGS.get(ptype, 0):
            raise bad(f"{name} FLAGS {flags:#x} has bits this PDU type does not define", 1)
        if bool(flags & F_HDGST) != bool(hd):
            raise bad(f"{name} HDGSTF is {flags & 1} but header digests are "
                      f"{'on' if hd else 'off'}", 1)
        if flags & F_DDGST and not self.ddgst:
            raise bad(f"{name} DDGSTF is set but data digests are off", 1)
        if ptype in TERM:
            if pdo != 0:
                raise bad(f"{name} PDO {pdo} is not 0", 3)
            if not hlen <= plen <= TERM_MAX_PLEN:
                raise bad(f"{name} PLEN {plen} is outside {hlen}..{TERM_MAX_PLEN}", 4)
            return
        if plen < hlen + hd:
            raise bad(f"{name} PLEN {plen} is shorter than its header ({hlen + hd})", 4)
        if ptype not in WITH_DATA or plen == hlen + hd:
            if pdo != 0:
                raise bad(f"{name} PDO {pdo} is not 0 (the PDU has no data)", 3)
            if plen != hlen + hd:
                raise bad(f"{name} PLEN {plen} is not {hlen + hd}", 4)
            if ptype in (H2C_DATA, C2H_DATA):
                raise bad(f"{name} carries no data", 4)
            return
        align = (self.pda + 1) * 4
        if pdo < hlen + hd or pdo % align or pdo - (hlen + hd) >= align:
            raise bad(f"{name} PDO {pdo} is not the first multiple of {align} "
                      f"at or after {hlen + hd}", 3)
        dd = DIGEST if self.ddgst else 0
        if bool(flags & F_DDGST) != bool(dd):
            raise bad(f"{name} DDGSTF is {(flags >> 1) & 1} but data digests are on", 1)
        datalen = plen - pdo - dd
        if datalen <= 0:
            raise bad(f"{name} PLEN {plen} leaves no data after PDO {pdo}", 4)
        limit = self.max_capsule_data if ptype == CMD else self.max_data
        if datalen > limit:
            fes = FES_DATA_LIMIT_EXCEEDED if ptype == H2C_DATA else FES_INVALID_PDU_HDR
            raise bad(f"{name} carries {datalen} bytes of data, more than {limit}", 4, fes)

    def _take(self, raw: memoryview, ptype: int, flags: int, hlen: int, pdo: int,
              plen: int) -> Pdu:
        header = bytes(raw[:hlen])
        hd = DIGEST if self.hdgst and ptype not in NO_DIGESTS else 0
        if hd:
            got = int.from_bytes(raw[hlen:hlen + 4], "little")
            if got != digest(header):
                raise PduError(f"{TYPE_NAMES[ptype]} header digest {got:#010x} does not match "
                               f"{digest(header):#010x}", FES_HDR_DIGEST_ERR, got, header)
        if ptype in TERM:
            return Pdu(ptype, flags, hlen, pdo, plen, header, bytes(raw[hlen:plen]))
        if plen == hlen + hd:
            return Pdu(ptype, flags, hlen, pdo, plen, header, b"")
        dd = DIGEST if self.ddgst else 0
        data = bytes(raw[pdo:plen - dd])
        ok = True
        if dd:
            ok = int.from_bytes(raw[plen - dd:plen], "little") == digest(data)
        return Pdu(ptype, flags, hlen, pdo, plen, header, data, ok)
