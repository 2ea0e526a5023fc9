"""IOWorker against the simulator: exact counts, limits, regions, mixes,
throttling, statistics streams, concurrency with admin commands, early
stops, dead workers and device errors.  No timed assertions: each test
checks what the worker did, with generous bounds where time is involved."""
import asyncio
import os
import signal

import pytest

import aionvme
from aionvme.exceptions import IOWorkerCommandError, IOWorkerDied
from simconf import assert_cleaned

LBA = 512  # the default simulated namespace's LBA size


def lbas(data, start, count, size=LBA):
    return [data[i * size:(i + 1) * size] for i in range(count)]


async def test_io_count_is_exact(nvme0, nvme0n1):
    w = nvme0n1.ioworker(io_size=8, qdepth=64, io_count=10_000)
    r = await w
    assert r.io_count_read == 10_000 and r.io_count_write == 0 and r.io_count == 10_000
    assert sum(r.io_per_second) == 10_000
    assert r.error == 0 and r.first_error is None and r.reason == "io_count"
    assert 0 < r.latency_min_us <= r.latency_average_us <= r.latency_max_us
    assert r.latency_percentiles_us[50.0] <= r.latency_percentiles_us[99.0]
    assert r.mbps == pytest.approx(r.iops * 8 * LBA / 1e6, rel=1e-6)
    assert_cleaned(nvme0, w)


async def test_io_count_exact_with_a_mix_and_qdepth_above_count(nvme0n1):
    r = await nvme0n1.ioworker(io_size=1, qdepth=32, io_count=7, read_percentage=50,
                               region_start=900_000, region_end=900_100)
    assert r.io_count_read + r.io_count_write == 7 == r.io_count


async def test_time_limit_is_respected(nvme0, nvme0n1):
    w = nvme0n1.ioworker(io_size=8, qdepth=16, time=1)
    r = await w
    assert r.reason == "time"
    assert 1000 <= r.mseconds < 1000 + 10_000  # it stopped, and not long after its limit
    assert r.io_count > 0 and r.error == 0
    assert_cleaned(nvme0, w)


async def test_writes_stay_in_the_region_and_aligned(nvme0, nvme0n1):
    start = 1_000_000  # a multiple of 8
    r = await nvme0n1.ioworker(io_size=1, lba_align=8, read_percentage=0, qdepth=8,
                               io_count=400, region_start=start - 3, region_end=start + 64,
                               pattern=0xA5A5A5A5)
    assert r.io_count_write == 400
    media = nvme0.sim.media(1, start - 16, 16 + 64 + 16)
    blocks = lbas(media, start - 16, 16 + 64 + 16)
    for i, blk in enumerate(blocks):
        lba = start - 16 + i
        if start <= lba < start + 64 and lba % 8 == 0:
            # the stamp (its LBA, a write token), then the pattern
            assert blk[:8] == lba.to_bytes(8, "little") and blk[8:16] != bytes(8), \
                f"LBA {lba} was not written"
            assert blk[16:] == b"\xa5" * (LBA - 16)
        else:
            assert blk == bytes(LBA), f"LBA {lba} outside the region or unaligned was written"


async def test_sequential_step_and_wrap(nvme0, nvme0n1):
    start = 1_100_000
    r = await nvme0n1.ioworker(io_size=2, lba_random=False, lba_step=5, read_percentage=0,
                               qdepth=1, io_count=12, region_start=start, region_end=start + 30,
                               pattern=b"\x11\x22")
    assert r.io_count_write == 12
    blocks = lbas(nvme0.sim.media(1, start, 40), start, 40)
    # 2-LBA writes at start + 0, 5, ..., 25 (then wrapping to start and start + 5)
    want = {start + k * 5 + j for k in range(6) for j in range(2)}
    for i, blk in enumerate(blocks):
        assert (blk != bytes(LBA)) == (start + i in want), f"LBA {start + i}"
    assert blocks[0][:8] == start.to_bytes(8, "little")
    assert blocks[0][16:] == b"\x11\x22" * ((LBA - 16) // 2)


async def test_negative_step_starts_at_lba_start(nvme0, nvme0n1):
    start = 1_200_000
    await nvme0n1.ioworker(io_size=1, lba_random=False, lba_step=-2, read_percentage=0, qdepth=1,
                           io_count=3, region_start=start, region_end=start + 100,
                           lba_start=start + 10, pattern=0x01010101)
    blocks = lbas(nvme0.sim.media(1, start, 12), start, 12)
    assert [i for i, b in enumerate(blocks) if b != bytes(LBA)] == [6, 8, 10]


async def test_op_mix_within_tolerance(nvme0n1):
    n = 20_000
    r = await nvme0n1.ioworker(io_size=1, qdepth=32, io_count=n, region_start=1_300_000,
                               region_end=1_310_000,
                               op_percentage={0x02: 50, 0x01: 30, 0x0C: 15, 0x08: 5})
    c = r.io_counts
    assert sum(c.values()) == n
    for name, pct in (("read", 50), ("write", 30), ("verify", 15), ("write_zeroes", 5)):
        assert abs(c[name] / n * 100 - pct) < 2.5, (name, c)
    assert c["flush"] == c["deallocate"] == c["compare"] == 0


async def test_read_percentage_mix(nvme0n1):
    r = await nvme0n1.ioworker(io_size=1, qdepth=16, io_count=10_000, read_percentage=70,
                               region_start=1_400_000, region_end=1_401_000)
    assert abs(r.io_count_read / 10_000 - 0.7) < 0.03


async def test_every_opcode_runs(nvme0n1):
    r = await nvme0n1.ioworker(io_size=1, qdepth=8, io_count=700, region_start=1_500_000,
                               region_end=1_500_100, check=False,
                               op_percentage={0x02: 20, 0x01: 20, 0x00: 10, 0x08: 10, 0x09: 20,
                                              0x0C: 20})
    assert r.error == 0, r.first_error
    assert all(r.io_counts[k] for k in ("read", "write", "flush", "write_zeroes", "deallocate",
                                         "verify"))


async def test_iops_throttle(nvme0n1):
    r = await nvme0n1.ioworker(io_size=8, qdepth=16, iops=5000, io_count=1000)
    assert r.io_count == 1000
    # The throttle lets command k go at k / iops seconds: never faster than the limit.
    assert r.iops <= 5000 * 1.05
    assert r.mseconds >= 190
    assert r.iops > 5000 * 0.1  # and not starved (generous: the machine is shared)


async def test_stats_stream(nvme0n1):
    async with nvme0n1.ioworker(io_size=8, qdepth=16, time=1.2, interval=0.2) as w:
        snaps = [s async for s in w.stats()]
    assert len(snaps) >= 3
    counts = [s.io_count for s in snaps]
    assert counts == sorted(counts) and counts[-1] == w.result.io_count
    assert all(s.errors == 0 for s in snaps)
    assert any(s.iops > 0 for s in snaps)
    assert snaps[-1].latency_p99_us >= snaps[-1].latency_percentiles_us[50.0] > 0


async def test_two_workers_and_admin_commands(nvme0, nvme0n1):
    smart = aionvme.Buffer(512)
    async with nvme0n1.ioworker(io_size=8, qdepth=32, time=1, region_end=500_000) as a, \
            nvme0n1.ioworker(io_size=1, qdepth=8, time=1, read_percentage=0,
                             region_start=1_600_000, region_end=1_700_000) as b:
        assert a.qid != b.qid and a.pid != b.pid
        logs = 0
        while a.running or b.running:
            cpl = await nvme0.getlogpage(0x02, smart, 512)
            assert cpl.ok
            logs += 1
            await asyncio.sleep(0.1)
    assert logs >= 3
    assert a.result.io_count_read > 0 and b.result.io_count_write > 0
    assert a.result.error == b.result.error == 0
    assert_cleaned(nvme0, a)
    assert_cleaned(nvme0, b)


async def test_cancel_stops_an_unlimited_worker(nvme0, nvme0n1):
    async with nvme0n1.ioworker(io_size=8, qdepth=8) as w:
        while not w._stats.started or w._stats.snapshot()["done"] < 100:
            await asyncio.sleep(0.01)
        w.cancel()
    assert w.result.reason == "stopped" and w.result.io_count >= 100
    assert_cleaned(nvme0, w)


async def test_unlimited_worker_cannot_be_awaited(nvme0, nvme0n1):
    before = set(nvme0._io_qpairs)
    with pytest.raises(aionvme.InterfaceError, match="never end"):
        await nvme0n1.ioworker()
    assert set(nvme0._io_qpairs) == before


@pytest.mark.parametrize("kw, match", [
    ({"qdepth": 0}, "qdepth 0 is outside 1..1023"),
    ({"qdepth": 1024}, "qdepth 1024 is outside 1..1023"),
    ({"io_size": 0}, "io_size 0 is outside"),
    ({"io_size": 1025}, "io_size 1025 is outside 1..1024 .MDTS"),
    ({"region_start": 100, "region_end": 100}, "region .* is empty"),
    ({"io_size": 8, "region_start": 1, "region_end": 12}, "region .* is empty"),
    ({"region_start": 1 << 40}, "region_start .* is outside"),
    ({"read_percentage": 101}, "read_percentage 101 is outside 0..100"),
    ({"op_percentage": {0x02: 50, 0x01: 40}}, "sums to 90"),
    ({"op_percentage": {0x7F: 100}}, "is not one of the opcodes"),
    ({"time": -1}, "time -1 is outside"),
    ({"time": 24 * 3600 + 1}, "time .* is outside"),
    ({"iops": -5}, "iops -5 is outside"),
    ({"io_count": 1.5}, "io_count must be an int"),
    ({"qprio": 4}, "qprio 4 is outside 0..3"),
    ({"lba_step": 4}, "lba_step applies to sequential"),
    ({"lba_start": 50, "region_start": 100}, "lba_start 50 is outside the region"),
    ({"pattern": "stripes"}, "pattern 'stripes'"),
    ({"interval": 0}, "interval 0 is outside"),
    ({"output_io_per_second": ()}, "output_io_per_second must be a list"),
])
async def test_bad_arguments_rejected_before_any_process(nvme0, nvme0n1, kw, match):
    before = set(nvme0._io_qpairs)
    with pytest.raises(aionvme.InterfaceError, match=match):
        nvme0n1.ioworker(**kw)  # raises here: nothing is started, nothing to await
    assert set(nvme0._io_qpairs) == before


async def test_killed_worker_is_reported_and_its_queue_deleted(nvme0, nvme0n1):
    with pytest.raises(IOWorkerDied) as e:
        async with nvme0n1.ioworker(io_size=8, qdepth=16, time=30) as w:
            while not w._stats.started:
                await asyncio.sleep(0.01)
            os.kill(w.pid, signal.SIGKILL)
    assert e.value.returncode == -signal.SIGKILL
    assert "killed by signal 9" in str(e.value)
    assert_cleaned(nvme0, w)
    r = await nvme0n1.ioworker(io_size=8, io_count=100)  # the controller is fine
    assert r.io_count == 100


async def test_injected_error_stops_the_worker_with_its_cqe(nvme0, nvme0n1):
    with nvme0.sim.inject_status(opcode=0x02, nsid=1, sct=2, sc=0x81, count=1):
        with pytest.raises(IOWorkerCommandError, match="02/81") as e:
            await nvme0n1.ioworker(io_size=8, qdepth=16, io_count=1_000_000)
    err = e.value
    assert (err.sct, err.sc, err.dnr) == (2, 0x81, 1)
    r = err.result
    assert r.error == 1 and r.reason == "error"
    assert r.io_count < 1_000_000
    fe = r.first_error
    assert fe["opcode"] == 0x02 and fe["kind"] == "status" and fe["lba"] == err.lba
    assert (fe["completion"].sct, fe["completion"].sc) == (2, 0x81)
    assert fe["completion"].sqid != 0


async def test_injected_error_with_check_false_returns_the_result(nvme0, nvme0n1):
    with nvme0.sim.inject_status(opcode=0x01, nsid=1, sct=0, sc=0x80, count=1):
        r = await nvme0n1.ioworker(io_size=1, qdepth=4, io_count=100_000, read_percentage=0,
                                   region_start=1_800_000, region_end=1_800_100, check=False)
    assert r.error == 1 and r.first_error["opcode"] == 0x01
    assert (r.first_error["completion"].sct, r.first_error["completion"].sc) == (0, 0x80)


async def test_seed_outputs_are_filled(nvme0n1):
    per_second, pct = [], {50: None, 99.9: None}
    r = await nvme0n1.ioworker(io_size=8, io_count=2000, output_io_per_second=per_second,
                               output_percentile_latency=pct)
    assert per_second == r.io_per_second and sum(per_second) == 2000
    assert 0 < pct[50] <= pct[99.9]  # milliseconds, as the seed gives them
    assert pct[50] == r.latency_percentiles_us[50.0] / 1000


async def test_worker_cmdlog_shows_the_failing_command(nvme0, nvme0n1):
    """The worker queue's cmdlog lives in the arena: the parent reads it, also after
    the worker ended, with the failing CQE in it."""
    with nvme0.sim.inject_status(opcode=0x02, sct=2, sc=0x81, count=1):
        w = nvme0n1.ioworker(io_size=8, read_percentage=100, io_count=10_000, qdepth=4,
                             check=False)
        await w
    log = w.cmdlog()
    assert 0 < len(log) <= 1024 and [e.seq for e in log] == sorted(e.seq for e in log)
    failed = [e for e in log if e.completed and e.status]
    assert len(failed) == 1 and ((failed[0].status >> 8) & 7, failed[0].status & 0xFF) == (2, 0x81)
    assert failed[0].opcode == 0x02 and failed[0].cid == w.result.first_error["completion"].cid
    assert "UNRECOVERED READ ERROR (02/81)" in str(failed[0])
    assert all(e.submit_ns <= e.complete_ns for e in log if e.completed)


async def test_one_io_per_second_entry_per_second_of_the_run(nvme0n1):
    """time=2: exactly 2 entries, the commands drained after the limit counted in
    the last; nothing lost, and pynvme's consistency figure comes with it."""
    per_second: list[int] = []
    w = nvme0n1.ioworker(io_size=8, qdepth=16, time=2, output_io_per_second=per_second)
    r = await w
    assert len(per_second) == 2 and per_second == r.io_per_second
    assert sum(per_second) == r.io_count
    assert r.iops_consistency == w.iops_consistency() == r.consistency(99.9)
    assert 0 < r.iops_consistency <= 2.0
    slow = min(per_second) / (sum(per_second) / 2)
    assert w.iops_consistency(99) == pytest.approx(slow)


async def test_result_is_also_a_dict(nvme0n1):
    """pynvme 1.x scripts subscript the result: r["io_count_read"] as r.io_count_read."""
    r = await nvme0n1.ioworker(io_size=8, io_count=100)
    assert r["io_count_read"] == r.io_count_read == 100
    assert "mseconds" in r and "nosuch" not in r and r.get("nosuch", 7) == 7
    assert dict(r.items())["io_count"] == 100 and "iops_consistency" in r.keys()
    with pytest.raises(KeyError):
        r["nosuch"]


@pytest.mark.sim_only("fault injection")
async def test_a_duplicate_completion_is_an_error_of_the_run(nvme0, nvme0n1):
    """The second CQE of a command names a CID no longer outstanding (its slot may
    hold a new command by then: the CID's generation tells them apart): it counts
    as an error, completes nothing, and is not counted twice."""
    with nvme0.sim.duplicate(opcode=0x02, nsid=1, count=1):
        r = await nvme0n1.ioworker(io_size=8, qdepth=16, io_count=2000, check=False)
    assert r.error == 1 and r.first_error["kind"] == "unmatched" and r.reason == "error"
    assert r.io_count <= 2000 and sum(r.io_counts.values()) == r.io_count
    with nvme0.sim.duplicate(opcode=0x02, nsid=1, count=1):
        with pytest.raises(aionvme.exceptions.IOWorkerError, match="no outstanding command"):
            await nvme0n1.ioworker(io_size=8, qdepth=16, io_count=2000)


@pytest.mark.sim_only("fault injection")
async def test_a_dropped_command_at_qd_above_1_ends_the_run_at_its_timeout(nvme0, nvme0n1):
    """The timeout is per command: one dropped read among 16 in flight ends a 60 s
    run with reason 'timeout' while the others keep completing."""
    old = aionvme.config().timeout
    aionvme.config(timeout=1)
    try:
        with nvme0.sim.drop(opcode=0x02, nsid=1, count=1):
            r = await nvme0n1.ioworker(io_size=8, qdepth=16, time=60, check=False)
    finally:
        aionvme.config(timeout=old)
    assert r.reason == "timeout" and r.io_count > 16


async def test_ioworker_writes_are_stamped_by_default(nvme0, nvme0n1, qpair):
    """As pynvme's: every LBA an ioworker writes names its LBA (bytes 7:0) and the
    command's write token (15:8), the pattern after; unwritten LBAs stay zeroes."""
    start = 1_960_000
    await nvme0n1.ioworker(io_size=4, lba_random=False, read_percentage=0, qdepth=4,
                           io_count=4, region_start=start, region_end=start + 16)
    buf = aionvme.Buffer(20 * LBA)
    await nvme0n1.read(qpair, buf, start, 20)
    blocks = lbas(bytes(buf[0:20 * LBA]), start, 20)
    tokens = {blk[8:16] for blk in blocks[:16]}
    assert len(tokens) == 4 and bytes(8) not in tokens            # one token per command
    for i, blk in enumerate(blocks[:16]):
        assert blk[:8] == (start + i).to_bytes(8, "little") and blk[16:] == bytes(LBA - 16)
    assert blocks[16:] == [bytes(LBA)] * 4                          # never written
    await nvme0n1.ioworker(io_size=4, lba_random=False, read_percentage=0, qdepth=4, io_count=1,
                           region_start=start, region_end=start + 4, pattern=0x5A5A5A5A,
                           stamp=False)
    assert media(nvme0, start, 1) == [b"\x5a" * LBA]                  # the bare pattern
    with pytest.raises(aionvme.InterfaceError, match="stamp must be True or False"):
        nvme0n1.ioworker(stamp=1)


def media(nvme0, lba, count):
    return lbas(nvme0.sim.media(1, lba, count), lba, count)


async def test_a_stuck_worker_is_killed_past_its_time_limit(nvme0n1):
    """A worker that stops answering (here: SIGSTOP once its loop runs) is killed
    its command timeout plus a grace after its time limit, counted from when it
    started running, and the run raises IOWorkerTimeout (the seed's -4)."""
    from aionvme.exceptions import IOWorkerTimeout
    old = aionvme.config().timeout
    aionvme.config(timeout=1)
    try:
        w = nvme0n1.ioworker(io_size=8, qdepth=4, time=1)
        with pytest.raises(IOWorkerTimeout, match="beyond its time limit of 1 s"):
            async with w:
                async for _ in w.stats(interval=0.05):
                    os.kill(w.pid, signal.SIGSTOP)
                    break
    finally:
        aionvme.config(timeout=old)
