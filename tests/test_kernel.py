"""The kernel transport on the host, without an NVMe device: the io_uring path
(128-byte SQEs, 32-byte CQEs, the registered eventfd) against a file that has no
uring_cmd, so every command comes back with the kernel's own error; the admin
ioctl path likewise; and what the transport refuses before anything is sent."""
from __future__ import annotations

import asyncio
import os

import pytest

import aionvme
from aionvme import _core, capabilities
from aionvme.cmdlog import entries
from aionvme.exceptions import (CapabilityError, InterfaceError, KernelCommandError,
                                QueueDeletedError, QueueFullError)
from aionvme.transport import open_transport
from aionvme.transport.kernel import KernelTransport


@pytest.fixture
def plain_fd():
    fd = os.open(__file__, os.O_RDONLY)
    yield fd
    os.close(fd)


def ring(fd, depth=8):
    try:
        q = _core.KernelQpair(fd, 1, depth)
    except OSError as e:  # a kernel older than 5.19, or io_uring disabled
        pytest.skip(f"io_uring with SQE128/CQE32 is not available here: {e}")
    q.loop = asyncio.get_running_loop()
    q.start()
    return q


async def test_uring_commands_complete_through_the_eventfd(plain_fd):
    q = ring(plain_fd)
    assert q.ring_entries == 8 and q.efd >= 0
    buf = aionvme.Buffer(4096)
    futs = [q.submit(0x02, 1, buf, 4096, i, 0, 7) for i in range(7)]
    assert q.outstanding == 7
    q.strict = True
    with pytest.raises(QueueFullError, match="7 commands outstanding"):
        q.submit(0x02, 1, buf, 4096)
    q.strict = False
    res = await asyncio.gather(*futs, return_exceptions=True)
    # A regular file has no uring_cmd: the kernel fails each one with EOPNOTSUPP.
    assert all(isinstance(r, KernelCommandError) and r.errno == 95 for r in res)
    assert q.wakeups >= 1 and q.outstanding == 0 and buf._inflight == 0
    log = entries(1, q.cmdlog())
    assert [e.cdw(10) for e in log] == list(range(7))
    assert all(e.completed and e.err == 95 for e in log)
    assert "KERNEL ERROR" in str(log[0]) and "errno 95" in str(log[0])
    q.close()
    assert q.closed


async def test_more_commands_than_cids_wait_in_order(plain_fd):
    q = ring(plain_fd, 4)
    buf = aionvme.Buffer(4096)
    futs = [q.submit(0x02, 1, buf, 512, i) for i in range(10)]
    assert q.outstanding == 3 and q.queued == 7 and len(q.pending()) == 10
    res = await asyncio.gather(*futs, return_exceptions=True)
    assert all(isinstance(r, KernelCommandError) for r in res) and q.queued == 0
    assert [e.cdw(10) for e in entries(1, q.cmdlog())] == list(range(10))  # in order
    assert buf._inflight == 0 and q.reaped == 10 and q.completions == 10
    q.close()


async def test_one_enter_for_many_submits_and_cid_reuse(plain_fd):
    q = ring(plain_fd, 4)
    buf = aionvme.Buffer(4096)
    for _ in range(5):  # more commands in all than CIDs: they are freed and reused
        res = await asyncio.gather(*(q.submit(0x01, 1, buf, 512) for _ in range(3)),
                                   return_exceptions=True)
        assert all(isinstance(r, KernelCommandError) for r in res)
    assert len(q.cmdlog()) == 15 and q.bad_completions == []
    q.close()


async def test_uring_refuses_what_the_kernel_builds_itself(plain_fd):
    q = ring(plain_fd)
    buf = aionvme.Buffer(4096)
    for kw in ({"sgl": True}, {"prp1": 0x1000}, {"prp2": 0}, {"flags": 0x40}):
        with pytest.raises(CapabilityError, match="the kernel backend has no prp") as e:
            q.submit(0x02, 1, buf, 4096, **kw)
        assert (e.value.backend, e.value.capability) == ("kernel", "prp")
    with pytest.raises(CapabilityError, match="no fused"):
        q.submit(0x02, 1, buf, 4096, flags=1)
    with pytest.raises(InterfaceError, match="smaller than the transfer"):
        q.submit(0x02, 1, buf, 8192)
    with pytest.raises(InterfaceError, match="buf is required"):
        q.submit(0x02, 1, None, 512)
    with pytest.raises(CapabilityError, match="ask for 8192 bytes but its buffer has 4096"):
        q.submit(0x02, 1, buf, dev_len=8192)
    assert q.outstanding == 0
    q.close()
    with pytest.raises(QueueDeletedError):
        q.submit(0x02, 1, buf, 4096)


async def test_admin_ioctl_runs_off_the_loop(plain_fd):
    a = _core.KernelAdminQueue(plain_fd, 8)
    a.loop = asyncio.get_running_loop()
    buf = aionvme.Buffer(4096)
    res = await asyncio.gather(*(a.submit(0x06, 0, buf, 4096, 1) for _ in range(5)),
                               return_exceptions=True)
    # Not an NVMe device: the ioctl fails with ENOTTY.
    assert all(isinstance(r, KernelCommandError) and r.errno == 25 for r in res)
    assert a.outstanding == 0 and len(a.cmdlog()) == 5
    for opcode, cap in ((0x01, "raw_queues"), (0x05, "raw_queues"), (0x0C, "aer"),
                        (0x7C, "doorbell_buffer")):
        with pytest.raises(CapabilityError, match=cap.replace("_", " ")) as e:
            a.submit(opcode)
        assert e.value.capability == cap and cap in capabilities.ALL
    a.close()


def test_the_kernel_transport_has_only_the_ioworker_of_the_pcie_capabilities():
    assert KernelTransport.capabilities == {capabilities.IOWORKER}
    from aionvme.transport import capabilities_of
    assert capabilities_of("/dev/nvme0") == ("kernel", frozenset({"ioworker"}))
    with pytest.raises(CapabilityError, match="the kernel backend has no registers"):
        capabilities.require(KernelTransport.capabilities, capabilities.REGISTERS, "kernel",
                             "register 0x1c")


def test_backend_address_errors(tmp_path):
    with pytest.raises(InterfaceError, match="not a controller device"):
        KernelTransport("/dev/nvme0n1")
    with pytest.raises(InterfaceError, match="does not exist"):
        open_transport("/dev/nvme987")
    with pytest.raises(InterfaceError, match="names no backend"):
        open_transport("/dev/sda")


def test_ioworker_engine_on_io_uring_stops_at_the_kernels_error(plain_fd):
    """The worker's native loop on its own io_uring (here in-process, on a file
    without uring_cmd): the first command the kernel fails ends the run."""
    data, aux = aionvme.Buffer(8 * 4096), aionvme.Buffer(8 * 16)
    stats = _core.IOWorkerStats()
    arena = _core.arena()
    spec = {
        "backend": "kernel", "arena_size": arena.size,
        "fds": {"arena": os.dup(arena.fd), "stats": stats.fd},
        "queue": {"path": __file__, "qid": 0x8001, "depth": 9},
        "nsid": 1, "lba_size": 512, "io_size": 8, "lba_align": 8, "lba_step": 8,
        "lba_random": 1, "region_start": 0, "region_end": 1 << 20, "lba_start": 0,
        "qdepth": 8, "time_ns": 0, "io_count": 100, "iops": 0, "timeout_ns": 5 * 10**9,
        "mix": bytes(1000), "data_iova": data.iova, "aux_iova": aux.iova,
    }
    try:
        assert _core.ioworker_run(spec, stats) == 0
    except OSError as e:
        pytest.skip(f"io_uring with SQE128/CQE32 is not available here: {e}")
    snap = stats.snapshot()
    assert snap["reason"] == "error" and snap["errors"] >= 1
    assert snap["first_error"]["kind"] == "kernel" and snap["first_error"]["errno"] == 95
    assert snap["first_error"]["opcode"] == 0x02 and snap["submitted"] >= 1
    stats.close()
