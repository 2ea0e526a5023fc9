"""Admin command set of the simulated controller (NVMe 2.0, section 5).

Each handler takes the parsed SQE and returns ``(status, cdw0)``, where
status is the 15-bit Status Field (``err()`` builds it), or ``None`` when
the command completes later (Asynchronous Event Request, Sanitize...).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Callable

from aionvme.spec import status as S
from aionvme.simulator import features as F
from aionvme.simulator.command import OK, Cmd, err
from aionvme.simulator.control import ACTIONS
from aionvme.simulator import identify, logpages
from aionvme.simulator.doorbells import doorbell_buffer_config
from aionvme.simulator.firmware import Firmware
from aionvme.simulator.selftest import SelfTest
from aionvme.simulator.sanitize import Sanitize
from aionvme.simulator.state import LBA_FORMATS

if TYPE_CHECKING:
    from aionvme.simulator.device import SimDevice

class Admin:
    def __init__(self, dev: "SimDevice") -> None:
        self.dev = dev
        self.core = dev.core
        self.aer_pending: list[int] = []
        self.aer_events: list[tuple[int, int, int]] = []  # (type, info, log page)
        self.aer_masked: set[int] = set()  # event types waiting for their log page read
        self.firmware = Firmware(dev)
        self.selftest = SelfTest(dev)
        self.sanitize = Sanitize(dev)
        self.handlers: dict[int, Callable[[Cmd], tuple[int, int] | None]] = {
            0x00: self.delete_sq, 0x01: self.create_sq, 0x02: self.get_log_page,
            0x04: self.delete_cq, 0x05: self.create_cq, 0x06: self.identify,
            0x08: self.abort, 0x09: self.set_features, 0x0A: self.get_features,
            0x0C: self.async_event_request, 0x10: self.firmware.commit,
            0x11: self.firmware.download, 0x14: self.selftest.command,
            0x7C: lambda cmd: doorbell_buffer_config(self, cmd), 0x80: self.format_nvm,
            0x84: self.sanitize.command,
        }

    # -- plumbing -------------------------------------------------------------
    def reset(self) -> None:
        """Controller reset: outstanding AERs are gone, events stay queued."""
        self.aer_pending.clear()
        self.selftest.controller_reset()

    def process(self) -> int:
        n = 0
        while self.dev.can_run() and not self.core.hung:
            raw = self.core.admin_fetch()
            if raw is None:
                break
            n += 1
            self.execute(Cmd.parse(raw))
        return n

    def execute(self, cmd: Cmd) -> None:
        # The native core decides which rule matches (sim_fault_match, for admin and
        # I/O commands alike); only status, drop and delay rules match admin commands.
        f = self.core.fault_match(0, cmd.raw)
        if f >= 0:
            action, status, delay_us = self.core.fault_action(f)
            if action == ACTIONS["drop"]:  # never completes
                return
            if action == ACTIONS["hang"]:  # nothing is served until a reset
                self.core.hung = True
                return
            if action == ACTIONS["status"]:
                self.complete(cmd, status, 0)
                return
            if action == ACTIONS["delay"]:
                result = self.run(cmd)
                if result is not None:
                    self.dev.after(delay_us / 1e6, lambda: self.complete(cmd, *result))
                return
        result = self.run(cmd)
        if result is not None:
            self.complete(cmd, *result)

    def run(self, cmd: Cmd) -> tuple[int, int] | None:
        handler = self.handlers.get(cmd.opcode)
        if handler is None:
            return err(S.INVALID_OPCODE)
        if cmd.flags & 0xC0:
            return err(S.INVALID_FIELD)  # 4.2: admin commands use PRPs
        if self.sanitize.blocks(cmd.opcode, admin=True):
            return err(S.SANITIZE_IN_PROGRESS)
        try:
            return handler(cmd)
        except Exception:  # a handler bug must not take the device down
            import traceback
            traceback.print_exc()
            return err(S.INTERNAL_ERROR)  # Internal Error

    def take_io_errors(self) -> None:
        """I/O command errors of the native data path into the Error Information log."""
        st = self.dev.state
        total, entries = self.core.take_errors(st.io_errors_seen)
        st.error_count += total - st.io_errors_seen - len(entries)  # overwritten: counted only
        st.io_errors_seen = total
        for sqid, cid, status, nsid, lba in entries:
            st.log_error(sqid, cid, status, nsid, lba)

    def complete(self, cmd: Cmd, status: int, cdw0: int) -> None:
        if status & 0xFF or (status >> 8) & 7:
            self.dev.state.log_error(0, cmd.cid, status, cmd.nsid)
        self.core.post(0, cmd.cid, status, cdw0, True)

    def over_mdts(self, length: int) -> bool:
        """A transfer longer than MDTS (Identify Controller byte 77) is Invalid
        Field in Command, for Admin commands as for I/O commands."""
        return bool(self.core.mdts_bytes) and length > self.core.mdts_bytes

    def to_host(self, cmd: Cmd, data: bytes) -> tuple[int, int]:
        if self.over_mdts(len(data)):
            return err(S.INVALID_FIELD)
        status = self.core.dma_to_host(cmd.raw, data)
        return (status, 0) if status else OK

    def from_host(self, cmd: Cmd, length: int) -> tuple[int, bytes]:
        if self.over_mdts(length):
            return err(S.INVALID_FIELD)[0], b""
        return self.core.dma_from_host(cmd.raw, length)

    def doorbell_written(self, off: int, value: int) -> None:
        """A doorbell written through a register write (the fast path writes the
        shared page directly).  A doorbell of a queue that does not exist is a
        "Write to Invalid Doorbell Register" error event (5.2, Figure 146)."""
        index = (off - 0x1000) // (4 << self.core.dstrd)
        qid, is_cq = index // 2, index & 1
        exists = self.core.cq_info(qid) if is_cq else self.core.sq_info(qid)
        if exists is None:
            self.event(0, 0x00, 0x01)
        elif qid == 0 and not is_cq and value >= exists["size"]:
            # An Invalid Doorbell Write Value (5.2) is ignored: the admin SQ tail
            # keeps its last valid value, so the loop never sees a command to fetch.
            struct.pack_into("<I", self.dev.bar, off, exists["head"])
            self.event(0, 0x01, 0x01)

    # -- asynchronous events (5.2) ---------------------------------------------
    def event(self, etype: int, info: int, lid: int) -> None:
        if etype in self.aer_masked:
            return
        self.aer_events.append((etype, info, lid))
        self.deliver_events()

    def deliver_events(self) -> None:
        while self.aer_pending and self.aer_events:
            etype, info, lid = self.aer_events.pop(0)
            cid = self.aer_pending.pop(0)
            self.aer_masked.add(etype)
            self.core.post(0, cid, 0, etype | (info << 8) | (lid << 16), True)

    def log_page_read(self, lid: int, rae: bool) -> None:
        """Reading a log page with RAE clear unmasks its event type (5.16)."""
        if rae:
            return
        etype = {0x01: 0, 0x02: 1, 0x03: 2, 0x81: 6, 0x06: 2}.get(lid)
        if etype is not None:
            self.aer_masked.discard(etype)
            self.deliver_events()

    def check_events(self) -> None:
        inv_db, inv_val = self.core.take_events()
        if inv_db:
            self.event(0, 0x00, 0x01)  # Error: write to invalid doorbell register
        if inv_val:
            self.event(0, 0x01, 0x01)  # Error: invalid doorbell write value

    def async_event_request(self, cmd: Cmd) -> tuple[int, int] | None:
        if len(self.aer_pending) > identify.AERL:
            return err(S.AER_LIMIT_EXCEEDED)
        self.aer_pending.append(cmd.cid)
        self.deliver_events()
        return None

    def abort(self, cmd: Cmd) -> tuple[int, int]:
        sqid, cid = cmd.cdw10 & 0xFFFF, cmd.cdw10 >> 16
        if sqid == 0 and cid in self.aer_pending:
            self.aer_pending.remove(cid)
            self.core.post(0, cid, err(S.ABORT_REQUESTED, dnr=False)[0], 0, True)
            return (0, 0)  # cdw0 bit 0 clear: aborted
        return (0, 1)  # 5.1: bit 0 set, the command was not aborted

    # -- queues (5.4, 5.5, 5.6, 5.7) --------------------------------------------
    def _queue_limit(self) -> tuple[int, int]:
        v = self.dev.state.features.current(F.NUMBER_OF_QUEUES)
        return (v & 0xFFFF) + 1, (v >> 16) + 1

    def create_cq(self, cmd: Cmd) -> tuple[int, int]:
        qid, qsize = cmd.cdw10 & 0xFFFF, (cmd.cdw10 >> 16) + 1
        pc, ien, iv = cmd.cdw11 & 1, (cmd.cdw11 >> 1) & 1, cmd.cdw11 >> 16
        _, ncq = self._queue_limit()
        if qid == 0 or qid > ncq or self.core.cq_info(qid) is not None:
            return err(S.INVALID_QID)
        if qsize < 2 or qsize > self.dev.cfg.mqes + 1:
            return err(S.INVALID_QSIZE)
        if iv >= self.dev.cfg.vectors:
            return err(S.INVALID_INTERRUPT_VECTOR)
        if not pc:
            return err(S.INVALID_FIELD)  # CAP.CQR: contiguous queues only
        if cmd.prp1 & 0xFFF:
            return err(S.PRP_OFFSET_INVALID)  # PRP Offset Invalid
        if ((self.dev.cc >> 20) & 0xF) != 4:
            return err(S.INVALID_FIELD)  # CC.IOCQES must be set (3.1.3.5)
        self.core.cq_create(qid, cmd.prp1, qsize, iv, ien)
        self.dev.state.features.queues_allocated = True
        return OK

    def create_sq(self, cmd: Cmd) -> tuple[int, int]:
        qid, qsize = cmd.cdw10 & 0xFFFF, (cmd.cdw10 >> 16) + 1
        pc, prio, cqid = cmd.cdw11 & 1, (cmd.cdw11 >> 1) & 3, cmd.cdw11 >> 16
        nsq, _ = self._queue_limit()
        if cqid == 0 or self.core.cq_info(cqid) is None:
            return err(S.COMPLETION_QUEUE_INVALID)
        if qid == 0 or qid > nsq or self.core.sq_info(qid) is not None:
            return err(S.INVALID_QID)
        if qsize < 2 or qsize > self.dev.cfg.mqes + 1:
            return err(S.INVALID_QSIZE)
        if not pc:
            return err(S.INVALID_FIELD)
        if cmd.prp1 & 0xFFF:
            return err(S.PRP_OFFSET_INVALID)
        if ((self.dev.cc >> 16) & 0xF) != 6:
            return err(S.INVALID_FIELD)  # CC.IOSQES must be set
        self.core.sq_create(qid, cmd.prp1, qsize, cqid, prio)
        self.dev.state.features.queues_allocated = True
        return OK

    def delete_sq(self, cmd: Cmd) -> tuple[int, int]:
        qid = cmd.cdw10 & 0xFFFF
        if qid == 0 or self.core.sq_info(qid) is None:
            return err(S.INVALID_QID)
        self.core.sq_delete(qid)
        return OK

    def delete_cq(self, cmd: Cmd) -> tuple[int, int]:
        qid = cmd.cdw10 & 0xFFFF
        info = self.core.cq_info(qid) if qid else None
        if info is None:
            return err(S.INVALID_QID)
        if info["nsq"]:
            return err(S.INVALID_QUEUE_DELETION)  # an SQ still uses it
        self.core.cq_delete(qid)
        return OK

    # -- identify (5.17) -------------------------------------------------------
    def identify(self, cmd: Cmd) -> tuple[int, int]:
        cns = cmd.cdw10 & 0xFF
        namespaces = self.dev.state.namespaces
        if cns == 0x00:
            if cmd.nsid == 0xFFFFFFFF:
                # 5.17.2.1: the broadcast NSID returns the capabilities common to
                # all namespaces only with Namespace Management (OACS bit 3)
                oacs = int.from_bytes(identify.controller(self.dev)[256:258], "little")
                if not oacs & identify.OACS_NS_MGMT:
                    return err(S.INVALID_NS)
                return self.to_host(cmd, bytes(4096))  # common ns capabilities: none
            if cmd.nsid not in namespaces:
                return err(S.INVALID_NS)
            return self.to_host(cmd, identify.namespace(self.dev, cmd.nsid))
        if cns == 0x01:
            return self.to_host(cmd, identify.controller(self.dev))
        if cns == 0x02:
            if cmd.nsid >= 0xFFFFFFFE:
                return err(S.INVALID_NS)
            return self.to_host(cmd, identify.active_namespaces(self.dev, cmd.nsid))
        if cns == 0x03:
            if cmd.nsid not in namespaces:
                return err(S.INVALID_NS)
            return self.to_host(cmd, identify.ns_descriptors(self.dev, cmd.nsid))
        return err(S.INVALID_FIELD)

    # -- features (5.15, 5.27) ----------------------------------------------------
    def _feature_key(self, fid: int, cdw11: int, nsid: int = 0) -> tuple[int, int] | None:
        if fid == F.TEMPERATURE_THRESHOLD:
            tmpsel, thsel = (cdw11 >> 16) & 0xF, (cdw11 >> 20) & 0x3
            if tmpsel > 8 or thsel > 1:
                return None
            return (fid, tmpsel << 4 | thsel)
        if fid == F.INTERRUPT_VECTOR_CONFIG:
            iv = cdw11 & 0xFFFF
            return (fid, iv) if iv < self.dev.cfg.vectors else None
        if fid == F.ERROR_RECOVERY:
            return (fid, nsid)
        return (fid, 0)

    def get_features(self, cmd: Cmd) -> tuple[int, int]:
        fid, sel = cmd.cdw10 & 0xFF, (cmd.cdw10 >> 8) & 0x7
        feats = self.dev.state.features
        if fid not in feats.CHANGEABLE:
            return err(S.INVALID_FIELD)
        if sel == 3:  # supported capabilities (5.15): saveable, namespace specific, changeable
            return (0, int(fid in feats.SAVEABLE) | (int(fid == F.ERROR_RECOVERY) << 1)
                    | (int(fid in feats.CHANGEABLE) << 2))
        if fid == F.TIMESTAMP:
            if sel > 3:
                return err(S.INVALID_FIELD)
            return self.to_host(cmd, self._timestamp())
        if fid == F.ERROR_RECOVERY and cmd.nsid not in self.dev.state.namespaces:
            return err(S.INVALID_NS)  # namespace specific: one namespace's value
        key = self._feature_key(fid, cmd.cdw11, cmd.nsid)
        if key is None:
            return err(S.INVALID_FIELD)
        table = {0: feats.values, 1: feats.defaults, 2: feats.saved}.get(sel)
        if table is None:
            return err(S.INVALID_FIELD)
        value = table.get(key, 0)
        if fid == F.TEMPERATURE_THRESHOLD:
            value |= (cmd.cdw11 & 0x3F0000)
        return (0, value)

    def set_features(self, cmd: Cmd) -> tuple[int, int]:
        fid, sv = cmd.cdw10 & 0xFF, cmd.cdw10 >> 31
        feats = self.dev.state.features
        if fid in feats.CHANGEABLE and sv and fid not in feats.SAVEABLE:
            return err(S.FEATURE_NOT_SAVEABLE)  # 5.27: e.g. Timestamp, Number of Queues
        if fid == F.TIMESTAMP:
            status, data = self.from_host(cmd, 8)
            if status:
                return (status, 0)
            import time
            feats.timestamp_base_ms = int.from_bytes(data[:6], "little")
            feats.timestamp_set_at = time.monotonic()
            return OK
        if fid not in feats.CHANGEABLE:
            return err(S.INVALID_FIELD)
        if sv and fid not in feats.SAVEABLE:
            return err(S.FEATURE_NOT_SAVEABLE)
        if fid == F.ERROR_RECOVERY:
            # Namespace specific: one namespace, or all of them with FFFFFFFFh.
            if cmd.nsid == 0xFFFFFFFF:
                nsids = list(self.dev.state.namespaces)
            elif cmd.nsid in self.dev.state.namespaces:
                nsids = [cmd.nsid]
            else:
                return err(S.INVALID_NS)
            value = cmd.cdw11 & 0x1FFFF  # DULBE (bit 16), TLER (15:0)
            for nsid in nsids:
                feats.values[(fid, nsid)] = value
                if sv:
                    feats.saved[(fid, nsid)] = value
            self.dev.state.apply_error_recovery(self.core)
            return OK
        key = self._feature_key(fid, cmd.cdw11)
        if key is None:
            return err(S.INVALID_FIELD)
        value, cdw0 = cmd.cdw11, 0
        if fid == F.NUMBER_OF_QUEUES:
            if feats.queues_allocated:
                return err(S.COMMAND_SEQUENCE_ERROR)  # 5.27.1.5: only before queues exist
            nsq, ncq = value & 0xFFFF, value >> 16
            if nsq == 0xFFFF or ncq == 0xFFFF:
                return err(S.INVALID_FIELD)
            top = self.dev.cfg.max_io_queues - 1
            value = (min(ncq, top) << 16) | min(nsq, top)
            cdw0 = value
        elif fid == F.TEMPERATURE_THRESHOLD:
            value &= 0xFFFF
        elif fid == F.INTERRUPT_VECTOR_CONFIG:
            value &= 0x1FFFF
        elif fid == F.VOLATILE_WRITE_CACHE:
            if not self.dev.cfg.vwc:
                return err(S.INVALID_FIELD)
            value &= 1
            if not value:
                self.core.flush()
            self.core.vwc_enabled = value
        elif fid == F.POWER_MANAGEMENT:
            if value & 0x1F:  # one power state: PS 0
                return err(S.INVALID_FIELD)
        feats.values[key] = value
        if sv:
            feats.saved[key] = value
        self.dev.check_temperature()
        if fid in (F.INTERRUPT_COALESCING, F.INTERRUPT_VECTOR_CONFIG):
            self.dev.apply_interrupt_features()
        if fid == F.ARBITRATION:
            self.dev.apply_arbitration()
        return (0, cdw0)

    def _timestamp(self) -> bytes:
        import time
        feats = self.dev.state.features
        if feats.timestamp_set_at:
            ms = feats.timestamp_base_ms + int((time.monotonic() - feats.timestamp_set_at) * 1000)
            origin = 1
        else:
            ms, origin = int(time.monotonic() * 1000), 0
        return (ms & 0xFFFFFFFFFFFF).to_bytes(6, "little") + bytes((origin << 1, 0))

    # -- log pages (5.16) ------------------------------------------------------
    def get_log_page(self, cmd: Cmd) -> tuple[int, int]:
        lid, rae = cmd.cdw10 & 0xFF, bool(cmd.cdw10 & (1 << 15))
        numd = ((cmd.cdw11 & 0xFFFF) << 16 | (cmd.cdw10 >> 16)) + 1
        offset = cmd.cdw12 | (cmd.cdw13 << 32)
        page = logpages.build(self.dev, lid, cmd.nsid)
        if page is None:
            return err(S.INVALID_LOG_PAGE)
        if offset & 3 or offset > len(page):
            return err(S.INVALID_FIELD)
        if self.over_mdts(4 * numd):
            return err(S.INVALID_FIELD)
        # NUMD past the end of the log: "undefined results for dwords beyond the end
        # of the log page".  Zeroes, but never more than MDTS (or, with no MDTS,
        # the log's own size in whole pages) is built and transferred.
        limit = self.core.mdts_bytes or -(-len(page) // 4096) * 4096
        data = page[offset:offset + 4 * numd].ljust(min(4 * numd, limit), b"\0")
        result = self.to_host(cmd, data)
        if result == OK:
            self.log_page_read(lid, rae)
        return result

    # -- NVM admin commands ----------------------------------------------------
    def format_nvm(self, cmd: Cmd) -> tuple[int, int]:
        """Format NVM (5.14): LBA format, secure erase settings."""
        lbaf = (cmd.cdw10 & 0xF) | (((cmd.cdw10 >> 12) & 0x3) << 4)
        mset, pi, ses = (cmd.cdw10 >> 4) & 1, (cmd.cdw10 >> 5) & 7, (cmd.cdw10 >> 9) & 7
        namespaces = self.dev.state.namespaces
        if cmd.nsid == 0xFFFFFFFF:
            targets = list(namespaces)
        elif cmd.nsid in namespaces:
            targets = [cmd.nsid]
        else:
            return err(S.INVALID_NS)
        if lbaf >= len(LBA_FORMATS) or LBA_FORMATS[lbaf][1] or pi or mset:
            # Formats with metadata are listed but not implemented by the simulator.
            return err(S.INVALID_FORMAT)
        if ses > 2:
            return err(S.INVALID_FIELD)
        for nsid in targets:
            ns = namespaces[nsid]
            ns.lbaf = lbaf
            # A format always discards user data on the simulator: it reads 0 after.
            self.core.ns_format(nsid, ns.lba_shift, True)
        self.selftest.namespace_formatted()
        return OK
