"""The NVM subsystem: NVM Subsystem Reset, shutdown notification, power."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from aionvme import capabilities as caps
from aionvme.exceptions import InterfaceError

if TYPE_CHECKING:
    from aionvme.controller import Controller

NSSR_MAGIC = 0x4E564D65  # "NVMe" (3.1.3.7)


class Subsystem:
    """Seed: ``Subsystem``.  Prefer the ``subsystem`` fixture.

    ``poweroff``/``poweron``: callables that remove and restore the drive's
    power (a lab power switch); a real drive on the ``vfio`` backend needs them
    for ``power_cycle``.  The simulated devices power themselves.

    Example:
        >>> await subsystem.power_cycle(1)        # power off 1 s, on, controller back
        >>> await subsystem.reset()               # NSSR
        >>> await subsystem.shutdown_notify()     # CC.SHN normal shutdown
    """

    __slots__ = ("nvme",)

    def __init__(self, nvme: "Controller", poweroff: Callable[[], Any] | None = None,
                 poweron: Callable[[], Any] | None = None) -> None:
        self.nvme = nvme
        if poweroff is not None or poweron is not None:
            t = nvme._live_transport()
            backend = getattr(t, "backend", None)
            setter = getattr(backend, "set_power_callbacks", None)
            if setter is None:
                raise InterfaceError(f"poweroff/poweron callbacks are for real drives (vfio), not "
                                     f"the {t.backend_name} backend")
            setter(poweroff, poweron)
            t.capabilities = frozenset(backend.capabilities)  # power_cycle now, with both

    async def reset(self) -> None:
        """NVM Subsystem Reset through NSSR (3.7.1); the controller is initialised again."""
        t = self.nvme._live_transport()
        if caps.REGISTERS not in t.capabilities:
            # No NSSR register of ours (the kernel transport: its NVME_IOCTL_SUBSYS_RESET
            # is KernelTransport.subsystem_reset(), outside this API).
            caps.require(t.capabilities, caps.NSSR, t.backend_name, "NVM subsystem reset")
        if not (self.nvme.cap >> 36) & 1:
            raise InterfaceError("the controller does not support NVM subsystem reset (CAP.NSSRS = 0)")
        await self.nvme._stop_workers("NVM subsystem reset")
        self.nvme._fail_outstanding("NVM subsystem reset")
        self.nvme.write_register(0x20, NSSR_MAGIC)
        await self.nvme._reinit("NVM subsystem reset")

    async def shutdown_notify(self, abrupt: bool = False) -> None:
        """Shutdown notification through CC.SHN; waits until CSTS.SHST reports complete."""
        await self.nvme.shutdown(abrupt)

    async def power_off(self) -> None:
        """Remove power now (unflushed cached writes are lost); running ioworkers
        are stopped first."""
        await self.nvme._stop_workers("power cycle")
        self.nvme._power_loss()

    async def power_on(self) -> None:
        """Restore power and initialise the controller again."""
        self.nvme._live_transport().power_on()
        await self.nvme._reinit("power cycle")

    async def power_cycle(self, sec: float = 10) -> None:
        """Power off for ``sec`` seconds, then on (seed: ``power_cycle``)."""
        if not 0 <= sec <= 3600:
            raise InterfaceError(f"sec {sec} is outside 0..3600")
        await self.power_off()
        await asyncio.sleep(sec)
        await self.power_on()
