"""Awaited 4 KiB reads through the public API against the simulated SSD.

Two cases per event loop (the default asyncio loop, then uvloop):

* QD1: one read at a time, ``await ns.read(...)`` in a loop; the latency of
  each round trip (submit, device, MSI-X eventfd, poller, future) in µs.
* QD32: 32 tasks, each awaiting its own reads back to back, so 32 commands
  are outstanding all the time; commands completed per second.

Usage::

    python3 benchmarks/bench_qd.py [--time 3] [--json results.json]
                                   [--loops asyncio,uvloop] [--pciaddr sim]

Numbers, not assertions: the test suite never times anything.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import time
from typing import Any, Callable

import aionvme

IO_BYTES = 4096
WARMUP_S = 0.3


def percentile(sorted_values: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of an ascending list."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(pct / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def lba_picker(ns: aionvme.Namespace, seed: int) -> Callable[[], int]:
    """Random 4 KiB aligned LBAs in the first GiB (or less) of the namespace."""
    per_io = IO_BYTES // ns.lba_size
    slots = max(1, min(ns.nsze, (1 << 30) // ns.lba_size) // per_io)
    rnd = random.Random(seed)
    return lambda: rnd.randrange(slots) * per_io


async def qd1(ns: aionvme.Namespace, q: aionvme.Qpair, seconds: float) -> dict[str, Any]:
    buf = aionvme.Buffer(IO_BYTES, "qd1")
    n = IO_BYTES // ns.lba_size
    pick = lba_picker(ns, 1)
    clock = time.perf_counter_ns
    end = time.monotonic() + WARMUP_S
    while time.monotonic() < end:
        await ns.read(q, buf, pick(), n)
    lat_ns: list[int] = []
    t0 = clock()
    end_ns = t0 + int(seconds * 1e9)
    while True:
        lba = pick()
        t = clock()
        if t >= end_ns:
            break
        await ns.read(q, buf, lba, n)
        lat_ns.append(clock() - t)
    elapsed = (clock() - t0) / 1e9
    us = sorted(x / 1000 for x in lat_ns)
    return {"case": "qd1", "qdepth": 1, "commands": len(us), "seconds": round(elapsed, 3),
            "commands_per_s": round(len(us) / elapsed),
            "avg_us": round(statistics.fmean(us), 2), "p50_us": round(percentile(us, 50), 2),
            "p99_us": round(percentile(us, 99), 2), "max_us": round(us[-1], 2)}


async def qdn(ns: aionvme.Namespace, q: aionvme.Qpair, seconds: float, depth: int) -> dict[str, Any]:
    n = IO_BYTES // ns.lba_size
    counts = [0] * depth
    state = {"measure": False, "stop": False}

    async def worker(i: int) -> None:
        buf = aionvme.Buffer(IO_BYTES, f"qd{depth}-{i}")
        pick = lba_picker(ns, 100 + i)
        read = ns.read
        while not state["stop"]:
            await read(q, buf, pick(), n)
            if state["measure"]:
                counts[i] += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(depth)]
    await asyncio.sleep(WARMUP_S)
    state["measure"] = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    done = sum(counts)
    elapsed = time.perf_counter() - t0
    state["stop"] = True
    await asyncio.gather(*tasks)
    return {"case": f"qd{depth}", "qdepth": depth, "commands": done,
            "seconds": round(elapsed, 3), "commands_per_s": round(done / elapsed)}


async def run_loop(loop_name: str, pciaddr: str, seconds: float, depth: int) -> list[dict[str, Any]]:
    async with aionvme.Controller(pciaddr) as nvme0:
        ns = await aionvme.Namespace(nvme0, 1)
        async with aionvme.Qpair(nvme0, max(64, 2 * depth)) as q:
            results = [await qd1(ns, q, seconds), await qdn(ns, q, seconds, depth)]
    for r in results:
        r["loop"] = loop_name
    return results


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "asyncio":
        return asyncio.new_event_loop
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    raise SystemExit(f"unknown loop {name!r}: asyncio or uvloop")


def run_with(factory: Callable[[], asyncio.AbstractEventLoop], coro: Any) -> Any:
    loop = factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def table(results: list[dict[str, Any]]) -> str:
    head = f"{'loop':<8} {'case':<5} {'commands':>9} {'cmd/s':>9} {'avg µs':>8} {'p50 µs':>8} {'p99 µs':>8}"
    lines = [head, "-" * len(head)]
    for r in results:
        lat = [f"{r[k]:>8.1f}" if k in r else f"{'':>8}" for k in ("avg_us", "p50_us", "p99_us")]
        lines.append(f"{r['loop']:<8} {r['case']:<5} {r['commands']:>9} {r['commands_per_s']:>9} "
                     + " ".join(lat))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--time", type=float, default=3.0, help="seconds measured per case (default 3)")
    p.add_argument("--qdepth", type=int, default=32, help="outstanding commands of the QD case")
    p.add_argument("--loops", default="asyncio,uvloop", help="comma separated: asyncio,uvloop")
    p.add_argument("--pciaddr", default="sim", help="device address (default: sim)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON here")
    args = p.parse_args(argv)
    if not 1 <= args.qdepth <= 1023:
        p.error("--qdepth must be in 1..1023")

    results: list[dict[str, Any]] = []
    for name in [x.strip() for x in args.loops.split(",") if x.strip()]:
        factory = loop_factory(name)
        print(f"{name}: QD1 and QD{args.qdepth}, {args.time:g} s each ...", file=sys.stderr)
        results += run_with(factory, run_loop(name, args.pciaddr, args.time, args.qdepth))
    print(table(results))

    if args.json:
        doc = {"benchmark": "bench_qd", "io_bytes": IO_BYTES, "pciaddr": args.pciaddr,
               "seconds_per_case": args.time, "python": platform.python_version(),
               "machine": platform.machine(), "cpus": os.cpu_count(),
               "aionvme": aionvme.__version__,
               "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"results written to {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
