"""IOWorker arguments added after the seed (io_size ranges, lists and ratios,
hot/cold distribution, data patterns, io_sequence replay) and its life cycle
around resets, power cycles, Ctrl-C, task cancellation and Controller.close.
Sizes and distributions are checked on the simulator's raw media or through
exact byte counts, within statistical tolerances; no timed assertions."""
import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import zlib

import pytest

import aionvme
from aionvme.exceptions import IOWorkerCommandError, IOWorkerStopped
from aionvme.workers import worker as worker_mod
from simconf import assert_cleaned, gone

LBA = 512  # the default simulated namespace's LBA size


def media(nvme0, lba, count):
    """Raw LBAs from the simulator, as a list of LBA-sized blocks."""
    data = b"".join(nvme0.sim.media(1, s, min(1000, lba + count - s))
                    for s in range(lba, lba + count, 1000))
    return [data[i * LBA:(i + 1) * LBA] for i in range(count)]


async def started(w, done=1):
    while not w._stats.started or w._stats.snapshot()["done"] < done:
        await asyncio.sleep(0.01)


# -- io_size ----------------------------------------------------------------------
async def test_io_size_list_draws_only_its_sizes(nvme0, nvme0n1):
    start = 1_900_000  # a multiple of 8
    r = await nvme0n1.ioworker(io_size=[1, 3], lba_align=8, read_percentage=0, qdepth=8,
                               io_count=60, region_start=start, region_end=start + 800,
                               pattern=0x5A5A5A5A)
    assert r.io_count_write == 60
    blocks = media(nvme0, start, 808)
    runs = []
    for slot in range(0, 808, 8):
        written = [b != bytes(LBA) for b in blocks[slot:slot + 8]]
        n = written.index(False) if False in written else 8
        assert not any(written[n:]), f"slot {start + slot}: a gap inside an IO"
        runs.append(n)
    assert set(runs) <= {0, 1, 3} and {1, 3} <= set(runs)
    assert not any(b != bytes(LBA) for b in blocks[800:])  # nothing past the region


@pytest.mark.parametrize("io_size, mean", [
    ({1: 3, 64: 1}, (3 * 1 + 64) / 4),
    (range(8, 65, 8), 36.0),
    ((1, 8), 4.5),
    ([2, 2, 8], 4.0),
])
async def test_io_size_ratios_give_the_mean_size(nvme0n1, io_size, mean):
    r = await nvme0n1.ioworker(io_size=io_size, qdepth=32, io_count=4000)
    assert r.io_count_read == 4000 and r.error == 0
    got = r.data_bytes / LBA / r.io_count
    # 4000 draws: the standard error of the mean is below 0.5 LBA for every case here.
    assert abs(got - mean) < max(2.5, mean * 0.08), (got, mean)


async def test_sequential_varying_sizes_are_contiguous(nvme0, nvme0n1):
    start = 1_910_000
    r = await nvme0n1.ioworker(io_size=[2, 5], lba_align=1, lba_random=False, read_percentage=0,
                               qdepth=1,
                               io_count=20, region_start=start, region_end=start + 500,
                               pattern=0x01020304)
    total = r.data_bytes // LBA
    assert r.io_count_write == 20 and 40 <= total <= 100
    written = [b != bytes(LBA) for b in media(nvme0, start, 120)]
    # Each IO starts where the last ended: one run from the region start, no gaps.
    assert written == [True] * total + [False] * (120 - total)


# -- distribution ------------------------------------------------------------------
async def test_distribution_keeps_io_in_its_hot_section(nvme0, nvme0n1):
    start, section = 1_920_000, 20
    dist = [0] * 100
    dist[42] = 100
    r = await nvme0n1.ioworker(io_size=1, lba_align=1, read_percentage=0, qdepth=8,
                               io_count=300, region_start=start,
                               region_end=start + 100 * section, distribution=dist,
                               pattern=0x0F0F0F0F)
    assert r.io_count_write == 300
    written = [i for i, b in enumerate(media(nvme0, start, 100 * section)) if b != bytes(LBA)]
    assert written and {i // section for i in written} == {42}
    assert len(written) == section  # 300 writes over 20 LBAs: every one of them


async def test_distribution_splits_io_by_the_percentages(nvme0, nvme0n1):
    start, section = 1_890_000, 2000
    dist = [0.0] * 100
    dist[10], dist[90] = 75.0, 25.0
    r = await nvme0n1.ioworker(io_size=1, lba_align=1, read_percentage=0, qdepth=8,
                               io_count=400, region_start=start,
                               region_end=start + 100 * section, distribution=dist,
                               pattern=0xF0F0F0F0)
    assert r.io_count_write == 400

    def hits(sec):
        return sum(b != bytes(LBA) for b in media(nvme0, start + sec * section, section))
    hot, warm, cold = hits(10), hits(90), hits(50)
    assert cold == 0
    # Random writes over 2000 LBAs: a few land twice, so distinct LBAs are a little under
    # the writes (about 375 of 400 expected); writes elsewhere would show up as fewer.
    assert hot + warm >= 350
    assert 0.65 <= hot / (hot + warm) <= 0.85


# -- patterns ----------------------------------------------------------------------
@pytest.mark.parametrize("pattern, check", [
    ("ones", lambda b: b == b"\xff" * LBA),
    (0x12345678, lambda b: b == bytes.fromhex("78563412") * (LBA // 4)),
    (("random", 50), lambda b: b[256:] == bytes(256) and len(set(b[:256])) > 100
     and 0.45 <= len(zlib.compress(b)) / LBA <= 0.6),
    ("random", lambda b: len(zlib.compress(b)) >= LBA * 0.98),
    ("zeroes", lambda b: b == bytes(LBA)),
], ids=["ones", "dword", "random50", "random", "zeroes"])
async def test_patterns_on_media(nvme0, nvme0n1, pattern, check):
    start = 1_930_000 + 100 * ["ones", 0x12345678, ("random", 50), "random", "zeroes"].index(pattern)
    kw = {"io_size": 1, "lba_random": False, "read_percentage": 0, "qdepth": 4, "io_count": 8,
          "region_start": start, "region_end": start + 8}
    kw["stamp"] = False  # the bare pattern, no LBA stamps
    await nvme0n1.ioworker(pattern="ones", **kw)  # something else first: zeroes must overwrite it
    await nvme0n1.ioworker(pattern=pattern, **kw)
    blocks = media(nvme0, start, 8)
    assert all(check(b) for b in blocks)
    if isinstance(pattern, tuple) or pattern == "random":
        assert len(set(blocks[:4])) == 4  # one buffer per command slot, each its own data


# -- io_sequence -------------------------------------------------------------------
async def test_io_sequence_replays_in_order_at_its_times(nvme0, nvme0n1):
    a, b = 1_940_000, 1_940_100
    seq = [(0, "write", a, 4),
           (0, 0x08, b, 2),                  # Write Zeroes, then written over later
           (100_000, "write_zeroes", a, 2),  # after the write of a..a+3
           (200_000, 0x01, b, 2),
           (300_000, "read", a, 4),
           (300_000, "flush", 0, 1)]
    r = await nvme0n1.ioworker(io_sequence=seq, qdepth=8, pattern=0x11111111, stamp=False)
    assert r.reason == "io_count" and r.io_count == 6 and r.error == 0
    assert r.io_counts == {"read": 1, "write": 2, "flush": 1, "write_zeroes": 2,
                           "deallocate": 0, "compare": 0, "verify": 0}
    assert r.mseconds >= 300  # the last commands were due 300 ms after the start
    ones = b"\x11" * LBA
    assert media(nvme0, a, 5) == [bytes(LBA)] * 2 + [ones] * 2 + [bytes(LBA)]
    assert media(nvme0, b, 3) == [ones] * 2 + [bytes(LBA)]


async def test_io_sequence_per_second_follows_the_times(nvme0n1):
    seq = [(t * 1000, "read", t, 1) for t in range(0, 1500, 100)]  # 15 reads over 1.4 s
    r = await nvme0n1.ioworker(io_sequence=seq, qdepth=1)
    assert r.io_count == 15 and r.io_per_second[0] == 10 and sum(r.io_per_second[1:]) == 5


# -- arguments rejected before any process starts --------------------------------------
@pytest.mark.parametrize("kw, match", [
    ({"io_size": range(8, 8)}, "io_size range or list is empty"),
    ({"io_size": (9, 3)}, r"io_size range \(9, 3\) is empty"),
    ({"io_size": (1, 2, 3)}, "must be .lo, hi."),
    ({"io_size": [8, 2048]}, "io_size 2048 is outside 1..1024 .MDTS"),
    ({"io_size": {8: 0, 16: 0}}, "io_size: the ratios sum to 0"),
    ({"io_size": {8: -1}}, r"io_size\[8\] -1 must be a number >= 0"),
    ({"io_size": 8.5}, "io_size must be an int, a range"),
    ({"distribution": [1] * 99}, "distribution must be a list of 100"),
    ({"distribution": [0.9] * 100}, "distribution sums to 90"),
    ({"distribution": [-1] + [101 / 99] * 99}, r"distribution\[0\] -1 is outside 0..100"),
    ({"distribution": [1] * 100, "lba_random": False}, "distribution applies to random IO"),
    ({"distribution": [1] * 100, "region_start": 0, "region_end": 99 * 8},
     "distribution needs at least 100 aligned start LBAs"),
    ({"pattern": ("random", 101)}, "pattern compressible percent 101 is outside 0..100"),
    ({"pattern": ("stripes", 5)}, r"pattern \('stripes', 5\) is not"),
    ({"io_sequence": []}, "io_sequence must be a non-empty list"),
    ({"io_sequence": [(0, "read", 0, 1), (5, "read", 0)]}, r"io_sequence\[1\] .* is not a"),
    ({"io_sequence": [(10, "read", 0, 1), (5, "read", 0, 1)]}, r"io_sequence\[1\] time_us 5 is before"),
    ({"io_sequence": [(0, "trim", 0, 1)]}, r"io_sequence\[0\] op 'trim' is not one of"),
    ({"io_sequence": [(0, 0x7F, 0, 1)]}, r"io_sequence\[0\] op 127 is not one of"),
    ({"io_sequence": [(0, "read", 0, 0)]}, r"io_sequence\[0\] nlb 0 is outside 1..1024"),
    ({"io_sequence": [(0, "read", 2097150, 8)]}, r"io_sequence\[0\] lba 2097150 is outside 0..2097144"),
    ({"io_sequence": [(-1, "read", 0, 1)]}, r"io_sequence\[0\] time_us -1 is outside"),
    ({"io_sequence": [(0, "read", 0, 1)], "io_count": 5}, "io_count does not apply with io_sequence"),
    ({"io_sequence": [(0, "read", 0, 1)], "iops": 5}, "iops does not apply with io_sequence"),
])
async def test_bad_new_arguments_rejected_before_any_process(nvme0, nvme0n1, kw, match):
    before = set(nvme0._io_qpairs)
    with pytest.raises(aionvme.InterfaceError, match=match):
        nvme0n1.ioworker(**kw)
    assert set(nvme0._io_qpairs) == before and not nvme0._ioworkers


# -- errors --------------------------------------------------------------------------
async def test_error_code_is_the_seeds(nvme0, nvme0n1):
    with nvme0.sim.inject_status(opcode=0x02, nsid=1, sct=0, sc=0x81, count=1):
        with pytest.raises(IOWorkerCommandError) as e:
            await nvme0n1.ioworker(io_size=8, qdepth=4, io_count=100_000)
    r = e.value.result
    assert r.error_code == 0x0081 and r.reason == "error"  # (SCT << 8) | SC, as the seed's


# -- stopped by the test -----------------------------------------------------------------
async def _power_cycle(nvme0, subsystem, pcie):
    await subsystem.power_cycle(0)


async def _power_loss(nvme0, subsystem, pcie):
    nvme0.sim.power_loss()
    await subsystem.power_on()


RESETS = {
    "controller reset": lambda nvme0, subsystem, pcie: nvme0.reset(),
    "function level reset": lambda nvme0, subsystem, pcie: pcie.reset(),
    "NVM subsystem reset": lambda nvme0, subsystem, pcie: subsystem.reset(),
    "power cycle": _power_cycle,
    "power loss": _power_loss,
}


@pytest.mark.parametrize("cause", list(RESETS))
async def test_reset_during_io_stops_the_workers(nvme0, nvme0n1, subsystem, pcie, cause):
    with pytest.raises(IOWorkerStopped) as e:
        async with nvme0n1.ioworker(io_size=8, qdepth=32, time=60) as a, \
                nvme0n1.ioworker(io_size=1, qdepth=8, time=60, read_percentage=0,
                                 region_start=1_950_000, region_end=1_960_000) as b:
            await started(a, 100)
            await started(b, 100)
            qids = {a.qid, b.qid}
            await RESETS[cause](nvme0, subsystem, pcie)
            # The reset waited for both: gone, and their queues were not created again.
            assert not a.running and not b.running
            assert not qids & set(nvme0._io_qpairs)
            assert not qids & set(nvme0.sim.state()["io_queues"])
    assert e.value.cause == cause and cause in str(e.value)
    for w in (a, b):
        assert w.result.stopped_by == cause and w.result.reason == "abandoned"
        assert w._proc.returncode == 0  # it left by itself, not killed
        assert_cleaned(nvme0, w)
    r = await nvme0n1.ioworker(io_size=8, io_count=1000)  # the controller works again
    assert r.io_count == 1000 and r.error == 0


async def test_shutdown_notification_stops_the_workers_first(nvme0, nvme0n1, subsystem):
    with pytest.raises(IOWorkerStopped, match="shutdown notification"):
        async with nvme0n1.ioworker(io_size=8, qdepth=16, time=60) as w:
            await started(w, 100)
            await subsystem.shutdown_notify()
            assert not w.running and (nvme0[0x1C] >> 2) & 3 == 2   # CSTS.SHST: complete
    assert w.result.stopped_by == "shutdown notification"
    assert_cleaned(nvme0, w)
    await nvme0.reset()                                 # 3.6.2: a reset before new commands
    r = await nvme0n1.ioworker(io_size=8, io_count=1000)
    assert r.io_count == 1000 and r.error == 0


async def test_reset_stop_with_check_false_returns_the_result(nvme0, nvme0n1):
    async with nvme0n1.ioworker(io_size=8, qdepth=16, time=60, check=False) as w:
        await started(w, 100)
        await nvme0.reset()
    assert w.result.stopped_by == "controller reset" and w.result.io_count >= 100
    assert_cleaned(nvme0, w)


async def test_cancelling_the_awaiting_task_stops_the_worker_cleanly(nvme0, nvme0n1):
    w = nvme0n1.ioworker(io_size=8, qdepth=16, time=60)

    async def run():
        return await w
    task = asyncio.ensure_future(run())
    while w._stats is None or not w._stats.started or w._stats.snapshot()["done"] < 100:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert w.result.reason == "stopped" and w.result.io_count >= 100
    assert w._proc.returncode == 0  # drained and exited, not killed
    assert_cleaned(nvme0, w)


async def test_controller_close_stops_running_workers_first():
    nvme = await aionvme.Controller("sim")
    try:
        ns = await aionvme.Namespace(nvme, 1)
        ws = [await ns.ioworker(io_size=8, qdepth=16).start(),
              await ns.ioworker(io_size=1, qdepth=4, read_percentage=0).start()]
        for w in ws:
            await started(w, 10)
    finally:
        await nvme.close()
    for w in ws:
        assert not w.running and gone(w.pid) and w.qid is None
        assert w.result.stopped_by == "controller close" and w.result.reason == "stopped"
        assert w._proc.returncode == 0
        with pytest.raises(IOWorkerStopped, match="controller close"):
            await w.wait()
    assert not nvme._ioworkers and not nvme._io_qpairs


CTRL_C = textwrap.dedent("""
    import asyncio, os, sys
    import aionvme

    w = None

    async def main():
        global w
        async with aionvme.Controller("sim") as nvme0:
            ns = await aionvme.Namespace(nvme0, 1)
            w = ns.ioworker(io_size=8, qdepth=16, time=60)
            await w.start()
            while not w._stats.started or w._stats.snapshot()["done"] < 100:
                await asyncio.sleep(0.01)
            print("STARTED", w.pid, flush=True)
            await w.wait()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("INTERRUPTED", w.result.reason, w._proc.returncode,
              os.path.exists(f"/proc/{w.pid}"), w.qid, flush=True)
""")


def test_ctrl_c_stops_the_worker_cleanly():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(os.path.dirname(
        os.path.abspath(aionvme.__file__))), env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-c", CTRL_C], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("STARTED"), line + proc.stderr.read()
        worker_pid = int(line.split()[1])
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.split() == ["INTERRUPTED", "stopped", "0", "False", "None"], out + err
    assert gone(worker_pid)


# -- several workers, pinned where there are cores ------------------------------------------
async def test_workers_are_pinned_when_there_are_cores(nvme0, nvme0n1, monkeypatch):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one core: nothing to pin to")
    monkeypatch.setattr(worker_mod, "PIN_MIN_CPUS", 2)
    async with nvme0n1.ioworker(io_size=8, qdepth=8, io_count=200_000) as w:
        await started(w)
        assert w.cpu == cpus[1]
        assert os.sched_getaffinity(w.pid) == {cpus[1]}
        w.cancel()
    assert w.result.error == 0


async def test_workers_are_not_pinned_below_the_threshold(nvme0, nvme0n1):
    if len(os.sched_getaffinity(0)) >= worker_mod.PIN_MIN_CPUS:
        pytest.skip("enough cores: workers are pinned here")
    async with nvme0n1.ioworker(io_size=8, qdepth=8, io_count=200_000) as w:
        await started(w)
        assert w.cpu is None and os.sched_getaffinity(w.pid) == os.sched_getaffinity(0)
        w.cancel()
