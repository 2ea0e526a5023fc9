"""The NVMe/TCP PDU codec and the Fabrics structures, with hand-built PDUs."""
from __future__ import annotations

import struct

import pytest

from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp import pdu as P
from aionvme.transport.tcp.errors import (FES_DATA_LIMIT_EXCEEDED, FES_HDR_DIGEST_ERR,
                                          FES_INVALID_PDU_HDR, FES_PDU_SEQ_ERR,
                                          FES_UNSUPPORTED_PARAM, PduError)


def ready(side: str, hdgst: bool = False, ddgst: bool = False, **kw: int) -> P.PduReader:
    r = P.PduReader(side, **kw)
    r.ic_done, r.hdgst, r.ddgst = True, hdgst, ddgst
    return r


def hand(ptype: int, flags: int, hlen: int, pdo: int, plen: int, rest: bytes = b"") -> bytes:
    return struct.pack("<BBBBI", ptype, flags, hlen, pdo, plen) + rest


def test_crc32c_is_castagnoli() -> None:
    assert P.digest(b"123456789") == 0xE3069283  # the CRC-32C check value


def test_icreq_by_hand_and_back() -> None:
    raw = hand(P.ICREQ, 0, 128, 0, 128, struct.pack("<HBBI", 0, 3, 3, 0) + bytes(112))
    assert P.icreq(hpda=3, hdgst=True, ddgst=True) == raw
    r = P.PduReader("controller")
    (pdu,) = r.feed(raw)
    assert P.check_icreq(pdu) == (3, True, True, 0)


def test_stream_split_anywhere() -> None:
    r = ready("controller", hdgst=True, ddgst=True)
    one = P.capsule_cmd(F.sqe(0x01, 7), b"abcd" * 100, hdgst=True, ddgst=True)
    stream = one * 3
    got = []
    for i in range(0, len(stream), 7):
        got += r.feed(stream[i:i + 7])
    assert [len(p.data) for p in got] == [400, 400, 400]
    assert all(p.ddgst_ok for p in got)
    assert got[0].pdo == 72 + 4 and got[0].flags == P.F_HDGST | P.F_DDGST


def test_pdo_follows_the_receivers_alignment() -> None:
    raw = P.capsule_cmd(F.sqe(0x01), b"x" * 16, pda=7)   # 32-byte alignment
    assert raw[3] == 96
    r = ready("controller")
    r.pda = 7
    (pdu,) = r.feed(raw)
    assert pdu.data == b"x" * 16
    r2 = ready("controller")  # the receiver asked for no alignment: 96 is not 72
    with pytest.raises(PduError) as e:
        r2.feed(raw)
    assert (e.value.fes, e.value.fei) == (FES_INVALID_PDU_HDR, 3)


@pytest.mark.parametrize("raw, fes, fei", [
    (hand(0x08, 0, 24, 0, 24, bytes(16)), FES_INVALID_PDU_HDR, 0),           # unknown type
    (hand(P.C2H_DATA, 0, 24, 0, 24, bytes(16)), FES_INVALID_PDU_HDR, 0),     # controller's type
    (hand(P.CMD, 0, 70, 0, 70, bytes(62)), FES_INVALID_PDU_HDR, 2),          # HLEN
    (hand(P.CMD, 0x10, 72, 0, 72, bytes(64)), FES_INVALID_PDU_HDR, 1),       # reserved flag
    (hand(P.CMD, P.F_HDGST, 72, 0, 72, bytes(64)), FES_INVALID_PDU_HDR, 1),  # HDGSTF, digests off
    (hand(P.CMD, 0, 72, 5, 72, bytes(64)), FES_INVALID_PDU_HDR, 3),          # PDO without data
    (hand(P.CMD, 0, 72, 0, 80, bytes(72)), FES_INVALID_PDU_HDR, 3),          # data but PDO 0
    (hand(P.CMD, 0, 72, 0, 60, bytes(64)), FES_INVALID_PDU_HDR, 4),          # PLEN < HLEN
    (hand(P.H2C_DATA, 0, 24, 0, 24, bytes(16)), FES_INVALID_PDU_HDR, 4),     # H2CData, no data
    (hand(P.H2C_DATA, 0, 24, 24, 24 + 8192, bytes(16)), FES_DATA_LIMIT_EXCEEDED, 4),
    (hand(P.CMD, 0, 72, 72, 72 + 8193, bytes(64)), FES_INVALID_PDU_HDR, 4),  # in-capsule limit
    (hand(P.ICREQ, 0, 128, 0, 128, bytes(120)), FES_PDU_SEQ_ERR, 0),         # second ICReq
    (hand(P.H2C_TERM, 0, 24, 0, 200, bytes(16)), FES_INVALID_PDU_HDR, 4),    # TermReq too long
], ids=lambda v: "" if isinstance(v, bytes) else str(v))
def test_malformed_headers(raw: bytes, fes: int, fei: int) -> None:
    r = ready("controller", max_data=4096)
    with pytest.raises(PduError) as e:
        r.feed(raw)
    assert (e.value.fes, e.value.fei) == (fes, fei)
    assert e.value.header[:8] == raw[:8]


def test_before_icreq_only_icreq() -> None:
    with pytest.raises(PduError) as e:
        P.PduReader("controller").feed(P.capsule_cmd(F.sqe(0x06)))
    assert e.value.fes == FES_PDU_SEQ_ERR


def test_header_digest_error_reports_the_digest() -> None:
    raw = bytearray(P.capsule_resp(bytes(16), hdgst=True))
    raw[25] ^= 1   # in the digest
    with pytest.raises(PduError) as e:
        ready("host", hdgst=True).feed(bytes(raw))
    assert e.value.fes == FES_HDR_DIGEST_ERR
    assert e.value.fei == int.from_bytes(raw[24:28], "little")


def test_data_digest_error_is_flagged_not_fatal() -> None:
    raw = bytearray(P.data_pdu(P.C2H_DATA, 1, 0, b"z" * 64, last=True, ddgst=True))
    raw[30] ^= 0xFF
    (pdu,) = ready("host", ddgst=True).feed(bytes(raw))
    assert not pdu.ddgst_ok


def test_data_fields_check_datal() -> None:
    raw = bytearray(P.data_pdu(P.H2C_DATA, 3, 0, b"q" * 32, ttag=9, last=True))
    (pdu,) = ready("controller").feed(bytes(raw))
    assert P.data_fields(pdu) == (3, 9, 0, 32)
    struct.pack_into("<I", raw, 16, 31)
    (pdu,) = ready("controller").feed(bytes(raw))
    with pytest.raises(PduError) as e:
        P.data_fields(pdu)
    assert e.value.fei == 16


def test_icreq_and_icresp_parameters() -> None:
    bad_pfv = P.icreq(pfv=1)
    (pdu,) = P.PduReader("controller").feed(bad_pfv)
    with pytest.raises(PduError) as e:
        P.check_icreq(pdu)
    assert (e.value.fes, e.value.fei) == (FES_UNSUPPORTED_PARAM, 8)
    (pdu,) = P.PduReader("host").feed(P.icresp(maxh2cdata=1000))
    with pytest.raises(PduError):
        P.check_icresp(pdu, hdgst=False, ddgst=False)
    (pdu,) = P.PduReader("host").feed(P.icresp(hdgst=True))
    with pytest.raises(PduError):  # a digest the host did not ask for
        P.check_icresp(pdu, hdgst=False, ddgst=False)


def test_term_pdu_carries_the_bad_header() -> None:
    bad = bytes(range(200))
    raw = P.term(P.C2H_TERM, FES_INVALID_PDU_HDR, 2, bad)
    assert len(raw) == P.TERM_MAX_PLEN
    (pdu,) = P.PduReader("host").feed(raw)
    assert P.term_fields(pdu) == (FES_INVALID_PDU_HDR, 2)
    assert pdu.data == bad[:128]


def test_fabrics_structures() -> None:
    sqe = F.connect(qid=3, sqsize=31, kato_ms=1500, cattr=F.CATTR_DISABLE_SQFLOW)
    assert sqe[0] == 0x7F and sqe[4] == F.FCTYPE_CONNECT and len(sqe) == 64
    c = F.parse_connect(sqe)
    assert (c.qid, c.sqsize, c.kato_ms, c.cattr) == (3, 31, 1500, 4)
    assert F.parse_sgl(sqe) == (F.SGL_DATA_BLOCK_OFFSET, 0, 1024)
    data = F.connect_data(b"h" * 16, 0xFFFF, "nqn.a", "nqn.b")
    d = F.parse_connect_data(data)
    assert (d.hostid, d.cntlid, d.subnqn, d.hostnqn) == (b"h" * 16, 0xFFFF, "nqn.a", "nqn.b")
    assert F.parse_connect_data(bytes(1024)).subnqn is None
    assert F.parse_property(F.property_set(0x14, 4, 0x460001)) == (4, 0x14, 0x460001)
    assert F.parse_property(F.property_get(0x0, 8)) == (8, 0, 0)
    e = F.DiscoveryEntry(subnqn="nqn.x", traddr="10.0.0.1", trsvcid="4420")
    page = F.discovery_log([e, e], 7)
    assert len(page) == 3 * 1024
    assert F.parse_discovery_log(page) == (7, [e, e])


@pytest.mark.parametrize("addr, want", [
    ("tcp://127.0.0.1:4421/nqn.x", ("127.0.0.1", 4421, "nqn.x")),
    ("tcp://127.0.0.1", ("127.0.0.1", 4420, F.DISCOVERY_NQN)),
    (b"127.0.0.1", ("127.0.0.1", 4420, F.DISCOVERY_NQN)),
    ("tcp://[::1]:4430/nqn.y", ("::1", 4430, "nqn.y")),
])
def test_addresses(addr: str | bytes, want: tuple[str, int, str]) -> None:
    assert F.parse_address(addr) == want
    assert F.looks_like_tcp(addr)


def test_bad_addresses() -> None:
    from aionvme.exceptions import InterfaceError
    for bad in ("tcp://", "tcp://h:", "tcp://h:0", "tcp://h:x", "tcp://h:70000"):
        with pytest.raises(InterfaceError):
            F.parse_address(bad)
    assert not F.looks_like_tcp("sim") and not F.looks_like_tcp("0000:01:00.0")
