"""Host side of the simulator's fault injection (``nvme0.sim``)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aionvme.exceptions import InterfaceError

if TYPE_CHECKING:
    from aionvme.controller import Controller


class Fault:
    """One armed fault rule; ``hits`` counts the commands it changed."""

    __slots__ = ("_ctl", "slot")

    def __init__(self, ctl: "SimControl", slot: int) -> None:
        self._ctl = ctl
        self.slot = slot

    @property
    def hits(self) -> int:
        return int(self._ctl._call("fault_info", slot=self.slot)["hits"])

    @property
    def active(self) -> bool:
        return bool(self._ctl._call("fault_info", slot=self.slot)["active"])

    def clear(self) -> None:
        self._ctl._call("fault_clear", slot=self.slot)

    def __enter__(self) -> "Fault":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.clear()


class SimControl:
    """Make the simulated SSD misbehave on purpose, or look inside it.

    A rule matches commands by ``opcode``, ``qid`` (0: admin), ``nsid`` and
    LBA window (``lba``, ``lba_count``); ``count`` limits how often it fires
    (-1: until cleared).

    Example:
        >>> with nvme0.sim.inject_status(opcode=0x02, sct=2, sc=0x81, count=1):
        ...     cpl = await nvme0n1.read(q, buf, 0, check=False)   # 02/81
    """

    __slots__ = ("nvme",)

    def __init__(self, nvme: "Controller") -> None:
        self.nvme = nvme

    def _call(self, op: str, **kw: Any) -> dict[str, Any]:
        reply = json.loads(self.nvme._live_device().control(json.dumps({"op": op, **kw}).encode()))
        if "error" in reply:
            raise InterfaceError(f"simulator: {reply['error']}")
        return reply

    @staticmethod
    def _match(opcode: int | None, qid: int | None, nsid: int, lba: int | None,
               lba_count: int) -> dict[str, Any]:
        return {"opcode": -1 if opcode is None else opcode, "qid": -1 if qid is None else qid,
                "nsid": nsid, "lba": lba or 0, "lba_count": lba_count if lba is not None else 0}

    def inject_status(self, *, sc: int, sct: int = 0, opcode: int | None = None,
                      qid: int | None = None, nsid: int = 0, lba: int | None = None,
                      lba_count: int = 1, dnr: bool = True, more: bool = False,
                      count: int = 1) -> Fault:
        """Complete matching commands with status ``sct/sc`` instead of running them."""
        return Fault(self, self._call("fault", action="status", sct=sct, sc=sc, dnr=dnr, more=more,
                                      count=count, **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def delay(self, *, delay_ms: float, opcode: int | None = None, qid: int | None = None,
              nsid: int = 0, lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Run matching commands but post their completions ``delay_ms`` later."""
        return Fault(self, self._call("fault", action="delay", delay_ms=delay_ms, count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def drop(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
             lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Never complete matching commands (the host's timeout must catch them)."""
        return Fault(self, self._call("fault", action="drop", count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def duplicate(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
                  lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Post matching I/O commands' completions twice: the second CQE names a CID
        that is no longer outstanding (a misbehaving controller)."""
        return Fault(self, self._call("fault", action="duplicate", count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def bad_cid(self, *, opcode: int | None = None, qid: int | None = None, nsid: int = 0,
                lba: int | None = None, lba_count: int = 1, count: int = 1) -> Fault:
        """Complete matching I/O commands with a CID the host never used, so the
        real command never completes (its deadline catches it)."""
        return Fault(self, self._call("fault", action="bad_cid", count=count,
                                      **self._match(opcode, qid, nsid, lba, lba_count))["slot"])

    def clear(self) -> None:
        """Disarm every fault rule."""
        self._call("fault_clear")

    def corrupt(self, nsid: int, lba: int, offset: int = 0, xor: int = 0xFF) -> None:
        """Flip bits (``xor``) of one byte of an LBA on the media, behind the host's back."""
        self._call("corrupt", nsid=nsid, lba=lba, offset=offset, xor=xor)

    def fatal(self) -> None:
        """Set CSTS.CFS: the controller stops processing commands until reset."""
        self._call("fatal")

    def temperature(self, kelvin: int) -> None:
        """Set the composite temperature (a threshold crossing raises an event)."""
        self._call("temperature", kelvin=kelvin)

    def power_loss(self) -> None:
        """Lose power now; ``await subsystem.power_on()`` brings it back."""
        self.nvme._power_loss()

    def state(self) -> dict[str, Any]:
        """Counters and state of the device, for tests."""
        return self._call("state")

    def media(self, nsid: int, lba: int, count: int = 1) -> bytes:
        """The raw media contents of LBAs, read behind the host's back."""
        return bytes.fromhex(self._call("media_read", nsid=nsid, lba=lba, count=count)["hex"])
