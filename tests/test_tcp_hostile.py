"""Hostile peers: a fuzz of malformed PDUs against ``aionvme serve`` (the target
still serves afterwards), and fake targets feeding malformed PDUs to the host."""
from __future__ import annotations

import asyncio
import os
import random
import socket
import struct
from typing import Any, AsyncIterator, Callable

import pytest
import pytest_asyncio

from aionvme.exceptions import CommandTimeout
from aionvme.target import Target
from aionvme.target.server import _Connection
from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp import pdu as P
from aionvme.transport.tcp.errors import FES_NAMES, PduError, TermReqReceived, TransportError
from aionvme.transport.tcp.host import TcpQueue, connect

SEED = 20261202
TARGET_CASES = 100_000
HOST_CASES = 20_000


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def target() -> AsyncIterator[Target]:
    async with Target("sim", port=0) as t:
        yield t


class FakeTransport:
    """What a _Connection writes, without a socket."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def write(self, raw: bytes) -> None:
        assert not self.closed, "the target wrote after closing"
        self.out += raw

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("fuzz", 0)


def _templates(hd: bool, dd: bool) -> list[bytes]:
    kw = {"hdgst": hd, "ddgst": dd}
    connect_data = F.connect_data(bytes(16), 0xFFFF, "nqn.2026-12.io.aionvme:sim", "nqn.fuzz")
    return [
        P.capsule_cmd(F.sqe(0x06, 1, flags=F.PSDT_SGL, cdw10=1,
                            dptr=F.sgl(F.SGL_TRANSPORT_DATA_BLOCK, 4096)), **kw),
        P.capsule_cmd(F.connect(0, 31, 0, cid=2), connect_data, **kw),
        P.capsule_cmd(F.sqe(0x01, 3, flags=F.PSDT_SGL, nsid=1,
                            dptr=F.sgl(F.SGL_DATA_BLOCK_OFFSET, 512)), os.urandom(512), **kw),
        P.data_pdu(P.H2C_DATA, 3, 0, b"d" * 256, ttag=1, last=True, **kw),
        P.term(P.H2C_TERM, 1, 0, b"x" * 24),
        P.icreq(hdgst=hd, ddgst=dd),
        P.r2t(1, 1, 0, 512, **kw),
        P.capsule_cmd(F.property_get(0x1C, 4, cid=4), **kw),
    ]


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    b = bytearray(raw)
    for _ in range(rng.randint(1, 3)):
        how = rng.randrange(7)
        if how == 0:      # a common header byte
            b[rng.randrange(8)] = rng.randrange(256)
        elif how == 1:    # PLEN
            struct.pack_into("<I", b, 4, rng.choice([0, 1, 7, 8, len(b) - 1, len(b) + 1,
                                                     rng.randrange(1 << 32), rng.randrange(300)]))
        elif how == 2:    # any byte
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif how == 3:    # HLEN / PDO
            b[2 + rng.randrange(2)] = rng.randrange(256)
        elif how == 4:    # type
            b[0] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 0x7F, 0xFF])
        elif how == 5:    # flags
            b[1] = rng.randrange(256)
        else:             # trailing garbage
            b += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    return bytes(b)


def _answers(out: bytes, hd: bool, dd: bool) -> list[P.Pdu]:
    """The target's output must itself be well-formed PDUs."""
    r = P.PduReader("host", max_data=1 << 24)
    pdus = r.feed(out[:128])
    assert pdus and pdus[0].type == P.ICRESP
    r.ic_done, r.hdgst, r.ddgst = True, hd, dd
    pdus += r.feed(out[128:])
    return pdus


async def test_fuzz_target(target: Target) -> None:
    rng = random.Random(SEED)
    outcomes = {"terminated": 0, "answered": 0, "incomplete": 0}
    fes_seen: set[int] = set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 240
    for i in range(TARGET_CASES):
        hd, dd = rng.random() < 0.3, rng.random() < 0.3
        conn = _Connection(target)
        fake = FakeTransport()
        conn.connection_made(fake)  # type: ignore[arg-type]
        conn.data_received(P.icreq(hdgst=hd, ddgst=dd))
        raw = _mutate(rng, rng.choice(_templates(hd, dd)))
        conn.data_received(raw)           # never raises
        if conn.tasks:
            await asyncio.gather(*list(conn.tasks))
        pdus = _answers(bytes(fake.out), hd, dd)
        terms = [p for p in pdus if p.type == P.C2H_TERM]
        if terms:
            fes, _ = P.term_fields(terms[0])
            assert fes in FES_NAMES and fake.closed and terms[0] is pdus[-1]
            fes_seen.add(fes)
            outcomes["terminated"] += 1
        elif len(pdus) > 1 or conn.closed:
            outcomes["answered"] += 1
        else:
            outcomes["incomplete"] += 1   # a PDU not complete yet: the target waits for the rest
        conn.abort("fuzz case done")
        if i % 2000 == 0:
            assert loop.time() < deadline, f"the fuzz ran out of time after {i} cases"
            await asyncio.sleep(0)
    for c in list(target.connections):
        await c.drained()
    assert sum(outcomes.values()) == TARGET_CASES
    assert outcomes["terminated"] > TARGET_CASES // 2, outcomes
    assert {1, 2, 3}.issubset(fes_seen), fes_seen
    assert not target.associations
    # still serving, over a real socket
    async with await connect(f"tcp://127.0.0.1:{target.port}/{target.nqn}") as c:
        q = await c.create_io_queue(8)
        data = os.urandom(4096)
        await q.submit(F.sqe(0x01, nsid=1, cdw12=7), data_out=data)
        back = bytearray(4096)
        await q.submit(F.sqe(0x02, nsid=1, cdw12=7), data_in=back)
        assert back == data


async def test_command_level_hostility(target: Target) -> None:
    """Well-formed PDUs carrying bad commands get an error status; the queue goes on."""
    async with await connect(f"tcp://127.0.0.1:{target.port}/{target.nqn}") as c:
        q = await c.create_io_queue(8)
        cases = [  # (SQE flags, SGL descriptor, in-capsule data) -> status code
            (0x00, F.sgl(F.SGL_TRANSPORT_DATA_BLOCK, 512), b"", F.SC_INVALID_FIELD),   # PRPs
            (0x40, F.sgl(0x20, 512), b"", F.SC_SGL_INVALID_TYPE),                     # segment
            (0x40, F.sgl(F.SGL_DATA_BLOCK_OFFSET, 600), b"x" * 512, F.SC_SGL_INVALID_LENGTH),
            (0x40, F.sgl(F.SGL_DATA_BLOCK_OFFSET, 512, 8), b"x" * 512, F.SC_SGL_INVALID_OFFSET),
            (0x40, F.sgl(F.SGL_TRANSPORT_DATA_BLOCK, 512), b"x" * 512, F.SC_SGL_INVALID_TYPE),
            (0x40, F.sgl(F.SGL_TRANSPORT_DATA_BLOCK, 1 << 30), b"", F.SC_INVALID_FIELD),  # > MDTS
        ]
        for flags, dptr, data, sc in cases:
            fut = q.loop.create_future()  # type: ignore[union-attr]
            cid = q._free.pop()
            from aionvme.transport.tcp.host import _Slot
            q.slots[cid] = _Slot(fut, b"", None, None)
            q._send(P.capsule_cmd(F.sqe(0x01, cid, flags=flags, nsid=1, dptr=dptr), data))
            cqe = await asyncio.wait_for(fut, 5)
            assert (struct.unpack_from("<H", cqe, 14)[0] >> 1) & 0xFF == sc, (flags, dptr, sc)
        cqe = await c.admin_cmd(F.fabrics_sqe(0x7E), check=False)          # unknown FCTYPE
        assert (struct.unpack_from("<H", cqe, 14)[0] >> 1) & 0xFF == F.SC_INVALID_FIELD
        cqe = await c.admin_cmd(F.connect(0, 31, 0), data_out=bytes(1024), check=False)
        assert (struct.unpack_from("<H", cqe, 14)[0] >> 1) & 0xFF == F.SC_CMD_SEQ_ERROR
        back = bytearray(512)
        assert await q.submit(F.sqe(0x02, nsid=1), data_in=back)


# -- the host against fake targets -------------------------------------------------------
def _host_templates(cid_read: int, cid_write: int, hd: bool, dd: bool) -> list[bytes]:
    kw = {"hdgst": hd, "ddgst": dd}
    cqe = struct.pack("<IIHHHH", 0, 0, 1, 1, cid_read, 0)
    return [
        P.capsule_resp(cqe, hdgst=hd),
        P.data_pdu(P.C2H_DATA, cid_read, 0, b"r" * 4096, last=True, success=True, **kw),
        P.data_pdu(P.C2H_DATA, cid_read, 2048, b"r" * 2048, last=True, **kw),
        P.r2t(cid_write, 7, 0, 4096, hdgst=hd),
        P.term(P.C2H_TERM, 2, 0, b"y" * 8),
    ]


def _queue_on_socketpair(loop: asyncio.AbstractEventLoop, hd: bool, dd: bool
                         ) -> tuple[TcpQueue, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    q = TcpQueue(None, 1, 8, hdgst=hd, ddgst=dd)
    q.sock, q.loop = a, loop
    q.reader.ic_done, q.reader.hdgst, q.reader.ddgst = True, hd, dd
    q.maxh2cdata = 4096
    q.capsule_data = 0
    return q, b


async def test_fuzz_host() -> None:
    rng = random.Random(SEED + 1)
    loop = asyncio.get_running_loop()
    ended = 0
    for i in range(HOST_CASES):
        hd, dd = rng.random() < 0.3, rng.random() < 0.3
        q, peer = _queue_on_socketpair(loop, hd, dd)
        arena = bytearray(b"\xAA" * 12288)
        view = memoryview(arena)[4096:8192]          # the command's buffer, canaries around it
        rd = q.submit(F.sqe(0x02, nsid=1, cdw12=7), data_in=view, timeout=None)
        wr = q.submit(F.sqe(0x01, nsid=1, cdw12=7), data_out=bytes(4096), timeout=None)
        cid_read, cid_write = list(q.slots)
        raw = _mutate(rng, rng.choice(_host_templates(cid_read, cid_write, hd, dd)))
        q._feed(raw)                                  # never raises
        assert arena[:4096] == b"\xAA" * 4096 and arena[8192:] == b"\xAA" * 4096
        if q.closed:
            ended += 1
            assert isinstance(q.error, TransportError)
            for f in (rd, wr):
                assert f.done()
                if not f.cancelled() and f.exception() is not None:
                    assert isinstance(f.exception(), TransportError)
        q.close()
        for f in (rd, wr):
            if f.done() and not f.cancelled():
                f.exception()
        peer.close()
        if i % 2000 == 0:
            await asyncio.sleep(0)
    assert ended > HOST_CASES // 2


class FakeTarget:
    """Answers ICReq, then sends ``bad(cid)`` for the first CapsuleCmd."""

    def __init__(self, bad: Callable[[int], bytes], icresp: bytes | None = P.icresp(),
                 close_after: bool = False) -> None:
        self.bad = bad
        self.icresp = icresp
        self.close_after = close_after
        self.got: list[P.Pdu] = []

    async def handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        reader = P.PduReader("controller")
        try:
            while True:
                chunk = await r.read(65536)
                if not chunk:
                    break
                for pdu in reader.feed(chunk):
                    self.got.append(pdu)
                    if pdu.type == P.ICREQ:
                        reader.ic_done = True
                        if self.icresp is not None:
                            w.write(self.icresp)
                    elif pdu.type == P.CMD:
                        w.write(self.bad(struct.unpack_from("<H", pdu.header, 10)[0]))
                        if self.close_after:
                            await w.drain()
                            return
                await w.drain()
        except (PduError, ConnectionError):
            pass
        finally:
            w.close()


def _cqe(cid: int) -> bytes:
    return struct.pack("<IIHHHH", 0, 0, 0, 0, cid, 0)


@pytest.mark.parametrize("name, bad, error", [
    ("unknown type", lambda cid: struct.pack("<BBBBI", 0x0A, 0, 24, 0, 24) + bytes(16), PduError),
    ("wrong hlen", lambda cid: struct.pack("<BBBBI", P.RSP, 0, 20, 0, 24) + bytes(16), PduError),
    ("unknown CID", lambda cid: P.capsule_resp(_cqe(cid ^ 0x55)), PduError),
    ("C2HData beyond the buffer", lambda cid: P.data_pdu(P.C2H_DATA, cid, 4000, b"z" * 200,
                                                         last=True), PduError),
    ("C2HTermReq", lambda cid: P.term(P.C2H_TERM, 1, 0, b""), TermReqReceived),
    ("closed mid-PDU", lambda cid: P.capsule_resp(_cqe(cid))[:10], TransportError),
])
async def test_fake_target(name: str, bad: Callable[[int], bytes], error: type) -> None:
    fake = FakeTarget(bad, close_after=name == "closed mid-PDU")
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    q = TcpQueue(None, 0, 4)
    try:
        await q.open("127.0.0.1", port, 2.0)
        buf = bytearray(4096)
        with pytest.raises(error) as e:
            await asyncio.wait_for(q.submit(F.sqe(0x06, cdw10=1), data_in=buf, timeout=2.0), 5)
        assert q.closed and q.error is e.value
        assert buf == bytes(4096)          # nothing of the bad PDU landed in the buffer
        if error is PduError:              # the host told the target why
            await asyncio.sleep(0.05)
            assert any(p.type == P.H2C_TERM for p in fake.got), name
        with pytest.raises(TransportError):
            q.submit(F.sqe(0x06), timeout=1)
    finally:
        q.close()
        await asyncio.sleep(0.01)
        server.close()
        await server.wait_closed()


async def test_host_data_digest_error_ends_the_connection() -> None:
    def bad(cid: int) -> bytes:
        raw = bytearray(P.data_pdu(P.C2H_DATA, cid, 0, b"q" * 64, last=True, success=True,
                                   ddgst=True))
        raw[-1] ^= 0xFF
        return bytes(raw)
    fake = FakeTarget(bad, P.icresp(ddgst=True))
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    try:
        q = TcpQueue(None, 0, 4, ddgst=True)
        await q.open("127.0.0.1", server.sockets[0].getsockname()[1], 2.0)
        from aionvme.transport.tcp.errors import DataDigestError
        with pytest.raises(DataDigestError):
            await asyncio.wait_for(q.submit(F.sqe(0x06), data_in=bytearray(64)), 5)
        assert q.closed
    finally:
        server.close()
        await server.wait_closed()


async def test_host_deadlines() -> None:
    silent = FakeTarget(lambda cid: b"", icresp=None)      # never answers ICReq
    server = await asyncio.start_server(silent.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        q = TcpQueue(None, 0, 4)
        with pytest.raises(CommandTimeout):
            await asyncio.wait_for(q.open("127.0.0.1", port, 0.3), 5)
        assert q.closed
        mute = FakeTarget(lambda cid: b"")                  # answers ICReq, no command
        server2 = await asyncio.start_server(mute.handle, "127.0.0.1", 0)
        q2 = TcpQueue(None, 0, 4)
        await q2.open("127.0.0.1", server2.sockets[0].getsockname()[1], 2.0)
        with pytest.raises(CommandTimeout):
            await asyncio.wait_for(q2.submit(F.sqe(0x06), data_in=bytearray(64), timeout=0.3), 5)
        q2.close()
        server2.close()
        await server2.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_fuzz_io_commands_on_a_connected_queue(target: Target) -> None:
    """Random I/O capsules (opcode, flags, NSID, dwords, SGL kind and length,
    in-capsule data) on a connected queue: each gets its CapsuleResp (after R2T
    and H2CData, or C2HData, where the target asks), the simulator behind the
    target runs the valid ones, and the queue stays connected."""
    from aionvme.transport.tcp.host import _Slot
    rng = random.Random(SEED + 2)
    kinds = [F.SGL_DATA_BLOCK_OFFSET, F.SGL_TRANSPORT_DATA_BLOCK, 0x00, 0x20, 0x50, 0xFF]
    async with await connect(f"tcp://127.0.0.1:{target.port}/{target.nqn}") as c:
        q = await c.create_io_queue(16)
        statuses: dict[int, int] = {}
        for i in range(3000):
            opcode = rng.choice([0x00, 0x01, 0x02, 0x04, 0x05, 0x08, 0x09, 0x0C, 0x0D, 0x11,
                                 0x7F, 0x80, 0xFF, rng.randrange(256)])
            nsid = rng.choice([1, 1, 1, 0, 2, 0xFFFFFFFF, rng.randrange(1 << 32)])
            nlb = rng.choice([0, 0, 1, 7, rng.randrange(1 << 16)])
            slba = rng.choice([0, 8, 1 << 20, rng.randrange(1 << 40)])
            cdw13 = rng.choice([0, rng.randrange(1 << 32)])
            kind = rng.choice(kinds)
            length = rng.choice([0, 512, 4096, (nlb + 1) * 512 & 0xFFFFF, rng.randrange(65536)])
            flags = rng.choice([F.PSDT_SGL, F.PSDT_SGL, 0x00, 0x80, F.PSDT_SGL | 1])
            # the data direction: opcode bits 1:0, FCTYPE's for a Fabrics command
            direction = (nsid & 0xFF if opcode == F.FABRICS_OPCODE else opcode) & 3
            inline = b""
            if kind == F.SGL_DATA_BLOCK_OFFSET and direction == 1:
                inline = os.urandom(min(length, 8192) if rng.random() < 0.8
                                    else rng.randrange(1, 8192))
            sqe = F.sqe(opcode, 0, flags=flags, nsid=nsid, cdw10=slba & 0xFFFFFFFF,
                        cdw11=slba >> 32, cdw12=nlb, cdw13=cdw13, dptr=F.sgl(kind, length))
            cid = q._free.pop()
            sqe = sqe[:2] + struct.pack("<H", cid) + sqe[4:]
            fut = q.loop.create_future()  # type: ignore[union-attr]
            out = bytes(length) if direction == 1 else None
            inn = bytearray(length) if direction == 2 else None
            q.slots[cid] = _Slot(fut, sqe, memoryview(out) if out is not None else None,
                                 memoryview(inn) if inn is not None else None)
            q._send(P.capsule_cmd(sqe, inline))
            cqe = await asyncio.wait_for(fut, 10)
            status = struct.unpack_from("<H", cqe, 14)[0] >> 1
            statuses[status] = statuses.get(status, 0) + 1
            assert not q.closed, f"case {i}: the target ended the connection ({q.error})"
        assert len(statuses) > 5 and statuses.get(0, 0) > 0, statuses
        back = bytearray(512)
        await q.submit(F.sqe(0x02, nsid=1), data_in=back)     # still serving


async def test_more_commands_than_the_queue_holds(target: Target) -> None:
    """A host past SQSIZE + 1 outstanding commands broke SQ flow control: the
    target ends the connection with a C2HTermReq (PDU Sequence Error)."""
    from aionvme.transport.tcp.host import _Slot
    async with await connect(f"tcp://127.0.0.1:{target.port}/{target.nqn}") as c:
        q = await c.create_io_queue(2)                   # SQSIZE 1: two commands
        with target.nvme.sim.drop(opcode=0x02, count=-1):
            futs = [q.submit(F.sqe(0x02, nsid=1), data_in=bytearray(512), timeout=None)
                    for _ in range(2)]
            fut = q.loop.create_future()  # type: ignore[union-attr]
            q.slots[7] = _Slot(fut, b"", None, None)        # a third, past the queue
            q._send(P.capsule_cmd(F.sqe(0x02, 7, flags=F.PSDT_SGL, nsid=1,
                                        dptr=F.sgl(F.SGL_TRANSPORT_DATA_BLOCK, 0))))
            with pytest.raises(TermReqReceived) as e:
                await asyncio.wait_for(fut, 5)
            assert e.value.fes == 0x02
            for f in futs:
                with pytest.raises(TransportError):
                    await f
