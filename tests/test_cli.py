"""The aionvme command."""
import subprocess
import sys

import pytest


def test_info_on_the_simulator():
    out = subprocess.run([sys.executable, "-m", "aionvme.cli", "info", "sim"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "AIONVME-SIM-0001" in out.stdout
    assert "namespace 1  2097152 LBAs of 512 bytes" in out.stdout


def test_info_bad_address_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "aionvme.cli", "info", "nosuch"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "no backend" in out.stderr


def test_perf_json_and_plot(tmp_path):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    run = subprocess.run([sys.executable, "-m", "aionvme.cli", "perf", "sim", "--io-count", "5000",
                          "--time", "0", "--qdepth", "16", "--read-percentage", "50", "--workers", "2",
                          "--quiet", "--json", str(out_json), "--plot", str(out_png)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    import json
    results = json.loads(out_json.read_text())
    assert len(results) == 2 and all(r["io_count"] == 5000 for r in results)
    assert all(r["io_counts"]["read"] + r["io_counts"]["write"] == 5000 for r in results)
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "aionvme perf" in run.stderr     # the table


def test_perf_bad_argument_is_a_clear_error():
    run = subprocess.run([sys.executable, "-m", "aionvme.cli", "perf", "sim", "--qdepth", "0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "qdepth 0" in run.stderr


def test_perf_io_size_range_and_pattern(tmp_path):
    out = tmp_path / "r.json"
    run = subprocess.run([sys.executable, "-m", "aionvme.cli", "perf", "sim", "--io-count", "2000",
                          "--time", "0", "--io-size", "8-64", "--read-percentage", "0",
                          "--pattern", "random:50", "--quiet", "--json", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    import json
    r = json.loads(out.read_text())[0]
    assert r["io_count_write"] == 2000
    # sizes 8..64 LBAs of 512 bytes: the bytes moved say they were not all 8
    assert 2000 * 8 * 512 < r["data_bytes"] < 2000 * 64 * 512
    bad = subprocess.run([sys.executable, "-m", "aionvme.cli", "perf", "sim", "--pattern", "xyz"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "pattern 'xyz'" in bad.stderr


def test_perf_plot_curves_are_per_interval():
    """The IOPS curve divides a last partial second by its length (no drop to 0 at
    the end); the latency curve is each interval's own p99, not the run's so far."""
    from types import SimpleNamespace

    from aionvme.perf import iops_curve
    from aionvme.workers.stats import _hist_delta, _percentile
    r = SimpleNamespace(io_per_second=[1000, 1000, 300], mseconds=2300)
    ts, iops = iops_curve([r])
    assert iops == [1000, 1000, pytest.approx(1000)] and ts[:2] == [1.0, 2.0]
    before = {10: 1000, 500: 100}                   # a slow first interval
    now = {10: 2000, 500: 100}                      # then only fast commands
    assert _percentile(sorted(now.items()), 99) == 500          # the run so far
    assert _percentile(_hist_delta(now, before), 99) == 10      # this interval alone
    assert _percentile(_hist_delta({10: 5, 900: 10}, {10: 5}), 99) == 900
