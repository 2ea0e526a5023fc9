"""The transport seam: the verbs the public API calls to reach a controller.

Modelled on SPDK's ``struct spdk_nvme_transport_ops`` (lib/nvme/nvme_transport.c)
and Linux's ``struct nvme_ctrl_ops`` (drivers/nvme/host/nvme.h): one table of
verbs per transport, one module each.  ``Controller`` calls only these; it
never names a transport or a backend.

- PCIe (``aionvme.transport.pcie``): SQ/CQ rings in the DMA arena, PRPs and
  SGLs, doorbells, MSI-X eventfds, over a device backend (``sim``, ``qemu``).
- TCP (``aionvme.transport.tcp``): capsules and PDUs on one socket per queue;
  registers are Fabrics Property Get/Set; an I/O queue is a connection and its
  Fabrics Connect (no Create I/O SQ/CQ: no ``raw_queues`` capability).
- kernel (``aionvme.transport.kernel``): a drive left on Linux's nvme driver;
  admin commands by ioctl, I/O by io_uring passthrough, completions on the
  ring's eventfd.

A queue, whatever the transport, is a ``CoreQpair``-like object: ``submit``
returns a future, its poller completes it from the event loop.
"""
from __future__ import annotations

from typing import Any, Protocol


class Transport(Protocol):
    name: str                       # "pcie", "tcp", "kernel"
    capabilities: frozenset[str]    # names from aionvme.capabilities
    device: Any                     # the native device (PCIe), or None

    @property
    def backend_name(self) -> str: ...  # "sim", "qemu", ... (the transport's own name if none)

    # registers: MMIO on PCIe, Property Get/Set on fabrics
    def reg_read(self, offset: int, size: int = 4) -> int: ...
    def reg_write(self, offset: int, size: int, value: int) -> None: ...

    # bring-up: interrupts wired and the admin queue set while CC.EN is 0
    async def start(self, admin_depth: int) -> None: ...            # before bring-up (fabrics: Connect)
    def prepare(self, loop: Any) -> int: ...                        # -> interrupt vectors usable
    def admin_queue(self, depth: int, dstrd: int) -> Any: ...       # a new admin queue
    def set_admin_queue(self, aq: Any, depth: int) -> None: ...     # the controller uses it
    def io_queue(self, qid: int, depth: int, dstrd: int) -> Any: ...
    # without RAW_QUEUES: the transport makes and ends an I/O queue itself
    async def connect_io_queue(self, queue: Any) -> None: ...
    async def disconnect_io_queue(self, queue: Any) -> None: ...
    def attach(self, queue: Any, vector: int) -> None: ...          # its completions reach the loop
    def detach(self, queue: Any, vector: int) -> None: ...
    def poll(self, vector: int) -> None: ...                        # reap what is there now
    def msix_mask(self, vector: int, masked: bool) -> None: ...     # MSIX capability
    def msix_pending(self, vector: int) -> bool: ...
    def irq_count(self, vector: int) -> int: ...
    def doorbell_fds(self) -> Any: ...                              # IOWORKER: a worker rings itself
    def worker_queue(self, nsid: int, depth: int) -> Any: ...       # IOWORKER without RAW_QUEUES:
                                                                    # what a worker makes its queue of
    def stop_pollers(self) -> None: ...

    # life
    def death(self) -> str | None: ...
    def set_power_loss_hook(self, hook: Any) -> None: ...
    def power_off(self) -> None: ...
    def power_on(self) -> None: ...
    def extension(self, name: str) -> Any: ...
    def close(self) -> None: ...
