"""Device backends under the PCIe transport: how registers, configuration
space, DMA and interrupts of one PCIe NVMe function are reached.

=========================== ===================================================
address                     backend
=========================== ===================================================
``sim``, ``sim:PATH.toml``  aionvme's simulated SSD (``aionvme.backends.sim``)
``qemu``, ``qemu:K=V,...``  QEMU's NVMe controller over qtest (``aionvme.backends.qemu``)
``0000:01:00.0``, ``01:00.0`` a PCIe controller bound to vfio-pci (``aionvme.backends.vfio``)
=========================== ===================================================

A backend object has ``name``, ``capabilities`` (names from
``aionvme.capabilities``), ``device`` (an ``aionvme._core.Device``: the C
``struct anv_dev_ops``) and ``close()``, ``death()`` (why its process is gone,
or None), ``power_off()``, ``power_on()`` and ``extension(name)`` (its extras,
such as the simulator's control plane).  Each backend is one module; this
one only picks by address.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from aionvme.exceptions import NvmeEnumerateError


class Backend(Protocol):
    name: str
    capabilities: frozenset[str]
    device: Any
    on_power_loss: Callable[[], None] | None

    def close(self) -> None: ...
    def death(self) -> str | None: ...
    def power_off(self) -> None: ...
    def power_on(self) -> None: ...
    def extension(self, name: str) -> Any: ...


def is_pcie_address(address: str) -> bool:
    """Whether ``address`` names a backend of this package."""
    from aionvme.backends.vfio import parse_address
    return (address in ("sim", "qemu") or address.startswith(("sim:", "qemu:"))
            or parse_address(address) is not None)


def _backend_class(address: str) -> Any:
    if address == "sim" or address.startswith("sim:"):
        from aionvme.backends.sim import SimProcess
        return SimProcess
    if address == "qemu" or address.startswith("qemu:"):
        from aionvme.backends.qemu import QemuProcess
        return QemuProcess
    from aionvme.backends.vfio import VfioDevice, parse_address
    if parse_address(address) is not None:
        return VfioDevice
    return None


def capabilities_of(address: str) -> frozenset[str] | None:
    """What the backend ``address`` names can do, without starting it (None: no backend)."""
    cls = _backend_class(address)
    return None if cls is None else frozenset(cls.capabilities)


def open_backend(address: str) -> Backend:
    """Start or attach to the device ``address`` names (blocking: run it in an executor)."""
    if address == "sim" or address.startswith("sim:"):
        from aionvme.backends.sim import SimProcess
        from aionvme.simulator.config import SimConfig
        return SimProcess(SimConfig.from_address(address))
    if address == "qemu" or address.startswith("qemu:"):
        from aionvme.backends.qemu import QemuConfig, QemuProcess
        return QemuProcess(QemuConfig.from_address(address))
    from aionvme.backends.vfio import VfioDevice, parse_address
    if parse_address(address) is not None:
        return VfioDevice(address)
    raise NvmeEnumerateError(
        f"address {address!r} names no backend: use 'sim', 'sim:PATH.toml', 'qemu', 'qemu:OPTS' "
        f"or a PCI address such as '0000:01:00.0'")
