"""An NVMe/TCP target in front of an aionvme Controller (the simulator by default).

The target is itself an aionvme host of its backend: admin commands of every
connected host go to the backend controller's admin queue as raw commands,
each host I/O queue (one TCP connection) is a Qpair of its own on the backend.
Each admin Connect creates an association (a fabrics controller of the
dynamic controller model) with its own CNTLID, properties (CAP, VS, CC,
CSTS) and Keep Alive timer; a discovery subsystem answers the Discovery log
page.  ``target.nvme`` is the backend Controller, so ``target.nvme.sim``
injects faults while hosts are connected.

Hostile input from a host gets a C2HTermReq and the connection is closed
(malformed PDUs), or an error status in the CapsuleResp (bad commands).
"""
from __future__ import annotations

import asyncio
import logging
import struct
from dataclasses import dataclass, field
from typing import Any

from aionvme import _core
from aionvme.controller import Controller
from aionvme.exceptions import InterfaceError, NvmeError, QueueDeletedError
from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp import pdu as P
from aionvme.transport.tcp.errors import (FES_DATA_OUT_OF_RANGE, FES_INVALID_PDU_HDR,
                                          FES_PDU_SEQ_ERR, PduError)

log = logging.getLogger("aionvme.target")

DEFAULT_NQN = "nqn.2026-12.io.aionvme:sim"
MAXH2CDATA = 1 << 17
CAPSULE_DATA = 8192          # in-capsule data: the admin queue's fixed 8 KiB, and IOCCSZ
IOCCSZ = (64 + CAPSULE_DATA) // 16
IORCSZ = 1                   # 16-byte response capsules
KAS_100MS = 1                # Keep Alive Support: granularity 100 ms
MAXCMD = 128
PRE_CONNECT_COMMANDS = 32   # outstanding before a Connect sized the queue
DRAIN_GRACE_S = 2.0          # a closed queue's commands may finish for this long

# admin opcodes the target answers itself
OP_DELETE_SQ, OP_CREATE_SQ, OP_GET_LOG, OP_DELETE_CQ, OP_CREATE_CQ = 0x00, 0x01, 0x02, 0x04, 0x05
OP_IDENTIFY, OP_SET_FEATURES, OP_GET_FEATURES, OP_AER, OP_KEEP_ALIVE = 0x06, 0x09, 0x0A, 0x0C, 0x18
OP_DBBUF = 0x7C
FID_NUM_QUEUES, FID_KATO = 0x07, 0x0F
SC_CID_CONFLICT, SC_AER_LIMIT, SC_FEATURE_NOT_SAVEABLE = 0x03, 0x05, 0x0D
SC_ABORTED_SQ_DELETION, SC_INTERNAL = 0x08, 0x06
OP_FORMAT, OP_SANITIZE = 0x80, 0x84

_CQE = struct.Struct("<IIHHHH")


def _status(sct: int, sc: int, dnr: bool = True) -> int:
    """The CQE status field (dword 3 bits 31:17), phase bit 0."""
    return ((sc & 0xFF) << 1) | ((sct & 7) << 9) | (int(dnr) << 15)


@dataclass(slots=True)
class _Cmd:
    """One host command between its CapsuleCmd and its CapsuleResp."""
    cid: int
    sqe: bytes
    direction: int            # opcode bits 1:0 (0 none, 1 host to controller, 2 back)
    length: int               # bytes of data (the SGL length)
    buf: Any = None           # the backend Buffer the data lives in
    received: int = 0         # H2C bytes received so far
    ttag: int = 0
    failed: int = 0           # a status decided before execution (data digest error)
    xfer: int = -1            # bytes the command moves back (-1: the SGL length)
    held: bool = False        # answered later (an AER)


@dataclass
class Association:
    """A fabrics controller: one admin queue connection and its I/O queues."""
    cntlid: int
    subnqn: str
    hostnqn: str
    hostid: bytes
    kato_ms: int
    discovery: bool
    admin: "_Connection"
    cc: int = 0
    csts: int = 0
    queues: dict[int, "_Connection"] = field(default_factory=dict)
    io_queues_granted: int = 0
    aers: list[tuple["_Connection", int]] = field(default_factory=list)
    ka_timer: asyncio.TimerHandle | None = None
    last_seen: float = 0.0
    keep_alives: int = 0
    ended: str = ""


class Target:
    """An NVMe/TCP target exporting ``addr`` (``sim``, ``sim:PATH.toml``, ...).

    Example:
        >>> async with Target("sim", port=0) as t:     # port 0: any free port
        ...     async with await connect(f"tcp://127.0.0.1:{t.port}/{t.nqn}") as c:
        ...         ...
        ...     t.nvme.sim.inject_status(opcode=0x02, sct=2, sc=0x81, count=1)
    """

    def __init__(self, addr: str = "sim", *, host: str = "127.0.0.1", port: int = F.DEFAULT_PORT,
                 nqn: str = DEFAULT_NQN, maxh2cdata: int = MAXH2CDATA) -> None:
        if not 0 <= port < 65536:
            raise InterfaceError(f"port {port} is outside 0..65535")
        if not 0 < len(nqn.encode()) <= 223 or nqn == F.DISCOVERY_NQN:
            raise InterfaceError(f"nqn {nqn!r} must be 1..223 bytes and not the discovery NQN")
        if maxh2cdata < P.MIN_MAXH2CDATA or maxh2cdata % 4:
            raise InterfaceError(f"maxh2cdata {maxh2cdata} must be >= 4096 and a multiple of 4")
        self.addr = addr
        self.host = host
        self.port = port
        self.nqn = nqn
        self.maxh2cdata = maxh2cdata
        self.nvme: Controller = Controller(addr)
        self.associations: dict[int, Association] = {}
        self.connections: set[_Connection] = set()
        self.fatal_errors: list[PduError] = []   # every termination the target sent, for tests
        self._server: asyncio.base_events.Server | None = None
        self._next_cntlid = 1
        self._admin_slots: asyncio.Semaphore | None = None
        self._lba_sizes: dict[int, int] = {}
        self._id_ctrl = b""
        self._cap = 0
        self._vs = 0
        self._genctr = 1

    async def __aenter__(self) -> "Target":
        return await self.start()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def start(self) -> "Target":
        await self.nvme
        self._id_ctrl = self.nvme._id_ctrl
        self._cap = self.nvme.cap
        self._vs = self.nvme[0x08]
        self._admin_slots = asyncio.Semaphore(self.nvme._admin_depth - 2)  # one AER stays out
        self.nvme.register_aer_cb(self._on_backend_aer)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for c in list(self.connections):
            c.abort("target closing")
        for c in list(self.connections):
            await c.drained()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await self.nvme.close()

    async def serve_forever(self) -> None:
        assert self._server is not None
        await self._server.serve_forever()

    # -- what the fabrics controllers show ---------------------------------------
    @property
    def cap(self) -> int:
        """CAP of every fabrics controller: the backend's, with MQES one lower (a
        fabrics queue of SQSIZE + 1 entries holds SQSIZE + 1 commands, a PCIe
        queue one less), CQR set, DSTRD 0 (no doorbells) and NSSRS clear (the
        target offers no NVM Subsystem Reset)."""
        mqes = max(1, min((self._cap & 0xFFFF) - 1, 0xFFFE))
        cap = (self._cap & ~0xFFFF) | mqes | (1 << 16)
        return cap & ~((0xF << 32) | (1 << 36))

    @property
    def mqes(self) -> int:
        return self.cap & 0xFFFF

    def identify_controller(self, assoc: Association, data: bytes) -> bytes:
        """The backend's Identify Controller data as a fabrics controller reports it."""
        d = bytearray(data[:4096].ljust(4096, b"\0"))
        struct.pack_into("<H", d, 78, assoc.cntlid)                  # CNTLID
        d[111] = 2 if assoc.discovery else 1                         # CNTRLTYPE
        struct.pack_into("<H", d, 256, int.from_bytes(d[256:258], "little") & ~(1 << 8))  # no DBBUF
        struct.pack_into("<H", d, 320, KAS_100MS)                    # KAS
        struct.pack_into("<H", d, 514, MAXCMD)                       # MAXCMD
        # SGLS: SGLs supported (bit 0), SGL Offset (bit 20: in-capsule data at an offset)
        struct.pack_into("<I", d, 536, (1 << 0) | (1 << 20))
        d[768:1024] = assoc.subnqn.encode().ljust(256, b"\0")        # SUBNQN
        struct.pack_into("<IIHBBH", d, 1792, IOCCSZ, IORCSZ, 0, 0, 1, 0)  # ICDOFF 0, FCATT 0, MSDBD 1
        if assoc.discovery:
            d[0:4] = bytes(4)
            d[516:520] = bytes(4)                                    # NN: no namespaces
            d[24:64] = b"aionvme discovery controller".ljust(40, b" ")
        return bytes(d)

    def discovery_log(self) -> bytes:
        entries = [F.DiscoveryEntry(subnqn=self.nqn, traddr=self.host, trsvcid=str(self.port),
                                    asqsz=32, adrfam=F.ADRFAM_IPV6 if ":" in self.host
                                    else F.ADRFAM_IPV4)]
        return F.discovery_log(entries, self._genctr)

    def _on_backend_aer(self, cdw0: int, status: int) -> None:
        """An asynchronous event of the backend: every association that has an
        AER outstanding gets it."""
        for assoc in self.associations.values():
            if assoc.aers:
                conn, cid = assoc.aers.pop(0)
                conn.cmds.pop(cid, None)
                conn.respond(cid, cdw0=cdw0, status=(status >> 1) << 1)

    # -- associations ---------------------------------------------------------------
    def new_association(self, conn: "_Connection", subnqn: str, data: F.ConnectData,
                        kato_ms: int) -> Association:
        cntlid = self._next_cntlid
        self._next_cntlid = self._next_cntlid % 0xFFEF + 1  # 1..FFEFh are valid CNTLIDs
        assoc = Association(cntlid, subnqn, data.hostnqn or "", data.hostid, kato_ms,
                            subnqn == F.DISCOVERY_NQN, conn)
        assoc.queues[0] = conn
        self.associations[cntlid] = assoc
        self.restart_keep_alive(assoc)
        return assoc

    def restart_keep_alive(self, assoc: Association) -> None:
        """The Keep Alive Timer starts again: a timer of KATO, which when it fires
        looks at when the association was last heard (cheap per command)."""
        loop = asyncio.get_running_loop()
        assoc.last_seen = loop.time()
        if assoc.kato_ms and not assoc.ended and assoc.ka_timer is None:
            assoc.ka_timer = loop.call_later(assoc.kato_ms / 1000, self._keep_alive_check, assoc)

    def _keep_alive_check(self, assoc: Association) -> None:
        assoc.ka_timer = None
        if assoc.ended or not assoc.kato_ms:
            return
        loop = asyncio.get_running_loop()
        left = assoc.last_seen + assoc.kato_ms / 1000 - loop.time()
        if left > 0:
            assoc.ka_timer = loop.call_later(left, self._keep_alive_check, assoc)
            return
        log.warning("controller %d: keep alive timeout (%d ms): association ended",
                    assoc.cntlid, assoc.kato_ms)
        self.end_association(assoc, "keep alive timeout")

    def end_association(self, assoc: Association, why: str) -> None:
        if assoc.ended:
            return
        assoc.ended = why
        if assoc.ka_timer is not None:
            assoc.ka_timer.cancel()
        self.associations.pop(assoc.cntlid, None)
        for conn in list(assoc.queues.values()):
            conn.abort(why)

    async def reset_backend(self) -> None:
        """Reset the backend controller (its Qpairs are connected again by it)."""
        await self.nvme.reset()
        self._lba_sizes.clear()

    async def lba_size(self, nsid: int) -> int:
        """The LBA data size of namespace ``nsid`` on the backend (0: not an
        active namespace, the backend will say so)."""
        size = self._lba_sizes.get(nsid)
        if size is None:
            from aionvme.namespace import Namespace
            try:
                ns = await Namespace(self.nvme, nsid)
                size = ns.lba_size if ns.nsze else 0
            except NvmeError:
                size = 0
            self._lba_sizes[nsid] = size
        return size


class _Connection(asyncio.Protocol):
    """One TCP connection: one queue of one association."""

    def __init__(self, target: Target) -> None:
        self.t = target
        self.reader = P.PduReader("controller", max_data=target.maxh2cdata,
                                  max_capsule_data=CAPSULE_DATA)
        self.transport: asyncio.Transport | None = None
        self.assoc: Association | None = None
        self.qid = -1
        self.sqsize = 0
        self.sqhd = 0
        self.sqflow = True
        self.hpda = 0
        self.qpair: Any = None
        self.slots: asyncio.Semaphore | None = None
        self.cmds: dict[int, _Cmd] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.closed = False
        self.peer = ""
        self._next_ttag = 1

    # -- asyncio.Protocol ----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.peer = str(transport.get_extra_info("peername"))
        self.t.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            for pdu in self.reader.feed(data):
                self.on_pdu(pdu)
                if self.closed:
                    return
        except PduError as e:
            self.fatal(e)

    def connection_lost(self, exc: Exception | None) -> None:
        self.abort("the host closed the connection" if exc is None else f"connection lost: {exc}")

    # -- ending -------------------------------------------------------------------------
    def fatal(self, e: PduError) -> None:
        """A fatal transport error: C2HTermReq, then the connection closes (and
        with the admin queue, the association)."""
        log.info("%s: %s", self.peer, e)
        self.t.fatal_errors.append(e)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(P.term(P.C2H_TERM, e.fes, e.fei, e.header))
        self.abort(str(e))

    def abort(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        assoc = self.assoc
        if assoc is not None:
            if self.qid == 0:
                self.t.end_association(assoc, why)
            elif assoc.queues.get(self.qid) is self:
                del assoc.queues[self.qid]
        if self.qpair is not None:
            task = asyncio.get_running_loop().create_task(self._drop_qpair())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            self.t.connections.discard(self)

    async def _drop_qpair(self) -> None:
        """The queue's commands already at the backend may finish (what completed
        there stays done), then its backend queue is deleted."""
        qp, self.qpair = self.qpair, None
        try:
            pending = qp._core.pending()
            if pending:
                await asyncio.wait(pending, timeout=DRAIN_GRACE_S)
            await qp.delete()
        except NvmeError:
            pass
        finally:
            self.t.connections.discard(self)

    async def drained(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    # -- sending --------------------------------------------------------------------------
    def send(self, raw: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(raw)

    def respond(self, cid: int, *, cdw0: int = 0, cdw1: int = 0, status: int = 0) -> None:
        """A CapsuleResp: the CQE with this queue's SQ head pointer and its SQID."""
        sqhd = self.sqhd if self.sqflow else 0xFFFF
        cqe = _CQE.pack(cdw0 & 0xFFFFFFFF, cdw1 & 0xFFFFFFFF, sqhd, max(self.qid, 0), cid,
                        status & 0xFFFE)
        self.send(P.capsule_resp(cqe, hdgst=self.reader.hdgst))

    def _send_data(self, cmd: _Cmd, data: bytes | memoryview, ok: bool) -> bool:
        """C2HData for a read; True when the last one carried SUCCESS (no response follows)."""
        n = len(data)
        success = ok and not self.sqflow
        step = 1 << 17
        for off in range(0, n, step):
            last = off + step >= n
            self.send(P.data_pdu(P.C2H_DATA, cmd.cid, off, data[off:off + step], last=last,
                                 success=success and last, hdgst=self.reader.hdgst,
                                 ddgst=self.reader.ddgst, pda=self.hpda))
        return success

    # -- receiving ----------------------------------------------------------------------
    def on_pdu(self, pdu: P.Pdu) -> None:
        if pdu.type == P.ICREQ:
            if pdu.plen != 128:
                raise PduError("ICReq PLEN is not 128", FES_INVALID_PDU_HDR, 4, pdu.header)
            hpda, hd, dd, _maxr2t = P.check_icreq(pdu)
            self.hpda = hpda
            self.send(P.icresp(cpda=0, hdgst=hd, ddgst=dd, maxh2cdata=self.t.maxh2cdata))
            self.reader.ic_done, self.reader.hdgst, self.reader.ddgst = True, hd, dd
        elif pdu.type == P.H2C_TERM:
            fes, fei = P.term_fields(pdu)
            log.info("%s: H2CTermReq FES %#x FEI %#x", self.peer, fes, fei)
            self.abort(f"the host ended the connection (FES {fes:#x})")
        elif pdu.type == P.CMD:
            self.on_capsule(pdu)
        elif pdu.type == P.H2C_DATA:
            self.on_h2c_data(pdu)

    def on_capsule(self, pdu: P.Pdu) -> None:
        sqe = pdu.header[8:72]
        if self.assoc is not None:
            # Any command counts as traffic for the Keep Alive timer, as Linux's
            # nvmet counts it: a host busy with I/O is alive.
            self.t.restart_keep_alive(self.assoc)
        opcode, flags, cid = sqe[0], sqe[1], struct.unpack_from("<H", sqe, 2)[0]
        if self.qid >= 0:
            self.sqhd = (self.sqhd + 1) % (self.sqsize + 1)
        if cid in self.cmds:
            return self.respond(cid, status=_status(0, SC_CID_CONFLICT))
        limit = self.sqsize + 1 if self.qid >= 0 else PRE_CONNECT_COMMANDS
        if len(self.cmds) >= limit:
            # More commands than the queue holds (SQSIZE + 1): the host broke SQ flow
            # control.  Linux's nvmet ends the connection ("out of commands") too.
            raise PduError(f"a command beyond the queue's {limit} entries", FES_PDU_SEQ_ERR, 0,
                           pdu.header)
        fctype = sqe[4] if opcode == F.FABRICS_OPCODE else -1
        direction = (fctype if fctype >= 0 else opcode) & 3
        if flags & 0xC0 != F.PSDT_SGL:
            return self.respond(cid, status=_status(0, F.SC_INVALID_FIELD))
        kind, address, length = F.parse_sgl(sqe)
        cmd = _Cmd(cid, bytes(sqe), direction, length)
        if direction == 3 and length:
            # NVMe/TCP moves a command's data one way; with no data the backend
            # answers the opcode itself (Invalid Opcode, for most).
            return self.respond(cid, status=_status(0, F.SC_INVALID_FIELD))
        if kind == F.SGL_DATA_BLOCK_OFFSET:
            # in-capsule data at offset ADDRESS (ICDOFF is 0)
            if direction != 1:
                return self.respond(cid, status=_status(0, F.SC_SGL_INVALID_TYPE))
            if address != 0 or address + length > len(pdu.data):
                return self.respond(cid, status=_status(0, F.SC_SGL_INVALID_OFFSET
                                                        if address else F.SC_SGL_INVALID_LENGTH))
            if length != len(pdu.data):
                return self.respond(cid, status=_status(0, F.SC_SGL_INVALID_LENGTH))
            cmd.buf = self._buffer(length)
            if cmd.buf is None:
                return self.respond(cid, status=_status(0, SC_INTERNAL, dnr=False))
            cmd.buf[0:length] = pdu.data
            cmd.received = length
            if not pdu.ddgst_ok:
                cmd.failed = _status(0, F.SC_TRANSIENT_TRANSPORT, dnr=False)
        elif kind == F.SGL_TRANSPORT_DATA_BLOCK:
            if pdu.data:
                return self.respond(cid, status=_status(0, F.SC_SGL_INVALID_TYPE))
            if length > self.t.nvme.mdts:
                return self.respond(cid, status=_status(0, F.SC_INVALID_FIELD))
            if length:
                cmd.buf = self._buffer(length)
                if cmd.buf is None:
                    return self.respond(cid, status=_status(0, SC_INTERNAL, dnr=False))
        else:
            return self.respond(cid, status=_status(0, F.SC_SGL_INVALID_TYPE))
        self.cmds[cid] = cmd
        if direction == 1 and cmd.received < length:
            cmd.ttag = self._next_ttag
            self._next_ttag = self._next_ttag % 0xFFFF + 1
            self.send(P.r2t(cid, cmd.ttag, 0, length, hdgst=self.reader.hdgst))
            return
        self._start(cmd)

    def on_h2c_data(self, pdu: P.Pdu) -> None:
        cccid, ttag, datao, datal = P.data_fields(pdu)
        cmd = self.cmds.get(cccid)
        if cmd is None or cmd.direction != 1 or cmd.received >= cmd.length:
            raise PduError(f"H2CData for command {cccid}, which awaits no data",
                           FES_INVALID_PDU_HDR, 8, pdu.header)
        if ttag != cmd.ttag:
            raise PduError(f"H2CData TTAG {ttag} is not the R2T's {cmd.ttag}",
                           FES_INVALID_PDU_HDR, 10, pdu.header)
        if datao != cmd.received or datao + datal > cmd.length:
            raise PduError(f"H2CData of {datal} bytes at {datao} is outside the R2T's "
                           f"{cmd.length - cmd.received} bytes at {cmd.received}",
                           FES_DATA_OUT_OF_RANGE, 12, pdu.header)
        end = datao + datal
        if bool(pdu.flags & P.F_LAST) != (end == cmd.length):
            raise PduError("H2CData LAST flag does not mark the R2T's last data",
                           FES_INVALID_PDU_HDR, 1, pdu.header)
        cmd.buf[datao:end] = pdu.data
        cmd.received = end
        if not pdu.ddgst_ok:
            cmd.failed = _status(0, F.SC_TRANSIENT_TRANSPORT, dnr=False)
        if end == cmd.length:
            self._start(cmd)

    @staticmethod
    def _buffer(length: int) -> Any:
        """The backend Buffer a command's data lives in; None when the DMA arena is
        out of room (the command then fails with Internal Error, as nvmet's
        allocation failures do)."""
        try:
            return _core.Buffer(max(4096, (length + 4095) // 4096 * 4096), "nvme/tcp target")
        except MemoryError:
            return None

    # -- executing --------------------------------------------------------------------------
    def _start(self, cmd: _Cmd) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(cmd))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _execute(self, cmd: _Cmd) -> None:
        status, cdw0, cdw1 = 0, 0, 0
        data: Any = b""
        try:
            if cmd.failed:
                status = cmd.failed
            else:
                res = await self._run(cmd)
                if res is None:  # answered later (an AER), or by the command itself
                    return
                status, cdw0, cdw1, data = res
        except QueueDeletedError:
            status = _status(0, SC_ABORTED_SQ_DELETION, dnr=False)
        except InterfaceError as e:      # the backend queue refused it (e.g. its PRP list limit)
            log.info("%s: command %d refused by the backend: %s", self.peer, cmd.cid, e)
            status = _status(0, F.SC_INVALID_FIELD)
        except NvmeError as e:
            log.info("%s: command %d failed in the target: %s", self.peer, cmd.cid, e)
            status = _status(0, F.SC_DATA_XFER_ERROR, dnr=False)
        finally:
            if not cmd.held:
                self.cmds.pop(cmd.cid, None)
        if self.closed:
            return
        if cmd.direction == 2 and status == 0 and cmd.length:
            n = cmd.length if cmd.xfer < 0 else min(cmd.xfer, cmd.length)
            if not len(data) and cmd.buf is not None:
                data = memoryview(cmd.buf)[:n]
            if len(data) and self._send_data(cmd, data[:n], True):
                return
        self.respond(cmd.cid, cdw0=cdw0, cdw1=cdw1, status=status)

    async def _run(self, cmd: _Cmd) -> tuple[int, int, int, Any] | None:
        sqe = cmd.sqe
        opcode = sqe[0]
        if opcode == F.FABRICS_OPCODE:
            return await self._fabrics(cmd)
        if self.assoc is None:
            return _status(0, F.SC_CMD_SEQ_ERROR), 0, 0, b""
        assoc = self.assoc
        if not assoc.cc & 1 or not assoc.csts & 1:
            return _status(0, F.SC_CMD_SEQ_ERROR), 0, 0, b""
        if self.qid == 0:
            return await self._admin(cmd, assoc)
        return await self._io(cmd)

    # -- Fabrics commands ---------------------------------------------------------------
    async def _fabrics(self, cmd: _Cmd) -> tuple[int, int, int, Any]:
        sqe, fctype = cmd.sqe, cmd.sqe[4]
        ok = (0, 0, 0, b"")
        if fctype == F.FCTYPE_CONNECT:
            return await self._connect(cmd)
        if self.assoc is None:
            return _status(0, F.SC_CMD_SEQ_ERROR), 0, 0, b""
        assoc = self.assoc
        if fctype in (F.FCTYPE_PROPERTY_GET, F.FCTYPE_PROPERTY_SET):
            if self.qid != 0:
                return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
            size, offset, value = F.parse_property(sqe)
            if F.PROP_SIZES.get(offset) != size:
                return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
            if fctype == F.FCTYPE_PROPERTY_GET:
                v = {F.PROP_CAP: self.t.cap, F.PROP_VS: self.t._vs, F.PROP_CC: assoc.cc,
                     F.PROP_CSTS: assoc.csts, F.PROP_NSSR: 0}[offset]  # NSSR reads 0
                return 0, v & 0xFFFFFFFF, v >> 32, b""
            if offset == F.PROP_CC:
                await self._set_cc(assoc, value & 0xFFFFFFFF)
                return ok
            # CAP, VS, CSTS are read only and NSSR is not offered (CAP.NSSRS 0):
            # Invalid Field, as Linux's nvmet answers a Property Set of them
            return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
        if fctype == F.FCTYPE_DISCONNECT:
            if self.qid == 0:
                return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
            loop = asyncio.get_running_loop()
            loop.call_soon(self.abort, "Disconnect")
            return ok
        return _status(0, F.SC_INVALID_FIELD), 0, 0, b""

    def _cc_valid(self, cc: int) -> bool:
        """Whether CC can be honoured when EN goes to 1 (3.1.3.5): MPS within
        CAP.MPSMIN..MPSMAX, a command set CAP.CSS offers, 64-byte SQEs and 16-byte
        CQEs (the sizes Identify SQES/CQES require of an NVM controller)."""
        cap = self.t.cap
        mps, css = (cc >> 7) & 0xF, (cc >> 4) & 7
        capcss = (cap >> 37) & 0xFF
        css_ok = {0: capcss & 1, 6: capcss & (1 << 6), 7: capcss & (1 << 7)}.get(css, 0)
        return (((cap >> 48) & 0xF) <= mps <= ((cap >> 52) & 0xF) and bool(css_ok)
                and (cc >> 16) & 0xF == 6 and (cc >> 20) & 0xF == 4)

    async def _set_cc(self, assoc: Association, cc: int) -> None:
        was = assoc.cc
        assoc.cc = cc
        if cc & 1 and not was & 1:
            if self._cc_valid(cc):
                assoc.csts = (assoc.csts & ~0xE) | 1         # RDY; SHST back to 00b
            else:
                assoc.csts = (assoc.csts & ~0x1) | 2         # CFS: it cannot be honoured
        elif was & 1 and not cc & 1:
            assoc.csts &= ~0x3                              # a controller reset: I/O queues end
            await self._reset_association(assoc)
        if (cc >> 14) & 3 and assoc.csts & 1:
            assoc.csts = (assoc.csts & ~0xC) | (2 << 2)     # SHST: shutdown complete

    async def _reset_association(self, assoc: Association) -> None:
        """CC.EN 1 -> 0: the association's I/O queues end; when it is the only
        association, the backend controller is reset too, so that the host sees
        what a reset does (features back to their saved values, ...)."""
        conns = [c for qid, c in assoc.queues.items() if qid]
        for conn in conns:
            conn.abort("controller reset (CC.EN cleared)")
        for conn in conns:
            await conn.drained()
        others = [a for a in self.t.associations.values() if a is not assoc and not a.discovery]
        if not assoc.discovery and not others:
            await self.t.reset_backend()

    async def _connect(self, cmd: _Cmd) -> tuple[int, int, int, Any]:
        def invalid(offset: int, in_data: bool) -> tuple[int, int, int, Any]:
            return (_status(1, F.SC_CONNECT_INVALID_PARAMETERS),
                    offset | (int(in_data) << 16), 0, b"")
        if self.assoc is not None:
            return _status(0, F.SC_CMD_SEQ_ERROR), 0, 0, b""
        c = F.parse_connect(cmd.sqe)
        if c.recfmt != 0:
            return _status(1, F.SC_CONNECT_INCOMPATIBLE_FORMAT), 0, 0, b""
        if cmd.length < F.CONNECT_DATA_LEN or cmd.buf is None:
            return _status(0, F.SC_SGL_INVALID_LENGTH), 0, 0, b""
        d = F.parse_connect_data(bytes(cmd.buf[0:F.CONNECT_DATA_LEN]))
        if d.subnqn is None or d.subnqn not in (self.t.nqn, F.DISCOVERY_NQN):
            return invalid(256, True)
        if d.hostnqn is None:
            return invalid(512, True)
        if c.sqsize == 0 or c.sqsize > self.t.mqes or (c.qid == 0 and c.sqsize < 1):
            return invalid(44, False)
        if c.qid == 0:
            if d.cntlid not in (0xFFFF, 0xFFFE):
                return invalid(16, True)   # dynamic controller model: any CNTLID only
            self.assoc = self.t.new_association(self, d.subnqn, d, c.kato_ms)
            self.qid, self.sqsize = 0, c.sqsize
            self.sqflow = not c.cattr & F.CATTR_DISABLE_SQFLOW
            self.slots = self.t._admin_slots
            return 0, self.assoc.cntlid, 0, b""
        assoc = self.t.associations.get(d.cntlid)
        if assoc is None or assoc.hostnqn != d.hostnqn or assoc.subnqn != d.subnqn:
            return invalid(16, True)
        if assoc.discovery:
            return invalid(42, False)
        if not assoc.cc & 1 or not assoc.csts & 1:
            return _status(0, F.SC_CMD_SEQ_ERROR), 0, 0, b""
        limit = assoc.io_queues_granted or self.t.nvme.max_io_queues
        if c.qid > limit or c.qid in assoc.queues:
            return invalid(42, False)
        return await self._connect_io(assoc, c)

    async def _connect_io(self, assoc: Association,
                          c: F.ConnectCmd) -> tuple[int, int, int, Any]:
        from aionvme.qpair import Qpair
        busy = (_status(1, F.SC_CONNECT_CONTROLLER_BUSY), 0, 0, b"")
        assoc.queues[c.qid] = self   # reserved while the backend queue is created
        self.assoc, self.qid = assoc, c.qid
        try:
            qp = Qpair(self.t.nvme, min(c.sqsize + 2, (self.t._cap & 0xFFFF) + 1))
        except InterfaceError:       # every backend I/O queue is in use
            del assoc.queues[c.qid]
            self.assoc, self.qid = None, -1
            return busy
        try:
            await qp
        except NvmeError:
            del assoc.queues[c.qid]
            self.assoc, self.qid = None, -1
            return busy
        if self.closed:              # the host went away meanwhile
            await qp.delete()
            return busy
        self.sqsize = c.sqsize
        self.sqflow = not c.cattr & F.CATTR_DISABLE_SQFLOW
        self.qpair = qp
        self.slots = asyncio.Semaphore(qp.depth - 1)
        return 0, 0, 0, b""

    # -- admin commands -----------------------------------------------------------------
    async def _admin(self, cmd: _Cmd, assoc: Association) -> tuple[int, int, int, Any] | None:
        sqe = cmd.sqe
        opcode = sqe[0]
        nsid, = struct.unpack_from("<I", sqe, 4)
        cdw10, cdw11 = struct.unpack_from("<II", sqe, 40)
        ok = (0, 0, 0, b"")
        if opcode == OP_KEEP_ALIVE:
            assoc.keep_alives += 1
            self.t.restart_keep_alive(assoc)
            return ok
        if opcode == OP_AER:
            aerl = self.t._id_ctrl[259] + 1
            if len(assoc.aers) >= aerl:
                return _status(1, SC_AER_LIMIT), 0, 0, b""
            assoc.aers.append((self, cmd.cid))
            cmd.held = True
            return None
        if opcode in (OP_DELETE_SQ, OP_CREATE_SQ, OP_DELETE_CQ, OP_CREATE_CQ, OP_DBBUF):
            return _status(0, F.SC_INVALID_OPCODE), 0, 0, b""  # queues are Connects here
        sel = (cdw10 >> 8) & 7
        if opcode == OP_GET_FEATURES and cdw10 & 0xFF in (FID_KATO, FID_NUM_QUEUES) and sel:
            # 5.27.1: SEL 3 is the capabilities (changeable, not saveable, not
            # namespace specific), SEL 1/2 the default (= saved) value, others reserved
            if sel == 3:
                return 0, 0x4, 0, b""
            if sel > 3:
                return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
            if cdw10 & 0xFF == FID_KATO:
                return 0, 0, 0, b""
            n = self.t.nvme.max_io_queues
            return 0, (n - 1) | ((n - 1) << 16), 0, b""
        if opcode == OP_SET_FEATURES and cdw10 & 0xFF == FID_KATO and cdw10 >> 31:
            return _status(1, SC_FEATURE_NOT_SAVEABLE), 0, 0, b""
        if opcode in (OP_SET_FEATURES, OP_GET_FEATURES) and cdw10 & 0xFF == FID_KATO:
            if opcode == OP_SET_FEATURES:
                assoc.kato_ms = cdw11
                if assoc.ka_timer is not None:   # the new KATO counts from now
                    assoc.ka_timer.cancel()
                    assoc.ka_timer = None
                self.t.restart_keep_alive(assoc)
            return 0, assoc.kato_ms, 0, b""
        if opcode in (OP_SET_FEATURES, OP_GET_FEATURES) and cdw10 & 0xFF == FID_NUM_QUEUES:
            top = self.t.nvme.max_io_queues
            if opcode == OP_SET_FEATURES and cdw10 >> 31:
                return _status(1, SC_FEATURE_NOT_SAVEABLE), 0, 0, b""
            if opcode == OP_SET_FEATURES:
                if cdw11 & 0xFFFF == 0xFFFF or cdw11 >> 16 == 0xFFFF:
                    return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
                n = min(top, max(cdw11 & 0xFFFF, cdw11 >> 16) + 1)
                assoc.io_queues_granted = n
            n = assoc.io_queues_granted or top
            return 0, (n - 1) | ((n - 1) << 16), 0, b""
        if assoc.discovery:
            if opcode == OP_IDENTIFY and cdw10 & 0xFF == 1:
                return 0, 0, 0, self.t.identify_controller(assoc, bytes(4096))[:cmd.length]
            if opcode == OP_GET_LOG and cdw10 & 0xFF == 0x70:
                return self._log_window(cmd, self.t.discovery_log())
            if opcode in (OP_IDENTIFY, OP_GET_LOG, OP_GET_FEATURES, OP_SET_FEATURES):
                return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
            return _status(0, F.SC_INVALID_OPCODE), 0, 0, b""
        if opcode == OP_GET_LOG and cdw10 & 0xFF == 0x70:
            return _status(0, F.SC_INVALID_FIELD), 0, 0, b""   # only the discovery controller
        res = await self._forward(cmd, self.t.nvme._aq)
        if res is None:
            return None
        status, cdw0, cdw1, data = res
        if opcode in (OP_FORMAT, OP_SANITIZE):
            self.t._lba_sizes.clear()   # the LBA format may have changed
        if opcode == OP_IDENTIFY and cdw10 & 0xFF == 1 and status == 0 and cmd.buf is not None:
            patched = self.t.identify_controller(assoc, bytes(cmd.buf[0:4096]))
            return status, cdw0, cdw1, patched[:cmd.length]
        return res

    def _log_window(self, cmd: _Cmd, page: bytes) -> tuple[int, int, int, Any]:
        cdw10, cdw11, cdw12, cdw13 = struct.unpack_from("<IIII", cmd.sqe, 40)
        numd = ((cdw10 >> 16) | ((cdw11 & 0xFFFF) << 16)) + 1
        offset = cdw12 | (cdw13 << 32)
        if offset % 4 or offset > len(page):
            return _status(0, F.SC_INVALID_FIELD), 0, 0, b""
        size = min(numd * 4, cmd.length)
        return 0, 0, 0, page[offset:offset + size].ljust(size, b"\0")

    # -- I/O commands -----------------------------------------------------------------------
    async def _io(self, cmd: _Cmd) -> tuple[int, int, int, Any] | None:
        opcode = cmd.sqe[0]
        if opcode in (0x01, 0x02, 0x05):   # Write, Read, Compare: the SGL must cover NLB + 1 LBAs
            nlb = (struct.unpack_from("<I", cmd.sqe, 48)[0] & 0xFFFF) + 1
            need = nlb * await self.t.lba_size(struct.unpack_from("<I", cmd.sqe, 4)[0])
            if need and cmd.length < need:
                return _status(0, F.SC_SGL_INVALID_LENGTH), 0, 0, b""
            if need:
                cmd.xfer = need   # a longer SGL gets only the data the command moves
        if opcode == 0x09:   # Dataset Management: NR + 1 ranges of 16 bytes
            need = 16 * ((struct.unpack_from("<I", cmd.sqe, 40)[0] & 0xFF) + 1)
            if cmd.length < need:
                return _status(0, F.SC_SGL_INVALID_LENGTH), 0, 0, b""
        if self.qpair is None:
            return _status(0, F.SC_CMD_SEQ_ERROR), 0, 0, b""
        return await self._forward(cmd, self.qpair._core)

    async def _forward(self, cmd: _Cmd, core: Any) -> tuple[int, int, int, Any] | None:
        """The command, as the host sent it, on a backend queue; its data in cmd.buf."""
        sqe = cmd.sqe
        opcode, flags = sqe[0], sqe[1] & 0x3
        nsid, cdw2, cdw3 = struct.unpack_from("<III", sqe, 4)
        cdws = struct.unpack_from("<6I", sqe, 40)
        assert self.slots is not None
        async with self.slots:
            if self.closed and core is self.t.nvme._aq:
                return None
            fut = core.submit(opcode, nsid, cmd.buf, cmd.length if cmd.buf is not None else 0,
                              *cdws, cdw2=cdw2, cdw3=cdw3, flags=flags, check=False,
                              timeout=0.0)
            cpl = await fut
        return cpl.raw_status & 0xFFFE, cpl.cdw0, cpl.cdw1, b""
