"""What a transport or device backend can do, as data.

Every backend and transport publishes a ``frozenset`` of these names
(``nvme0.capabilities``); the API raises ``CapabilityError`` naming the one
that is missing, and the pytest plugin skips a test marked
``@pytest.mark.needs("fault_injection")`` with that reason.  One vocabulary,
defined here, below every layer that uses it.
"""
from __future__ import annotations

from aionvme.exceptions import CapabilityError

CONFIG_SPACE = "config_space"        # PCI configuration space (Pcie, cap_offset, PM)
REGISTERS = "registers"              # controller registers: BAR0 MMIO or Fabrics properties
MSIX = "msix"                        # MSI-X table and vectors the host programs
RAW_QUEUES = "raw_queues"            # the host creates and deletes I/O queues, rings in host memory
PRP = "prp"                          # the host builds PRPs/SGLs and may pass raw prp1/prp2
DOORBELL_BUFFER = "doorbell_buffer"  # Doorbell Buffer Config (shadow doorbells, EventIdx)
FLR = "flr"                          # function level reset
NSSR = "nssr"                        # NVM subsystem reset through the NSSR register
D3HOT = "d3hot"                      # PCI power management D3hot -> D0
POWER_CYCLE = "power_cycle"          # power off and on by software
FAULT_INJECTION = "fault_injection"  # the simulator's nvme0.sim control plane
IOWORKER = "ioworker"                # native ioworkers in worker processes
AER = "aer"                          # Asynchronous Event Requests sent by the host
FUSED = "fused"                      # fused operations (SQE FUSE bits)

ALL = frozenset({CONFIG_SPACE, REGISTERS, MSIX, RAW_QUEUES, PRP, DOORBELL_BUFFER, FLR, NSSR,
                 D3HOT, POWER_CYCLE, FAULT_INJECTION, IOWORKER, AER, FUSED})

# A PCIe function reached through memory queues: what every PCIe backend offers.
PCIE = frozenset({CONFIG_SPACE, REGISTERS, MSIX, RAW_QUEUES, PRP, DOORBELL_BUFFER, FLR, D3HOT,
                  IOWORKER, AER, FUSED})


def require(have: frozenset[str], capability: str, who: str, what: str = "") -> None:
    """Raise CapabilityError unless ``capability`` is in ``have``."""
    if capability not in have:
        doing = f"{what}: " if what else ""
        raise CapabilityError(f"{doing}the {who} backend has no {capability.replace('_', ' ')}",
                              backend=who, capability=capability)
