"""The NVMe/TCP host: one non-blocking socket per queue, registered with the
running event loop (``add_reader``/``add_writer``; no thread).

``connect(addr)`` opens the admin queue (ICReq/ICResp, Fabrics Connect),
enables the controller through Property Set of CC, reads Identify
Controller, and keeps the association alive with Keep Alive at half of
KATO.  ``TcpController.create_io_queue(depth)`` opens an I/O queue (one more
connection).  ``TcpQueue.submit(sqe, data_out=, data_in=, timeout=)`` sends
any 64-byte SQE (the queue sets its CID and SGL) and returns an awaitable of
the 16-byte CQE.  Writes go in the capsule up to the in-capsule limit, else
as H2CData after the controller's R2T; reads land in ``data_in`` from
C2HData, never beyond it.

Bad input from the controller (a malformed PDU, a digest error, data beyond
the command's buffer, a response for a CID not outstanding) ends the
connection: an H2CTermReq when the PDU was malformed, then every
outstanding command fails with the TransportError that says why.
"""
from __future__ import annotations

import asyncio
import select
import socket
import struct
import time
import uuid
from typing import Any

from aionvme.exceptions import CommandTimeout, InterfaceError, QueueFullError
from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp import pdu as P
from aionvme.transport.tcp.errors import (FES_DATA_OUT_OF_RANGE, FES_INVALID_PDU_HDR,
                                          DataDigestError, PduError, TermReqReceived,
                                          TransportError)

ADMIN_CAPSULE_DATA = 8192   # the admin queue's in-capsule data size (NVMe/TCP)
DEFAULT_KATO_MS = 5000
CONNECT_TIMEOUT = 5.0
CAPABILITIES = frozenset({"fabrics", "property_access", "keep_alive", "sgl", "discovery"})
# What PCIe has and a TCP controller does not: the API names the transport when asked.
MISSING = {"config_space": "PCI configuration space", "msix": "MSI-X interrupts",
           "prp": "PRP data pointers", "doorbells": "doorbell registers",
           "power_cycle": "power cycling", "flr": "function level reset"}
_CQE = struct.Struct("<IIHHHH")


def default_hostnqn() -> str:
    return f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid5(uuid.NAMESPACE_DNS, socket.gethostname())}"


class _Slot:
    __slots__ = ("fut", "data_out", "data_in", "in_len", "received", "timer", "orphan", "sqe")

    def __init__(self, fut: "asyncio.Future[bytes]", sqe: bytes, data_out: memoryview | None,
                 data_in: memoryview | None) -> None:
        self.fut = fut
        self.sqe = sqe
        self.data_out = data_out
        self.data_in = data_in
        self.in_len = len(data_in) if data_in is not None else 0
        self.received = 0
        self.timer: asyncio.TimerHandle | None = None
        self.orphan = False   # its deadline passed: the CID waits for the late response


class TcpQueue:
    """One NVMe/TCP queue (a connection): the admin queue (qid 0) or an I/O queue."""

    def __init__(self, ctrl: "TcpController | None", qid: int, depth: int, *,
                 hdgst: bool = False, ddgst: bool = False) -> None:
        if not 2 <= depth <= 65536:
            raise InterfaceError(f"depth {depth} is outside 2..65536")
        self.ctrl = ctrl
        self.qid = qid
        self.depth = depth
        self.hdgst = hdgst
        self.ddgst = ddgst
        self.reader = P.PduReader("host", max_data=1 << 24)
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.cpda = 0
        self.maxh2cdata = P.MIN_MAXH2CDATA
        self.capsule_data = ADMIN_CAPSULE_DATA
        self.error: Exception | None = None
        self.slots: dict[int, _Slot] = {}
        self._free = list(range(depth - 1, -1, -1))
        self._out = bytearray()
        self._writing = False
        self._icresp: "asyncio.Future[P.Pdu] | None" = None
        self.bad_pdus = 0
        self.closed = False
        self.sent = 0        # commands sent
        self.completed = 0   # responses taken
        self.last_cid = -1   # the CID submit() used last

    # -- life cycle ------------------------------------------------------------------
    async def open(self, host: str, port: int, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        deadline = time.monotonic() + timeout
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except OSError as e:
            raise TransportError(f"{host}:{port}: no such address ({e})") from e
        except asyncio.TimeoutError:
            raise CommandTimeout(f"{host}:{port}: name lookup took over {timeout} s") from None
        family, stype, proto, _, sockaddr = infos[0]
        sock = socket.socket(family, stype, proto)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), timeout)
        except OSError as e:
            sock.close()
            raise TransportError(f"cannot connect to {host}:{port}: {e.strerror or e}") from e
        except asyncio.TimeoutError:
            sock.close()
            raise CommandTimeout(f"cannot connect to {host}:{port} within {timeout} s") from None
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        loop.add_reader(sock.fileno(), self._on_readable)
        self._icresp = loop.create_future()
        self._send(P.icreq(hpda=0, hdgst=self.hdgst, ddgst=self.ddgst))
        try:
            pdu = await asyncio.wait_for(asyncio.shield(self._icresp),
                                         max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            self.close(TransportError(f"no ICResp from {host}:{port} within {timeout} s"))
            raise CommandTimeout(f"no ICResp from {host}:{port} within {timeout} s") from None
        if self.error is not None:
            raise self.error
        try:
            self.cpda, self.maxh2cdata = P.check_icresp(pdu, hdgst=self.hdgst, ddgst=self.ddgst)
        except PduError as e:
            self._fatal(e)
            raise
        self.reader.ic_done, self.reader.hdgst, self.reader.ddgst = True, self.hdgst, self.ddgst

    def close(self, why: Exception | None = None) -> None:
        """Close the connection; outstanding commands fail with ``why``."""
        if self.closed:
            return
        self.closed = True
        if why is None:
            why = TransportError(f"queue {self.qid} was closed")
        if self.error is None:
            self.error = why
        if self.sock is not None and self.loop is not None:
            fd = self.sock.fileno()
            if fd >= 0:
                self.loop.remove_reader(fd)
                self.loop.remove_writer(fd)
            self.sock.close()
        if self._icresp is not None and not self._icresp.done():
            self._icresp.set_exception(self.error)
            self._icresp.exception()  # retrieved: open() raises self.error itself
        for cid, slot in list(self.slots.items()):
            self._finish(cid, exc=self.error)

    def _fatal(self, e: Exception) -> None:
        """A fatal transport error: tell the controller (H2CTermReq for a bad PDU), close."""
        if self.closed:
            return
        if isinstance(e, PduError):
            self.bad_pdus += 1
            try:
                self._flush_now(P.term(P.H2C_TERM, e.fes, e.fei, e.header), 0.1)
            except OSError:
                pass
        self.close(e)

    # -- sending -------------------------------------------------------------------------
    def _send(self, raw: bytes) -> None:
        if self.closed or self.sock is None:
            raise self.error or TransportError(f"queue {self.qid} is closed")
        if not self._out:
            try:
                n = self.sock.send(raw)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                self._fatal(TransportError(f"queue {self.qid}: send failed: {e}"))
                raise self.error  # type: ignore[misc]
            if n == len(raw):
                return
            raw = raw[n:]
        self._out += raw
        if not self._writing and self.loop is not None:
            self._writing = True
            self.loop.add_writer(self.sock.fileno(), self._on_writable)

    def _on_writable(self) -> None:
        if self.closed or self.sock is None:
            return
        try:
            n = self.sock.send(self._out)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._fatal(TransportError(f"queue {self.qid}: send failed: {e}"))
            return
        del self._out[:n]
        if not self._out:
            self._writing = False
            assert self.loop is not None
            self.loop.remove_writer(self.sock.fileno())

    def _flush_now(self, extra: bytes, timeout: float) -> None:
        """Write everything pending and ``extra`` before returning (blocking, bounded)."""
        assert self.sock is not None
        self._out += extra
        deadline = time.monotonic() + timeout
        while self._out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("the socket did not take the data in time")
            select.select([], [self.sock], [], left)
            try:
                n = self.sock.send(self._out)
            except (BlockingIOError, InterruptedError):
                continue
            del self._out[:n]

    # -- receiving -------------------------------------------------------------------------
    def _on_readable(self) -> None:
        if self.closed or self.sock is None:
            return
        try:
            chunk = self.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self._fatal(TransportError(f"queue {self.qid}: receive failed: {e}"))
            return
        if not chunk:
            self._fatal(TransportError(f"queue {self.qid}: the controller closed the connection"))
            return
        self._feed(chunk)

    def _feed(self, chunk: bytes) -> None:
        try:
            for pdu in self.reader.feed(chunk):
                self._on_pdu(pdu)
                if self.closed:
                    return
        except (PduError, TransportError) as e:
            self._fatal(e)

    def _on_pdu(self, pdu: P.Pdu) -> None:
        t = pdu.type
        if t == P.RSP:
            cqe = pdu.header[8:24]
            cid = _CQE.unpack(cqe)[4]
            slot = self.slots.get(cid)
            if slot is None:
                raise PduError(f"a CapsuleResp for CID {cid}, which is not outstanding",
                               FES_INVALID_PDU_HDR, 8 + 12, pdu.header)
            self._finish(cid, cqe=cqe)
        elif t == P.C2H_DATA:
            cccid, _ttag, datao, datal = P.data_fields(pdu)
            slot = self.slots.get(cccid)
            if slot is None or slot.in_len == 0:
                raise PduError(f"C2HData for CID {cccid}, which reads no data",
                               FES_INVALID_PDU_HDR, 8, pdu.header)
            if datao != slot.received or datao + datal > slot.in_len:
                raise PduError(f"C2HData of {datal} bytes at offset {datao}: the command's "
                               f"buffer is {slot.in_len} bytes, {slot.received} received",
                               FES_DATA_OUT_OF_RANGE, 12, pdu.header)
            if not pdu.ddgst_ok:
                raise DataDigestError(f"queue {self.qid}: C2HData for CID {cccid} failed "
                                      f"its data digest")
            if pdu.flags & P.F_SUCCESS and not pdu.flags & P.F_LAST:
                raise PduError("C2HData has SUCCESS without LAST", FES_INVALID_PDU_HDR, 1,
                               pdu.header)
            if slot.data_in is not None:   # None once its deadline passed: the data is dropped
                slot.data_in[datao:datao + datal] = pdu.data
            slot.received = datao + datal
            if pdu.flags & P.F_SUCCESS:
                self._finish(cccid, cqe=_CQE.pack(0, 0, 0, self.qid, cccid, 0))
        elif t == P.R2T:
            cccid, ttag, offset, length = P.data_fields(pdu)
            slot = self.slots.get(cccid)
            if slot is None or slot.data_out is None:
                raise PduError(f"R2T for CID {cccid}, which writes no data",
                               FES_INVALID_PDU_HDR, 8, pdu.header)
            if offset + length > len(slot.data_out):
                raise PduError(f"R2T for {length} bytes at {offset}: the command has "
                               f"{len(slot.data_out)}", FES_DATA_OUT_OF_RANGE, 12, pdu.header)
            end = offset + length
            step = self.maxh2cdata
            for off in range(offset, end, step):
                n = min(step, end - off)
                self._send(P.data_pdu(P.H2C_DATA, cccid, off, slot.data_out[off:off + n],
                                      ttag=ttag, last=off + n == end, hdgst=self.hdgst,
                                      ddgst=self.ddgst, pda=self.cpda))
        elif t == P.C2H_TERM:
            fes, fei = P.term_fields(pdu)
            self.close(TermReqReceived("controller", fes, fei))
        elif t == P.ICRESP:
            if self._icresp is not None and not self._icresp.done():
                self._icresp.set_result(pdu)

    def _finish(self, cid: int, *, cqe: bytes | None = None, exc: Exception | None = None) -> None:
        slot = self.slots.pop(cid)
        self._free.append(cid)
        self.completed += 1
        if slot.timer is not None:
            slot.timer.cancel()
        if slot.orphan or slot.fut.done():
            return
        if exc is not None:
            slot.fut.set_exception(exc)
        else:
            slot.fut.set_result(cqe)  # type: ignore[arg-type]

    # -- commands -----------------------------------------------------------------------
    @property
    def outstanding(self) -> int:
        return len(self.slots)

    def submit(self, sqe: bytes, data_out: Any = None, data_in: Any = None,
               timeout: float | None = 5.0) -> "asyncio.Future[bytes]":
        """Send ``sqe`` (64 bytes; CID, PSDT and data pointer are set here) with
        ``data_out`` (host to controller) or ``data_in`` (controller to host);
        the future's result is the 16-byte CQE."""
        if self.closed:
            raise self.error or TransportError(f"queue {self.qid} is closed")
        if len(sqe) != 64:
            raise InterfaceError(f"sqe is {len(sqe)} bytes, not 64")
        if data_out is not None and data_in is not None:
            raise InterfaceError("a command has data_out or data_in, not both")
        out = memoryview(data_out).cast("B") if data_out is not None else None
        inn = memoryview(data_in).cast("B") if data_in is not None else None
        if inn is not None and inn.readonly:
            raise InterfaceError("data_in must be writable")
        if not self._free:
            raise QueueFullError(f"queue {self.qid} has {self.depth} commands outstanding, "
                                 f"its depth")
        assert self.loop is not None
        cid = self._free.pop()
        length = len(out) if out is not None else len(inn) if inn is not None else 0
        in_capsule = out is not None and 0 < length <= self.capsule_data
        kind = F.SGL_DATA_BLOCK_OFFSET if in_capsule else F.SGL_TRANSPORT_DATA_BLOCK
        raw = bytearray(sqe)
        raw[1] = (raw[1] & 0x3) | F.PSDT_SGL
        struct.pack_into("<H", raw, 2, cid)
        raw[24:40] = F.sgl(kind, length)
        fut: asyncio.Future[bytes] = self.loop.create_future()
        slot = _Slot(fut, bytes(raw), out, inn)
        self.slots[cid] = slot
        try:
            self._send(P.capsule_cmd(bytes(raw), out if in_capsule else b"",  # type: ignore[arg-type]
                                     hdgst=self.hdgst, ddgst=self.ddgst, pda=self.cpda))
        except BaseException:
            if cid in self.slots:
                del self.slots[cid]
                self._free.append(cid)
            raise
        self.sent += 1
        self.last_cid = cid
        if timeout:
            slot.timer = self.loop.call_later(timeout, self._expire, cid, slot, timeout)
        return fut

    def _expire(self, cid: int, slot: _Slot, timeout: float) -> None:
        if self.slots.get(cid) is not slot or slot.fut.done():
            return
        slot.orphan = True  # the CID stays taken until its response, which is dropped
        slot.data_in = None
        slot.fut.set_exception(CommandTimeout(
            f"queue {self.qid}: command {slot.sqe[0]:#04x} (CID {cid}) got no response "
            f"within {timeout} s"))

    def submit_sync(self, sqe: bytes, timeout: float) -> bytes:
        """``submit`` without a running loop turn: send and read the socket until
        the response arrives (for synchronous register access)."""
        fut = self.submit(sqe, timeout=None)
        deadline = time.monotonic() + timeout
        assert self.sock is not None
        try:
            self._flush_now(b"", timeout)
            while not fut.done():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommandTimeout(f"queue {self.qid}: no response within {timeout} s")
                r, _, _ = select.select([self.sock], [], [], left)
                if r:
                    self._on_readable()
        except BaseException:
            if not fut.done():
                fut.cancel()
                for cid, s in self.slots.items():
                    if s.fut is fut:
                        s.orphan = True
            raise
        return fut.result()


class TcpController:
    """A fabrics controller over NVMe/TCP: properties, admin queue, I/O queues.

    Example:
        >>> c = await connect("tcp://127.0.0.1:4420/nqn.2026-12.io.aionvme:sim")
        >>> hex(await c.get_property(0x1C))        # CSTS
        >>> q = await c.create_io_queue(64)
        >>> cqe = await q.submit(sqe, data_in=buf)
        >>> await c.close()
    """

    transport = "tcp"
    capabilities = CAPABILITIES

    def __init__(self, host: str, port: int, subnqn: str, *, hostnqn: str | None = None,
                 hostid: bytes | None = None, hdgst: bool = False, ddgst: bool = False,
                 kato_ms: int | None = None, admin_depth: int = 32,
                 timeout: float = CONNECT_TIMEOUT) -> None:
        self.host, self.port, self.subnqn = host, port, subnqn
        self.hostnqn = hostnqn or default_hostnqn()
        self.hostid = hostid if hostid is not None else uuid.uuid5(
            uuid.NAMESPACE_DNS, self.hostnqn).bytes
        if len(self.hostid) != 16:
            raise InterfaceError(f"hostid is {len(self.hostid)} bytes, not 16")
        self.hdgst, self.ddgst = hdgst, ddgst
        self.discovery = subnqn == F.DISCOVERY_NQN
        if kato_ms is None:
            kato_ms = 0 if self.discovery else DEFAULT_KATO_MS
        if not 0 <= kato_ms <= 0xFFFFFFFF:
            raise InterfaceError(f"kato_ms {kato_ms} is outside 0..0xffffffff")
        self.kato_ms = kato_ms
        if not 2 <= admin_depth <= 4096:
            raise InterfaceError(f"admin_depth {admin_depth} is outside 2..4096")
        self.timeout = timeout
        self.admin = TcpQueue(self, 0, admin_depth, hdgst=hdgst, ddgst=ddgst)
        self.io_queues: dict[int, TcpQueue] = {}
        self.cntlid = 0
        self.cap = 0
        self.vs = 0
        self.id_ctrl = b""
        self.keep_alives = 0
        self._ka_task: asyncio.Task[None] | None = None
        self.closed = False

    def __repr__(self) -> str:
        return f"<TcpController {self.host}:{self.port} {self.subnqn} cntlid={self.cntlid}>"

    async def __aenter__(self) -> "TcpController":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def missing(self, capability: str) -> InterfaceError:
        """The typed error for something PCIe has and NVMe/TCP has not."""
        what = MISSING.get(capability, capability)
        return InterfaceError(f"the tcp transport has no {what}")

    async def _connect_queue(self, q: TcpQueue, sqsize: int, cntlid: int) -> int:
        await q.open(self.host, self.port, self.timeout)
        data = F.connect_data(self.hostid, cntlid, self.subnqn, self.hostnqn)
        kato = self.kato_ms if q.qid == 0 else 0
        cqe = await q.submit(F.connect(q.qid, sqsize, kato), data_out=data, timeout=self.timeout)
        cdw0, _, _, _, _, status = _CQE.unpack(cqe)
        if status >> 1:
            q.close()
            raise _connect_error(status, cdw0)
        return cdw0 & 0xFFFF

    async def open(self) -> "TcpController":
        try:
            self.cntlid = await self._connect_queue(self.admin, self.admin.depth - 1, 0xFFFF)
            self.cap = await self.get_property(F.PROP_CAP, 8)
            self.vs = await self.get_property(F.PROP_VS)
            await self.enable()
            buf = bytearray(4096)
            await self.admin_cmd(F.sqe(0x06, cdw10=1), data_in=buf)
            self.id_ctrl = bytes(buf)
            if self.kato_ms:
                self._ka_task = asyncio.get_running_loop().create_task(self._keep_alive())
        except BaseException:
            await self.close()
            raise
        return self

    async def enable(self) -> None:
        """CC.EN = 1 (with 64-byte SQEs and 16-byte CQEs), then wait for CSTS.RDY."""
        await self.set_property(F.PROP_CC, (6 << 16) | (4 << 20) | 1)
        deadline = time.monotonic() + max(1.0, ((self.cap >> 24) & 0xFF) * 0.5)
        while not (await self.get_property(F.PROP_CSTS)) & 1:
            if time.monotonic() > deadline:
                from aionvme.exceptions import ControllerNotReady
                raise ControllerNotReady("CSTS.RDY did not become 1 within CAP.TO")
            await asyncio.sleep(0.001)

    async def _keep_alive(self) -> None:
        period = self.kato_ms / 2000
        while not self.closed and not self.admin.closed:
            await asyncio.sleep(period)
            try:
                await self.admin.submit(F.sqe(0x18), timeout=max(period, 1.0))
                self.keep_alives += 1
            except Exception:
                return

    # -- commands -------------------------------------------------------------------------
    async def admin_cmd(self, sqe: bytes, *, data_out: Any = None, data_in: Any = None,
                        timeout: float | None = None, check: bool = True) -> bytes:
        cqe = await self.admin.submit(sqe, data_out, data_in,
                                      self.timeout if timeout is None else timeout)
        if check and _CQE.unpack(cqe)[5] >> 1:
            raise _status_error(cqe, sqe[0])
        return cqe

    async def get_property(self, offset: int, size: int | None = None) -> int:
        size = size or F.PROP_SIZES.get(offset, 4)
        cqe = await self.admin_cmd(F.property_get(offset, size))
        lo, hi = struct.unpack_from("<II", cqe)
        return lo | (hi << 32) if size == 8 else lo

    async def set_property(self, offset: int, value: int, size: int | None = None) -> None:
        size = size or F.PROP_SIZES.get(offset, 4)
        await self.admin_cmd(F.property_set(offset, size, value))

    def get_property_sync(self, offset: int, size: int | None = None) -> int:
        """Property Get without awaiting (``nvme0[0x1c]``): reads the socket itself."""
        size = size or F.PROP_SIZES.get(offset, 4)
        cqe = self.admin.submit_sync(F.property_get(offset, size), self.timeout)
        if _CQE.unpack(cqe)[5] >> 1:
            raise _status_error(cqe, F.FABRICS_OPCODE)
        lo, hi = struct.unpack_from("<II", cqe)
        return lo | (hi << 32) if size == 8 else lo

    def set_property_sync(self, offset: int, value: int, size: int | None = None) -> None:
        size = size or F.PROP_SIZES.get(offset, 4)
        cqe = self.admin.submit_sync(F.property_set(offset, size, value), self.timeout)
        if _CQE.unpack(cqe)[5] >> 1:
            raise _status_error(cqe, F.FABRICS_OPCODE)

    @property
    def inline_data_size(self) -> int:
        """In-capsule data an I/O command may carry: IOCCSZ * 16 - 64."""
        if len(self.id_ctrl) < 1796:
            return 0
        ioccsz = int.from_bytes(self.id_ctrl[1792:1796], "little")
        return max(0, ioccsz * 16 - 64)

    async def create_io_queue(self, depth: int, qid: int | None = None) -> TcpQueue:
        """Connect I/O queue ``qid`` (the lowest free one by default) of ``depth`` entries."""
        if self.discovery:
            raise InterfaceError("a discovery controller has no I/O queues")
        mqes = (self.cap & 0xFFFF) + 1
        if not 2 <= depth <= mqes:
            raise InterfaceError(f"depth {depth} is outside 2..{mqes} (CAP.MQES + 1)")
        if qid is None:
            qid = next(q for q in range(1, 0xFFFF) if q not in self.io_queues)
        if qid in self.io_queues or not 1 <= qid <= 0xFFFE:
            raise InterfaceError(f"qid {qid} is in use or outside 1..0xfffe")
        q = TcpQueue(self, qid, depth, hdgst=self.hdgst, ddgst=self.ddgst)
        self.io_queues[qid] = q
        try:
            await self._connect_queue(q, depth - 1, self.cntlid)
        except BaseException:
            self.io_queues.pop(qid, None)
            q.close()
            raise
        q.capsule_data = self.inline_data_size
        return q

    async def delete_io_queue(self, q: TcpQueue) -> None:
        """Disconnect (Fabrics) the I/O queue, then close its connection."""
        if not q.closed:
            try:
                await q.submit(F.disconnect(), timeout=self.timeout)
            except Exception:
                pass
            q.close()
        self.io_queues.pop(q.qid, None)

    async def discovery_log(self) -> list[F.DiscoveryEntry]:
        """The Discovery log page (70h): the subsystems this discovery controller lists."""
        head = bytearray(1024)
        await self.admin_cmd(_get_log(0x70, len(head)), data_in=head)
        numrec = int.from_bytes(head[8:16], "little")
        size = F.DLP_HEADER + numrec * F.DLP_ENTRY
        page = bytearray(size)
        await self.admin_cmd(_get_log(0x70, size), data_in=page)
        return F.parse_discovery_log(bytes(page))[1]

    async def close(self, *, shutdown: bool = True) -> None:
        """Disconnect every I/O queue, shut the controller down (CC.SHN), close the admin queue."""
        if self.closed:
            return
        self.closed = True
        if self._ka_task is not None:
            self._ka_task.cancel()
        for q in list(self.io_queues.values()):
            await self.delete_io_queue(q)
        if shutdown and not self.admin.closed and self.cntlid and not self.discovery:
            try:
                cc = await self.get_property(F.PROP_CC)
                await self.set_property(F.PROP_CC, (cc & ~(3 << 14)) | (1 << 14))
            except Exception:
                pass
        self.admin.close()


def _get_log(lid: int, size: int, offset: int = 0) -> bytes:
    numd = size // 4 - 1
    return F.sqe(0x02, cdw10=lid | ((numd & 0xFFFF) << 16), cdw11=numd >> 16,
                 cdw12=offset & 0xFFFFFFFF, cdw13=offset >> 32)


def _status_error(cqe: bytes, opcode: int) -> Exception:
    from aionvme import _core
    from aionvme.exceptions._base import CommandError
    cpl = _core.Completion.from_bytes(bytes(cqe))
    try:
        from aionvme.exceptions.status import error_class  # type: ignore[attr-defined]
        cls = error_class(cpl.sct, cpl.sc)
    except Exception:
        cls = CommandError
    return cls(f"command {opcode:#04x} failed: {cpl.sct:02x}/{cpl.sc:02x}", cpl, opcode)


class ConnectError(TransportError):
    """Fabrics Connect was refused; ``sct``/``sc`` its status, ``ipo``/``iattr``
    the invalid parameter for Connect Invalid Parameters."""

    def __init__(self, message: str, sct: int, sc: int, ipo: int = 0, iattr: int = 0) -> None:
        super().__init__(message)
        self.sct, self.sc, self.ipo, self.iattr = sct, sc, ipo, iattr


_CONNECT_SC = {0x80: "Connect Incompatible Format", 0x81: "Connect Controller Busy",
               0x82: "Connect Invalid Parameters", 0x83: "Connect Restart Discovery",
               0x84: "Connect Invalid Host"}


def _connect_error(status: int, cdw0: int) -> ConnectError:
    sc, sct = (status >> 1) & 0xFF, (status >> 9) & 7
    name = _CONNECT_SC.get(sc, "error") if sct == 1 else f"status {sct:02x}/{sc:02x}"
    ipo, iattr = cdw0 & 0xFFFF, (cdw0 >> 16) & 0xFF
    where = f" (offset {ipo} in the {'data' if iattr & 1 else 'SQE'})" if sct == 1 and sc == 0x82 else ""
    return ConnectError(f"Fabrics Connect refused: {name}{where}", sct, sc, ipo, iattr)


async def connect(addr: str | bytes, **kw: Any) -> TcpController:
    """Connect to ``tcp://HOST[:PORT][/SUBNQN]`` (or the seed's bare ``b'127.0.0.1'``).

    Keywords: ``hostnqn``, ``hostid`` (16 bytes), ``hdgst``, ``ddgst``,
    ``kato_ms`` (default 5000; 0 for discovery), ``admin_depth``, ``timeout``."""
    host, port, nqn = F.parse_address(addr)
    return await TcpController(host, port, nqn, **kw).open()
