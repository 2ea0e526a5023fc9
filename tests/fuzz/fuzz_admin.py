"""Coverage-guided fuzzer (atheris) of the simulator's admin plane: SQEs fed to
the admin queue of a simulated controller in this process, as a host would
(admin SQ in the arena, tail doorbell, then the device's queue processing).

One input: byte 0 is the number of SQEs (at most 31), then the SQEs (64 bytes
each), then host memory copied to HOST_IOVA (data buffers, PRP lists).  The
oracle: nothing raises out of the device, and no completion carries 00/06
Internal Error (the status a handler that raised is given: a simulator bug).

    python tests/fuzz/fuzz_admin.py -max_total_time=10 CORPUS_DIR [SEED_DIR]
"""
from __future__ import annotations

import mmap
import os
import struct
import sys

import atheris

with atheris.instrument_imports(include=["aionvme.simulator"]):
    from aionvme import _core
    from aionvme.simulator.config import NamespaceConfig, SimConfig
    from aionvme.simulator.device import SimDevice

BAR0_SIZE = 0x4000
ARENA_SIZE = 4 << 20
RESERVED = 1 << 20
ASQ, ACQ = RESERVED, RESERVED + 0x1000
HOST_IOVA = RESERVED + 0x10000
DEPTH = 32

_bar_fd = os.memfd_create("fuzz-bar")
os.ftruncate(_bar_fd, BAR0_SIZE)
_arena_fd = os.memfd_create("fuzz-arena")
os.ftruncate(_arena_fd, ARENA_SIZE)
_arena = mmap.mmap(_arena_fd, ARENA_SIZE)
_irq_fds = [os.eventfd(0, os.EFD_NONBLOCK) for _ in range(2)]
_core_ = _core.SimCore(_bar_fd, _arena_fd, ARENA_SIZE, _irq_fds)
_config = SimConfig(vectors=2, ready_delay_ms=0, shutdown_delay_ms=0,
                    namespaces=[NamespaceConfig(size=1 << 20), NamespaceConfig(size=2 << 20,
                                                                              lba_size=4096)]
                    ).check()


def _enabled_device() -> SimDevice:
    """A controller fresh from power on, enabled with a 32-entry admin queue."""
    _arena[:] = bytes(ARENA_SIZE)
    dev = SimDevice(_core_, _config)
    dev.pci.write(0x04, 2, 0x6)                                    # memory space, bus master
    dev.bar_write(0x24, 4, (DEPTH - 1) | ((DEPTH - 1) << 16))      # AQA
    dev.bar_write(0x28, 8, ASQ)
    dev.bar_write(0x30, 8, ACQ)
    dev.bar_write(0x14, 4, 1 | (6 << 16) | (4 << 20))              # CC.EN, IOSQES, IOCQES
    dev.run_timers()                                               # CSTS.RDY
    assert dev.ready
    return dev


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    n = min(data[0], DEPTH - 1, (len(data) - 1) // 64)
    sqes, host = data[1:1 + 64 * n], data[1 + 64 * n:][:ARENA_SIZE - HOST_IOVA]
    dev = _enabled_device()
    _arena[ASQ:ASQ + len(sqes)] = sqes
    _arena[HOST_IOVA:HOST_IOVA + len(host)] = host
    dev.bar_write(0x1000, 4, n)                                    # SQ0TDBL
    dev.run_queues()
    dev.run_timers()
    for i in range(DEPTH):
        status = struct.unpack_from("<H", _arena, ACQ + 16 * i + 14)[0]
        if not status & 1:                                         # phase tag: not posted
            break
        sct, sc = (status >> 9) & 7, (status >> 1) & 0xFF
        cid = struct.unpack_from("<H", _arena, ACQ + 16 * i + 12)[0]
        opcode = next((sqes[64 * j] for j in range(n)
                       if struct.unpack_from("<H", sqes, 64 * j + 2)[0] == cid), None)
        assert (sct, sc) != (0, 0x06), f"Internal Error for opcode {opcode} (cid {cid})"


if __name__ == "__main__":
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()
