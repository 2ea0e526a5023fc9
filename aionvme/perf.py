"""``aionvme perf ADDRESS [ioworker arguments]``: run ioworkers against a
device with a live progress line, then print a table; ``--json`` writes the
results, ``--plot FILE.png`` draws IOPS and latency over time."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aionvme


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", nargs="?", default="sim", help="device address (default: sim)")
    p.add_argument("--nsid", type=int, default=1)
    p.add_argument("--workers", type=int, default=1, help="ioworkers at once (default 1)")
    io = p.add_argument_group("ioworker arguments (Namespace.ioworker)")
    io.add_argument("--io-size", type=_io_size, default=8,
                    help="LBAs per IO: N, LO-HI (each size in between) or A,B,C (default 8)")
    io.add_argument("--lba-align", type=int, default=None)
    io.add_argument("--sequential", action="store_true", help="sequential LBAs (default random)")
    io.add_argument("--read-percentage", type=int, default=100)
    io.add_argument("--time", type=float, default=10.0, help="seconds (default 10)")
    io.add_argument("--io-count", type=int, default=0)
    io.add_argument("--qdepth", type=int, default=64)
    io.add_argument("--region-start", type=int, default=0)
    io.add_argument("--region-end", type=int, default=None)
    io.add_argument("--iops", type=int, default=0, help="throttle to this many IOPS (0: no limit)")
    io.add_argument("--lba-step", type=int, default=None, help="sequential stride in LBAs")
    io.add_argument("--pattern", type=_pattern, default=0,
                    help="write data: a dword (0x5a5a5a5a), zeroes, ones, random, or random:PCT "
                         "(PCT %% of each LBA compressible)")
    io.add_argument("--interval", type=float, default=1.0, help="seconds between progress updates")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the results as JSON ('-': stdout)")
    out.add_argument("--plot", metavar="FILE.png", help="draw IOPS and p99 latency over time")
    out.add_argument("--quiet", action="store_true", help="no live progress line")


def _io_size(text: str) -> Any:
    """``8``, ``8-64`` (a range, both ends included) or ``8,16,32``."""
    try:
        if "," in text:
            return [int(x) for x in text.split(",")]
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-", 1))
            return (lo, hi)
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"io size {text!r} is not N, LO-HI or A,B,C") from None


def _pattern(text: str) -> Any:
    """``0x5a5a5a5a``, ``zeroes``, ``ones``, ``random`` or ``random:PCT``."""
    try:
        if text.startswith("random:"):
            return ("random", int(text.split(":", 1)[1]))
        if text in ("zeroes", "ones", "random"):
            return text
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"pattern {text!r} is not a dword, zeroes, ones, random or random:PCT") from None


def _ioworker_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    kw = {"io_size": a.io_size, "lba_align": a.lba_align, "lba_random": not a.sequential,
          "read_percentage": a.read_percentage, "time": a.time, "io_count": a.io_count,
          "qdepth": a.qdepth, "region_start": a.region_start, "region_end": a.region_end,
          "iops": a.iops, "interval": a.interval, "pattern": a.pattern}
    if a.lba_step is not None:
        kw["lba_step"] = a.lba_step
    return kw


class _Progress:
    """The latest snapshot of each worker, and the history the plot draws."""

    def __init__(self, n: int) -> None:
        self.latest: list[Any] = [None] * n
        self.history: list[tuple[float, float, int]] = []  # (seconds, IOPS, interval p99 us)
        self.t0 = time.monotonic()

    def update(self, i: int, snap: Any) -> None:
        self.latest[i] = snap
        snaps = [s for s in self.latest if s is not None]
        self.history.append((time.monotonic() - self.t0, sum(s.iops for s in snaps),
                             max(s.interval_p99_us for s in snaps)))

    def line(self) -> str:
        snaps = [s for s in self.latest if s is not None]
        if not snaps:
            return "starting..."
        return (f"{time.monotonic() - self.t0:6.1f} s  {sum(s.iops for s in snaps):>12,.0f} IOPS  "
                f"{sum(s.mbps for s in snaps):>9,.1f} MB/s  p99 {max(s.latency_p99_us for s in snaps):>6} us  "
                f"errors {sum(s.errors for s in snaps)}")


class _Lines:
    """Progress for a log rather than a terminal: a line an update."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def update(self, line: str) -> None:
        self.console.print(line, highlight=False)


def _console() -> Any:
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        console.width = 132
    return console


async def _follow(i: int, w: Any, progress: _Progress, live: Any) -> None:
    async for snap in w.stats():
        progress.update(i, snap)
        if live is not None:
            live.update(progress.line())


async def run(a: argparse.Namespace) -> tuple[list[Any], _Progress]:
    """Run the workers; return their results and the progress history."""
    from rich.live import Live

    console = _console()
    async with aionvme.Controller(a.address) as nvme0:
        ns = await aionvme.Namespace(nvme0, a.nsid)
        workers = [ns.ioworker(**_ioworker_kwargs(a)) for _ in range(a.workers)]
        progress = _Progress(len(workers))
        if a.quiet:
            live_cm: Any = contextlib.nullcontext()
        elif console.is_terminal:
            live_cm = Live(progress.line(), console=console, refresh_per_second=4)
        else:  # a log: one line an update
            live_cm = contextlib.nullcontext(_Lines(console))
        with live_cm as live:
            async with contextlib.AsyncExitStack() as stack:
                for w in workers:
                    await stack.enter_async_context(w)
                await asyncio.gather(*(_follow(i, w, progress, live) for i, w in enumerate(workers)))
        return [w.result for w in workers], progress


def table(results: list[Any]) -> Any:
    from rich.table import Table

    t = Table(title="aionvme perf")
    for col in ("worker", "IOs", "seconds", "IOPS", "MB/s", "lat avg us", "p99 us", "max us", "errors"):
        t.add_column(col, justify="right")
    for i, r in enumerate(results):
        t.add_row(str(i), f"{r.io_count:,}", f"{r.mseconds / 1000:.2f}", f"{r.iops:,.0f}",
                  f"{r.mbps:,.1f}", f"{r.latency_average_us:.1f}",
                  str(r.latency_percentiles_us.get(99.0, "")), f"{r.latency_max_us:.0f}", str(r.error))
    if len(results) > 1:
        t.add_row("all", f"{sum(r.io_count for r in results):,}", "",
                  f"{sum(r.iops for r in results):,.0f}", f"{sum(r.mbps for r in results):,.1f}",
                  "", "", "", str(sum(r.error for r in results)))
    return t


def iops_curve(results: list[Any]) -> tuple[list[float], list[float]]:
    """(end of each second, IOPS in it) of all workers together; a last partial
    second is divided by its own length, not by a whole second."""
    per_second = [sum(vals) for vals in zip(*(r.io_per_second for r in results))]
    if not per_second:
        return [], []
    run_s = max(r.mseconds for r in results) / 1000
    rates = [float(n) for n in per_second]
    last = run_s - (len(per_second) - 1)
    if 0 < last < 1:
        rates[-1] = per_second[-1] / last
    ends = [float(i + 1) for i in range(len(per_second))]
    ends[-1] = min(ends[-1], max(run_s, ends[-1] - 1 + 1e-3))
    return ends, rates


def plot(path: str, results: list[Any], history: list[tuple[float, float, int]]) -> None:
    try:
        import matplotlib
    except ImportError:
        raise aionvme.InterfaceError("--plot needs matplotlib: pip install 'aionvme[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ts, iops = iops_curve(results)
    ax1.plot(ts, iops, marker="o")
    ax1.set_ylabel("IOPS (per second)")
    ax1.set_title("aionvme perf")
    ax2.plot([h[0] for h in history], [h[2] for h in history], marker=".")
    ax2.set_ylabel("p99 latency of each interval (us)")
    ax2.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(a: argparse.Namespace) -> int:
    results, progress = asyncio.run(run(a))
    _console().print(table(results))
    if a.json:
        text = json.dumps([r.as_dict() for r in results], indent=2, default=str)
        if a.json == "-":
            sys.stdout.write(text + "\n")
        else:
            with open(a.json, "w") as f:
                f.write(text + "\n")
    if a.plot:
        plot(a.plot, results, progress.history)
    return 1 if any(r.error for r in results) else 0
