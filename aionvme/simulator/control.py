"""The simulator's control plane: requests a test sends to make the device
misbehave on purpose, or to look inside it.  Each request is a JSON object
with an ``op``; the reply is a JSON object.  The host-side API is
``aionvme.backends.sim.SimControl`` (``nvme0.sim``)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aionvme.simulator.device import SimDevice

ACTIONS = {"status": 1, "drop": 2, "delay": 3, "duplicate": 4, "bad_cid": 5, "hang": 6,
           "skip": 7, "bitflip": 8, "misplace": 9, "zeroes": 10, "torn": 11}


class Control:
    def __init__(self, dev: "SimDevice") -> None:
        self.dev = dev

    def handle(self, req: dict[str, Any]) -> dict[str, Any]:
        op = req.pop("op", None)
        fn = getattr(self, f"op_{op}", None)
        if fn is None:
            return {"error": f"unknown control op {op!r}"}
        return fn(**req)

    def op_fault(self, action: str, qid: int = -1, opcode: int = -1, nsid: int = 0,
                 lba: int = 0, lba_count: int = 0, sct: int = 0, sc: int = 0,
                 dnr: bool = True, more: bool = False, count: int = -1,
                 delay_ms: float = 0, arg: int = 0, xor: int = 0) -> dict[str, Any]:
        core = self.dev.core
        slot = core.fault_free_slot()
        if slot < 0:
            return {"error": "every fault slot is in use"}
        if action not in ACTIONS:
            return {"error": f"action {action!r} is not one of {sorted(ACTIONS)}"}
        status = (int(dnr) << 14) | (int(more) << 13) | ((sct & 7) << 8) | (sc & 0xFF)
        hi = lba + lba_count if lba_count else 0
        core.fault_set(slot, ACTIONS[action], qid=qid, opcode=opcode, nsid=nsid,
                       slba_lo=lba, slba_hi=hi, status=status, count=count,
                       delay_us=int(delay_ms * 1000), arg=arg, xor=xor)
        return {"slot": slot}

    def op_fault_clear(self, slot: int | None = None) -> dict[str, Any]:
        slots = range(32) if slot is None else [slot]
        for s in slots:
            self.dev.core.fault_clear(s)
        return {}

    def op_fault_info(self, slot: int) -> dict[str, Any]:
        return self.dev.core.fault_info(slot)

    def op_corrupt(self, nsid: int, lba: int, offset: int = 0, xor: int = 0xFF) -> dict[str, Any]:
        ns = self.dev.state.namespaces.get(nsid)
        if ns is None or not 0 <= lba < ns.nlba or not 0 <= offset < ns.lba_size:
            return {"error": f"no LBA {lba} (offset {offset}) in namespace {nsid}"}
        pos = lba * ns.lba_size + offset
        b = self.dev.core.media_read(nsid, pos, 1)
        self.dev.core.media_write(nsid, pos, bytes([b[0] ^ (xor & 0xFF or 0xFF)]))
        return {}

    def op_selftest_fail(self, segment: int = 0, fatal: bool = False, nsid: int | None = None,
                         lba: int | None = None, sct: int | None = None,
                         sc: int | None = None, count: int = 1) -> dict[str, Any]:
        from aionvme.simulator.selftest import Failure
        if not 0 <= segment <= 255:
            return {"error": f"segment {segment} is outside 0..255"}
        if not 1 <= count <= 20:
            return {"error": f"count {count} is outside 1..20 (the log holds 20 results)"}
        if nsid is not None and not 0 <= nsid <= 0xFFFFFFFF:
            return {"error": f"nsid {nsid} is outside 0..FFFFFFFFh"}
        if lba is not None and not 0 <= lba < 1 << 64:
            return {"error": f"lba {lba} is outside 0..2**64-1"}
        if sct is not None and not 0 <= sct <= 7:
            return {"error": f"sct {sct} is outside 0..7"}
        if sc is not None and not 0 <= sc <= 0xFF:
            return {"error": f"sc {sc} is outside 0..FFh"}
        self.dev.admin.selftest.failures = [
            Failure(segment, fatal, nsid, lba, sct, sc) for _ in range(count)]
        return {}

    def op_fatal(self) -> dict[str, Any]:
        self.dev.fatal()
        return {}

    def op_temperature(self, kelvin: int) -> dict[str, Any]:
        self.dev.state.temperature_k = kelvin
        self.dev.check_temperature()
        return {}

    def op_state(self) -> dict[str, Any]:
        d = self.dev
        return {
            "powered": d.powered, "cc": d.cc, "csts": d.csts,
            "counters": d.core.counters(), "irq_counts": d.core.irq_counts(),
            "io_queues": [q for q in range(1, 65) if d.core.sq_info(q) is not None],
            "aer_pending": len(d.admin.aer_pending), "power_cycles": d.state.power_cycles,
            "unsafe_shutdowns": d.state.unsafe_shutdowns, "delayed": d.core.ndelayed,
        }

    def op_media_read(self, nsid: int, lba: int, count: int = 1) -> dict[str, Any]:
        ns = self.dev.state.namespaces[nsid]
        data = self.dev.core.media_read(nsid, lba * ns.lba_size, count * ns.lba_size)
        return {"hex": data.hex()}
