"""Transports: how a command travels to a controller and its completion
comes back (see ``aionvme.transport.base`` for the verbs)."""
from __future__ import annotations

from aionvme.backends import capabilities_of as _backend_capabilities
from aionvme.backends import is_pcie_address, open_backend
from aionvme.exceptions import InterfaceError, NvmeEnumerateError
from aionvme.transport.base import Transport


def open_transport(address: str | bytes) -> Transport:
    """The transport to the controller ``address`` names (blocking: it may start
    a device process; run it in an executor)."""
    if isinstance(address, bytes):
        address = address.decode()
    if not isinstance(address, str):
        raise InterfaceError(f"address must be a str such as 'sim', not {type(address).__name__}")
    if is_pcie_address(address):
        from aionvme.transport.pcie import PcieTransport
        return PcieTransport(open_backend(address))
    if address.startswith("/dev/nvme"):
        from aionvme.transport.kernel import KernelTransport
        return KernelTransport(address)
    from aionvme.transport.tcp.fabrics import looks_like_tcp
    if looks_like_tcp(address):
        from aionvme.transport.tcp.transport import TcpTransport
        return TcpTransport(address)
    raise NvmeEnumerateError(
        f"address {address!r} names no backend: use 'sim', 'sim:PATH.toml', 'qemu', 'qemu:OPTS', "
        f"tcp://HOST[:PORT][/SUBNQN], a PCI address such as '0000:01:00.0' or '/dev/nvmeN'")


def capabilities_of(address: str | bytes) -> tuple[str, frozenset[str]] | None:
    """(backend name, capabilities) of the controller ``address`` names, known
    without opening it (the pytest plugin skips on them); None: no such address."""
    if isinstance(address, bytes):
        address = address.decode()
    if is_pcie_address(address):
        have = _backend_capabilities(address)
        if have is None:
            return None
        from aionvme.backends.vfio import parse_address
        return ("vfio" if parse_address(address) else address.split(":", 1)[0]), have
    from aionvme.transport.tcp.fabrics import looks_like_tcp
    if looks_like_tcp(address):
        from aionvme.transport.tcp.transport import TcpTransport
        return "tcp", TcpTransport.capabilities
    if address.startswith("/dev/nvme"):
        from aionvme.transport.kernel import KernelTransport
        return ("kernel", KernelTransport.capabilities)
    return None
