"""IOWorker throughput and latency against the simulator; writes JSON.

    python benchmarks/bench_ioworker.py [--time 5] [--json bench-results/bench_ioworker.json]

The namespace is written once first, so reads copy real media pages (reads
of never-written memory would copy the kernel's shared zero page, which
stays in cache and flatters the numbers).  Cases: 4 KiB random read QD64,
4 KiB random write QD64, 4 KiB random read QD1 (latency).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time

import aionvme

CASES = (
    ("randread_4k_qd64", {"io_size": 8, "qdepth": 64, "read_percentage": 100}),
    ("randwrite_4k_qd64", {"io_size": 8, "qdepth": 64, "read_percentage": 0}),
    ("randread_4k_qd1", {"io_size": 8, "qdepth": 1, "read_percentage": 100}),
)


async def run(seconds: float, only: list[str]) -> dict:
    out: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                             "platform": platform.platform()}, "seconds": seconds, "cases": {}}
    async with aionvme.Controller("sim") as nvme0:
        ns = await aionvme.Namespace(nvme0, 1)
        t = time.monotonic()
        pre = await ns.ioworker(io_size=256, lba_random=False, read_percentage=0, qdepth=16,
                                io_count=ns.nsze // 256, pattern="random")
        out["precondition"] = {"lbas": ns.nsze, "seconds": round(time.monotonic() - t, 2),
                               "mbps": round(pre.mbps)}
        for name, kw in CASES:
            if only and name not in only:
                continue
            r = await ns.ioworker(time=seconds, **kw)
            out["cases"][name] = {
                "iops": round(r.iops), "mbps": round(r.mbps, 1), "ios": r.io_count,
                "latency_us": {"min": r.latency_min_us, "avg": round(r.latency_average_us, 3),
                               "max": r.latency_max_us,
                               **{f"p{k:g}": v for k, v in r.latency_percentiles_us.items()}},
                "errors": r.error,
            }
            print(f"{name:20s} {r.iops:12,.0f} IOPS {r.mbps:9,.1f} MB/s  "
                  f"lat avg {r.latency_average_us:7.2f} us  p99 {r.latency_percentiles_us[99.0]} us",
                  flush=True)
    return out


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
