"""Recognising a stuck device: commands past their deadlines while no queue
makes any progress.

A command that times out while other commands complete was lost (a dropped
completion): its ``CommandTimeout`` says all there is.  A command that times
out while nothing at all completed since it was sent may mean the device
stopped serving every queue (a hung firmware, a simulator thread caught in a
loop) while its registers still answer.  Then a probe goes to the admin
queue, as the Linux driver sends an Abort on a first timeout
(drivers/nvme/host/pci.c, nvme_timeout()): Get Features, Number of Queues
(5.15 in NVMe 2.0), mandatory, with no data and no side effect, given as
long as the lost command had.  A probe that completes, with any status,
shows the device alive.  A probe that gets no completion either makes the
device stuck: every outstanding command fails with ``DeviceError`` saying so,
and every new one is refused at once, until a controller reset (which
recreates the queues) clears it.

Only queues of this process count: an ioworker's queue lives in its own
process and reports its own timeouts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aionvme.exceptions import CommandTimeout, DeviceError

if TYPE_CHECKING:
    from aionvme.controller import Controller

PROBE_MIN_S = 0.5      # the least a probe is given
PROBE_FID = 0x07       # Number of Queues: mandatory, no data transfer


class StallWatch:
    """Called by the controller's watchdog after each round of expiries."""

    __slots__ = ("_ctrl", "_probe", "_waited")

    def __init__(self, ctrl: "Controller") -> None:
        self._ctrl = ctrl
        self._probe: Any = None
        self._waited = 0.0

    def _queues(self) -> list[Any]:
        c = self._ctrl
        qs = [c._aq] if c._aq is not None and not c._aq.closed else []
        return qs + [qp._core for qp in c._io_qpairs.values() if not qp._core.closed]

    def check(self, now: float) -> None:
        qs = self._queues()
        if not qs:
            return
        expired = [q.expired_since for q in qs if q.expired_since]
        if not expired or self._probe is not None or any(q.stuck is not None for q in qs):
            return
        since = min(expired)
        if max(q.reaped_at for q in qs) > since:
            return  # completions arrived after that command was sent: the device lives
        self._waited = now - since
        try:
            self._probe = self._ctrl.getfeatures(PROBE_FID, check=False,
                                                 timeout=max(PROBE_MIN_S, self._waited))
        except Exception:  # the admin queue is full or gone: no probe this time
            self._probe = None
            return
        self._probe.add_done_callback(self._probed)

    def _probed(self, fut: Any) -> None:
        self._probe = None
        if fut.cancelled() or not isinstance(fut.exception(), CommandTimeout):
            return  # it completed (or the queue went away): not stuck
        # No register is read here: a device process caught in a loop would hold
        # the event loop for the whole reply timeout of its backend.
        reason = (f"the device is stuck: no queue completed a command for "
                  f"{self._waited:.1f} s while commands were past their deadlines, and a "
                  f"Get Features probe got no completion either; a controller reset "
                  f"(await nvme0.reset()) may recover it (CSTS.CFS tells a fatal status)")
        error = DeviceError(reason)
        for q in self._queues():
            q.fail_all(lambda cid: error)
            q.stuck = reason
