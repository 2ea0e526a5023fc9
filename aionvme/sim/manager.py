"""Host side of the ``sim`` backend: start a simulator process and hand it
the DMA arena, the BAR page, the doorbell eventfd and one eventfd per MSI-X
vector over a unix socket (SCM_RIGHTS)."""
from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys

from aionvme import _core
from aionvme.exceptions import DeviceError
from aionvme.sim.config import SimConfig

BAR0_SIZE = 0x4000
RESET_POWER_OFF, RESET_POWER_ON = 3, 4  # enum anv_reset_kind


class SimProcess:
    """A running simulator process and the Device attached to it."""

    name = "sim"

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        arena = _core.arena()
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        bar_fd = os.memfd_create("aionvme-bar", os.MFD_CLOEXEC)
        os.ftruncate(bar_fd, BAR0_SIZE)
        db_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        irq_fds = [os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK) for _ in range(config.vectors)]
        env = dict(os.environ)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aionvme.sim", "--fd", str(child.fileno())],
            pass_fds=[child.fileno()], env=env, stdin=subprocess.DEVNULL)
        child.close()
        hello = json.dumps({"config": config.to_dict(), "arena_size": arena.size,
                            "parent_pid": os.getpid()}).encode()
        try:
            socket.send_fds(parent, [struct.pack("<I", len(hello)), hello],
                            [arena.fd, bar_fd, db_fd, *irq_fds])
            parent.settimeout(30)
            ack = parent.recv(4)
            parent.settimeout(None)
        except OSError as e:
            self.proc.kill()
            raise DeviceError(f"the simulator process did not start: {e}") from e
        if ack != b"RDY!":
            self.proc.kill()
            self.proc.wait()
            raise DeviceError(f"the simulator process failed to start (exit code {self.proc.returncode})")
        self.device = _core.Device.open_sim(parent.detach(), bar_fd, db_fd, irq_fds)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def death(self) -> str | None:
        if self.proc.poll() is not None:
            return f"the sim device process exited with code {self.proc.returncode}"
        return None

    def power_off(self) -> None:
        self.device.reset(RESET_POWER_OFF)

    def power_on(self) -> None:
        self.device.reset(RESET_POWER_ON)

    def close(self) -> None:
        """Detach (the process sees EOF and exits) and reap the process."""
        self.device.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
