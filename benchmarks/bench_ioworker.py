"""IOWorker throughput and latency against the simulator; writes JSON.

    python benchmarks/bench_ioworker.py [--time 5] [--json bench-results/bench_ioworker.json]

The namespace is written once first, so reads copy real media pages (reads
of never-written memory would copy the kernel's shared zero page, which
stays in cache and flatters the numbers); its media is on transparent huge
pages (SimConfig.hugepages), as a real SSD's DRAM-less copy path would not
pay a TLB miss per IO.  Cases: 4 KiB random read QD64, 4 KiB random write
QD64, 4 KiB random read QD1 (latency).

Beside them, in the same run, the machine's ceiling for a simulated data
path: ../shared/tools/limit/ring.c (host and device threads on NVMe-style
rings, a 4 KiB copy per read), so the figures read as a ratio of what this
machine can do at all.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import aionvme

CASES = (
    ("randread_4k_qd64", {"io_size": 8, "qdepth": 64, "read_percentage": 100}),
    ("randwrite_4k_qd64", {"io_size": 8, "qdepth": 64, "read_percentage": 0}),
    ("randread_4k_qd1", {"io_size": 8, "qdepth": 1, "read_percentage": 100}),
)
# The same with data verification on (aionvme.config(verify=True)): run after the
# namespace was written again with verify on, so the table holds every LBA's CRC
# and each read is checked.
VERIFY_CASES = (
    ("randread_4k_qd64_verify", {"io_size": 8, "qdepth": 64, "read_percentage": 100}),
    ("randwrite_4k_qd64_verify", {"io_size": 8, "qdepth": 64, "read_percentage": 0}),
)


RING = pathlib.Path(__file__).resolve().parents[2] / "shared" / "tools" / "limit" / "ring.c"


def ceiling() -> dict:
    """The ring tool's IOPS with a 4 KiB copy per read (mode 1), or why there is none."""
    cc = shutil.which("gcc")
    if not RING.exists() or cc is None:
        return {"skipped": f"{RING} or gcc is missing"}
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "ring")
        build = subprocess.run([cc, "-O2", "-msse4.2", "-pthread", str(RING), "-o", exe, "-lisal"],
                               capture_output=True, text=True)
        if build.returncode:
            return {"skipped": "ring.c did not build (Debian package libisal-dev): "
                               + build.stderr.strip().splitlines()[-1]}
        run = subprocess.run([exe, "1"], capture_output=True, text=True, timeout=120)
    m = re.search(r"IOPS=([0-9.]+)M", run.stdout)
    if not m:
        return {"skipped": f"unexpected ring output: {run.stdout.strip()}"}
    return {"copy4k_iops": round(float(m.group(1)) * 1e6), "output": run.stdout.strip()}


async def run(seconds: float, only: list[str]) -> dict:
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                             "platform": platform.platform()}, "seconds": seconds, "cases": {}}
    toml = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    toml.write("hugepages = true\n")
    toml.close()
    try:
        await _cases(out, seconds, only, "sim:" + toml.name)
    finally:
        os.unlink(toml.name)
    out["ceiling"] = ceiling()
    top = out["ceiling"].get("copy4k_iops")
    if top and "randread_4k_qd64" in out["cases"]:
        out["cases"]["randread_4k_qd64"]["ratio_to_ceiling"] = round(
            out["cases"]["randread_4k_qd64"]["iops"] / top, 3)
        print(f"ceiling (ring.c, copy 4k)  {top:12,} IOPS; 4K random read QD64 reaches "
              f"{out['cases']['randread_4k_qd64']['ratio_to_ceiling']:.0%} of it")
    return out


async def _cases(out: dict, seconds: float, only: list[str], address: str) -> None:
    async with aionvme.Controller(address) as nvme0:
        ns = await aionvme.Namespace(nvme0, 1)
        t = time.monotonic()
        pre = await ns.ioworker(io_size=256, lba_random=False, read_percentage=0, qdepth=16,
                                io_count=ns.nsze // 256, pattern="random")
        out["precondition"] = {"lbas": ns.nsze, "seconds": round(time.monotonic() - t, 2),
                               "mbps": round(pre.mbps)}
        for name, kw in CASES:
            if only and name not in only:
                continue
            await _case(out, ns, name, seconds, kw)
        if only and not any(name in only for name, _ in VERIFY_CASES):
            return
        aionvme.config(verify=True)
        try:
            t = time.monotonic()
            await ns.ioworker(io_size=256, lba_random=False, read_percentage=0, qdepth=16,
                              io_count=ns.nsze // 256, pattern="random")
            out["precondition_verify"] = {"seconds": round(time.monotonic() - t, 2)}
            for name, kw in VERIFY_CASES:
                if only and name not in only:
                    continue
                await _case(out, ns, name, seconds, kw)
        finally:
            aionvme.config(verify=False)
        off, on = out["cases"].get("randread_4k_qd64"), out["cases"].get("randread_4k_qd64_verify")
        if off and on:
            out["verify_ratio_randread_4k_qd64"] = round(on["iops"] / off["iops"], 3)
            print(f"4K random read QD64: verify on / off = {on['iops'] / off['iops']:.2f}")


async def _case(out: dict, ns: aionvme.Namespace, name: str, seconds: float, kw: dict) -> None:
    r = await ns.ioworker(time=seconds, **kw)
    out["cases"][name] = {
        "iops": round(r.iops), "mbps": round(r.mbps, 1), "ios": r.io_count,
        "latency_us": {"min": r.latency_min_us, "avg": round(r.latency_average_us, 3),
                       "max": r.latency_max_us,
                       **{f"p{k:g}": v for k, v in r.latency_percentiles_us.items()}},
        "errors": r.error,
    }
    print(f"{name:24s} {r.iops:12,.0f} IOPS {r.mbps:9,.1f} MB/s  "
          f"lat avg {r.latency_average_us:7.2f} us  p99 {r.latency_percentiles_us[99.0]} us",
          flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--time", type=float, default=5.0, help="seconds per case (default 5)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--case", action="append", default=[], help="run only this case (repeatable)")
    a = p.parse_args()
    res = asyncio.run(run(a.time, a.case))
    if a.json:
        os.makedirs(os.path.dirname(a.json) or ".", exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)


if __name__ == "__main__":
    main()
