"""aionvme: test NVMe SSDs from asyncio Python.

>>> async with aionvme.Controller("sim") as nvme0:
...     ns = await aionvme.Namespace(nvme0, 1)
...     q = await aionvme.Qpair(nvme0, 64)
...     buf = aionvme.Buffer(4096)
...     await ns.write(q, buf, 0, 8)
"""
from aionvme._core import Buffer, Completion
from aionvme.controller import Controller
from aionvme.exceptions import CommandError, CommandTimeout, InterfaceError, NvmeError, VerifyError
from aionvme.namespace import Namespace
from aionvme.pcie import Pcie
from aionvme.qpair import Qpair
from aionvme.settings import config
from aionvme.subsystem import Subsystem
from aionvme.transport.tcp.fabrics import Tcp

__version__ = "0.1.0"

__all__ = (
    "Buffer", "Completion", "CommandError", "CommandTimeout", "Controller", "InterfaceError",
    "Namespace", "NvmeError", "Pcie", "Qpair", "Subsystem", "Tcp", "VerifyError", "config",
)
