"""4 KiB random reads at QD64 over NVMe/TCP on loopback: aionvme's tcp host ->
``aionvme serve`` (the simulator), or -> any target given with ``--target``
(e.g. Linux nvmet-tcp in the test guest).

The target runs in its own process (``aionvme serve``), so host and target
each get a core.  Reported: IOPS, mean/p50/p99 latency, and the CPU time per IO
on each side (host: this process; target: the serve process and its
simulator child, from /proc).

Usage::

    python3 benchmarks/bench_tcp.py [--time 5] [--qd 64] [--json out.json]
                                    [--target tcp://HOST:PORT/NQN] [--digests]

Numbers, not assertions: the test suite never times anything.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from typing import Any

from aionvme.transport.tcp import fabrics as F
from aionvme.transport.tcp.host import connect

NQN = "nqn.2026-12.io.aionvme:bench"
IO_BYTES = 4096
WARMUP_S = 0.5


def proc_cpu_s(pid: int) -> float:
    """utime + stime of ``pid`` and its children that are still running, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(p) for p in f.read().split()]
    except OSError:
        pass
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            pass
    return total


def host_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(uri: str, seconds: float, qd: int, digests: bool, target_pid: int | None
              ) -> dict[str, Any]:
    c = await connect(uri, hdgst=digests, ddgst=digests)
    try:
        q = await c.create_io_queue(qd + 1)
        ns = bytearray(4096)
        await c.admin_cmd(F.sqe(0x06, nsid=1, cdw10=0), data_in=ns)
        nsze = int.from_bytes(ns[0:8], "little")
        lbads = ns[128 + 4 * (ns[26] & 0xF) + 2]
        lba = 1 << lbads
        per_io = IO_BYTES // lba
        slots = max(1, min(nsze, (1 << 30) // lba) // per_io)
        rnd = random.Random(1)
        lat: list[float] = []
        count = 0
        measuring = False
        stop = False

        async def worker() -> None:
            nonlocal count
            buf = bytearray(IO_BYTES)
            while not stop:
                start = rnd.randrange(slots) * per_io
                t0 = time.perf_counter()
                await q.submit(F.sqe(0x02, nsid=1, cdw10=start & 0xFFFFFFFF, cdw11=start >> 32,
                                     cdw12=per_io - 1), data_in=buf)
                if measuring:
                    lat.append(time.perf_counter() - t0)
                    count += 1
        tasks = [asyncio.create_task(worker()) for _ in range(qd)]
        await asyncio.sleep(WARMUP_S)
        measuring = True
        h0, t0 = host_cpu_s(), time.perf_counter()
        g0 = proc_cpu_s(target_pid) if target_pid else 0.0
        await asyncio.sleep(seconds)
        measuring = False
        elapsed = time.perf_counter() - t0
        h1 = host_cpu_s()
        g1 = proc_cpu_s(target_pid) if target_pid else 0.0
        stop = True
        await asyncio.gather(*tasks)
        lat.sort()
        n = len(lat)
        return {
            "ios": count, "seconds": round(elapsed, 3), "iops": round(count / elapsed),
            "latency_us": {"mean": round(sum(lat) / n * 1e6, 1),
                           "p50": round(lat[n // 2] * 1e6, 1),
                           "p99": round(lat[min(n - 1, int(n * 0.99))] * 1e6, 1)},
            "host_cpu_us_per_io": round((h1 - h0) / count * 1e6, 2),
            "target_cpu_us_per_io": round((g1 - g0) / count * 1e6, 2) if target_pid else None,
        }
    finally:
        await c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--time", type=float, default=5.0)
    ap.add_argument("--qd", type=int, default=64)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--target", default=None, help="an existing target (default: start aionvme serve)")
    ap.add_argument("--digests", action="store_true", help="header and data digests on")
    a = ap.parse_args()
    proc = None
    uri = a.target
    if uri is None:
        proc = subprocess.Popen([sys.executable, "-m", "aionvme.cli", "serve", "--listen",
                                 "127.0.0.1:0", "--nqn", NQN], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        port = int(line.rsplit(":", 1)[1].split()[0])
        uri = f"tcp://127.0.0.1:{port}/{NQN}"
    try:
        res = asyncio.run(run(uri, a.time, a.qd, a.digests, proc.pid if proc else None))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
    out = {"benchmark": "tcp 4k randread", "target": "aionvme serve (sim)" if proc else uri,
           "qd": a.qd, "digests": a.digests, "python": platform.python_version(),
           "machine": platform.machine(), "cpus": os.cpu_count(), **res}
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
