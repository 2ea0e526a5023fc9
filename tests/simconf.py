"""Helpers for the conformance tests (tests/test_conf_*.py, run on every
backend) and the simulator's own tests (tests/test_sim_*.py): a
``sim:PATH.toml`` address with chosen SimConfig fields, bounded waits, and
the marks for tests that need the simulator or that QEMU fails."""
from __future__ import annotations

import asyncio
import os
import pathlib
from typing import Any, Awaitable, Callable

import pytest


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def sim_address(tmp_path: pathlib.Path, namespaces: list[dict[str, Any]] | None = None,
                **fields: Any) -> str:
    """Write a simulator TOML with ``fields`` (SimConfig names) and return ``sim:PATH``."""
    lines = [f"{k} = {_toml(v)}" for k, v in fields.items()]
    for ns in namespaces or []:
        lines.append("[[namespace]]")
        lines += [f"{k} = {_toml(v)}" for k, v in ns.items()]
    path = tmp_path / "sim.toml"
    path.write_text("\n".join(lines) + "\n")
    return f"sim:{path}"


async def wait_for_state(probe: Callable[[], Awaitable[bool] | bool], what: str,
                         tries: int = 500, step: float = 0.01) -> None:
    """Poll ``probe`` until it is true; fail naming ``what`` after ``tries`` polls.

    The bound only keeps a broken device from hanging the suite: no test
    asserts how fast a state is reached.
    """
    for _ in range(tries):
        r = probe()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return
        await asyncio.sleep(step)
    raise AssertionError(f"the device never reached: {what}")


# The conformance suites (tests/test_conf_*.py) run on every backend; a test
# that only the simulator can run is marked ``sim_only``.  Where a device
# other than the simulator departs from the NVMe specification the test keeps
# its assertion and is an expected, strict failure on that device.
ON_QEMU = "__import__('simconf').on_qemu(config.getoption('--pciaddr'))"


ON_VFIO = "__import__('simconf').on_vfio(config.getoption('--pciaddr'))"
ON_QEMU_DIRECT = ("__import__('simconf').on_qemu(config.getoption('--pciaddr')) and "
                  "not __import__('simconf').on_vfio(config.getoption('--pciaddr'))")


def qemu_deviation(reason: str, *, through_vfio: bool = True) -> pytest.MarkDecorator:
    """Strict xfail when the device is QEMU; ``reason`` cites the NVMe 2.0
    section, what it requires, and what QEMU 7.2 does instead.
    ``through_vfio=False``: seen through vfio-pci (the test guest) the
    deviation is hidden, because vfio-pci itself does what the spec asks."""
    return pytest.mark.xfail(condition=ON_QEMU if through_vfio else ON_QEMU_DIRECT,
                             reason=reason, strict=True)


def vfio_deviation(reason: str) -> pytest.MarkDecorator:
    """Strict xfail on the vfio backend, where vfio-pci virtualises what the test
    checks; ``reason`` names the field and what vfio-pci
    (drivers/vfio/pci/vfio_pci_config.c) does with it."""
    return pytest.mark.xfail(condition=ON_VFIO, reason=reason, strict=True)


def on_vfio(pciaddr: str) -> bool:
    """The device is reached through vfio-pci (a PCI address)."""
    from aionvme.backends.vfio import parse_address
    return parse_address(pciaddr) is not None


QEMU_NVME_ID = ("0x1b36", "0x0010")  # QEMU's NVMe controller (hw/nvme): Red Hat, Inc.


def on_qemu(pciaddr: str) -> bool:
    """The device is QEMU's controller: the qemu backend, or (vfio, in the test
    guest) a PCI function with QEMU NVMe's vendor and device IDs."""
    if pciaddr.split(":", 1)[0] == "qemu":
        return True
    from aionvme.backends.vfio import parse_address
    bdf = parse_address(pciaddr)
    if bdf is None:
        return False
    try:
        ids = tuple(pathlib.Path(f"/sys/bus/pci/devices/{bdf}/{f}").read_text().strip()
                    for f in ("vendor", "device"))
    except OSError:
        return False
    return ids == QEMU_NVME_ID


def gone(pid: int) -> bool:
    """The process exited and was reaped (no zombie left)."""
    return not os.path.exists(f"/proc/{pid}")


def assert_cleaned(nvme0: Any, w: Any) -> None:
    """An ioworker that ended left nothing behind: no process, no queue in the host
    or on the simulated device, no entry among the controller's workers."""
    assert w.qid is None and not w.running
    assert gone(w.pid)
    assert w not in nvme0._ioworkers
    assert all(q.reap for q in nvme0._io_qpairs.values())  # no worker queue left in the host
    assert set(nvme0.sim.state()["io_queues"]) == set(nvme0._io_qpairs)  # nor on the device
