"""Opening a device by address.

=========================== ===================================================
address                     backend
=========================== ===================================================
``sim``, ``sim:PATH.toml``  aionvme's simulated SSD (aionvme.sim.manager)
``qemu``, ``qemu:K=V,...``  QEMU's NVMe controller over qtest (aionvme.qemu)
=========================== ===================================================

A backend object has ``name``, ``device`` (an ``aionvme._core.Device``) and
``close()``, ``death()`` (why its process is gone, or None), ``power_off()``
and ``power_on()``.
"""
from __future__ import annotations

from typing import Any, Protocol

from aionvme.exceptions import InterfaceError


class Backend(Protocol):
    name: str
    device: Any

    def close(self) -> None: ...
    def death(self) -> str | None: ...
    def power_off(self) -> None: ...
    def power_on(self) -> None: ...


def open_backend(address: str | bytes) -> Backend:
    if isinstance(address, bytes):
        address = address.decode()
    if not isinstance(address, str):
        raise InterfaceError(f"address must be a str such as 'sim', not {type(address).__name__}")
    if address == "sim" or address.startswith("sim:"):
        from aionvme.sim.config import SimConfig
        from aionvme.sim.manager import SimProcess
        return SimProcess(SimConfig.from_address(address))
    if address == "qemu" or address.startswith("qemu:"):
        from aionvme.qemu.config import QemuConfig
        from aionvme.qemu.manager import QemuProcess
        return QemuProcess(QemuConfig.from_address(address))
    raise InterfaceError(
        f"address {address!r} names no backend: use 'sim', 'sim:PATH.toml', 'qemu' or 'qemu:OPTS'")
