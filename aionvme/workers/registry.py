"""The running ioworkers of one controller, and how a reset, a shutdown or a
close stops them."""
from __future__ import annotations

STOP_GRACE_S = 2.0  # a worker told to stop by a reset, Ctrl-C or close: then it is killed


class WorkerSet(set):  # type: ignore[type-arg]
    """A set of running ``IOWorker`` objects (each adds and discards itself)."""

    def abandon(self, reason: str) -> None:
        """Tell running ioworkers their queues are going away (a reset): they
        leave without their outstanding commands, and their queues are not
        created again by the reset."""
        for w in list(self):
            w._stop(reason, abandon=True, grace=STOP_GRACE_S)

    async def drain(self, reason: str) -> None:
        """Stop every running ioworker the normal way: it drains its commands and
        exits, and its queue is deleted on the controller."""
        for w in list(self):
            w._stop(reason, abandon=False, grace=STOP_GRACE_S)
        await self.ended()

    async def stop(self, reason: str) -> None:
        """Before a reset: stop every running ioworker and wait until each has
        exited (killed after STOP_GRACE_S), so that none rings a doorbell of a
        queue the reset deletes or a new queue reuses."""
        self.abandon(reason)
        await self.ended()

    async def ended(self) -> None:
        for w in list(self):
            await w._ended()
