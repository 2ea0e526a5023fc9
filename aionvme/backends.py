"""Opening a device by address: ``sim`` / ``sim:PATH.toml`` for the simulator.
(``qemu`` and vfio addresses come with their backends.)"""
from __future__ import annotations

from typing import Any, Callable

from aionvme.exceptions import InterfaceError


class Backend:
    """An open device and how to close it."""

    def __init__(self, name: str, device: Any, closer: Callable[[], None],
                 control: Any = None) -> None:
        self.name = name
        self.device = device
        self._closer = closer
        self.control = control  # the simulator's control plane, None elsewhere

    def close(self) -> None:
        self._closer()

    def death(self) -> str | None:
        """Why the backend is gone (its process exited), or None while it lives."""
        proc = getattr(self.control, "proc", None)
        if proc is not None and proc.poll() is not None:
            return f"the {self.name} device process exited with code {proc.returncode}"
        return None


def open_backend(address: str) -> Backend:
    if not isinstance(address, str):
        if isinstance(address, bytes):
            address = address.decode()
        else:
            raise InterfaceError(f"address must be a str such as 'sim', not {type(address).__name__}")
    if address == "sim" or address.startswith("sim:"):
        from aionvme.sim.config import SimConfig
        from aionvme.sim.manager import SimProcess
        proc = SimProcess(SimConfig.from_address(address))
        return Backend("sim", proc.device, proc.close, control=proc)
    raise InterfaceError(
        f"address {address!r} names no backend this build has: use 'sim' or 'sim:PATH.toml'")
