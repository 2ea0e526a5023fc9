"""What an ioworker reports: periodic ``Snapshot``s while it runs and the
final ``IOWorkerResult``, both read from its shared statistics block."""
from __future__ import annotations

import dataclasses
import math
from typing import Any

from aionvme.exceptions import InterfaceError

from aionvme.workers.args import OPS

SNAPSHOT_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclasses.dataclass
class Snapshot:
    """The worker's counters at one moment (``async for s in w.stats()``).

    ``iops`` and ``mbps`` cover the interval since the previous snapshot;
    the latency percentiles (microseconds) cover the run so far.
    """
    elapsed_s: float
    io_count: int
    ios: dict[str, int]
    iops: float
    mbps: float
    iops_avg: float
    latency_avg_us: float
    latency_percentiles_us: dict[float, int]
    errors: int
    interval_percentiles_us: dict[float, int] = dataclasses.field(default_factory=dict)

    @property
    def latency_p99_us(self) -> int:
        return self.latency_percentiles_us.get(99.0, 0)

    @property
    def interval_p99_us(self) -> int:
        """p99 latency of the commands completed in this interval alone."""
        return self.interval_percentiles_us.get(99.0, 0)


@dataclasses.dataclass
class IOWorkerResult:
    """The end of a run (seed: the ioworker's ``close()`` result).

    The seed's field names are kept (``io_count_read``, ``io_count_nonread``,
    ``mseconds``, ``latency_max_us``, ``error``...); ``io_counts`` has every
    operation, ``latency_percentiles_us`` maps a percentile to microseconds,
    and ``first_error`` holds the failing CQE (a ``Completion``), its LBA,
    opcode and kind ("status" or "verify"; then ``mismatch`` describes the
    first bad LBA: struct anv_verify_mismatch as a dict).  ``error_code`` is
    the seed's ``error``: (SCT << 8) | SC of the first failed command, 0 when
    none.  ``reason`` says why it ended ("time", "io_count", "stopped",
    "error", "timeout", "device", "verify", "abandoned"); ``stopped_by`` names
    what stopped it early ("controller reset", "power cycle", ...), or is None.
    """
    io_counts: dict[str, int]
    io_count_read: int
    io_count_write: int
    io_count_nonread: int
    io_count: int
    mseconds: int
    iops: float
    mbps: float
    latency_min_us: float
    latency_average_us: float
    latency_max_us: float
    latency_percentiles_us: dict[float, int]
    io_per_second: list[int]
    error: int
    first_error: dict[str, Any] | None
    reason: str
    error_code: int = 0
    stopped_by: str | None = None
    data_bytes: int = 0
    iops_consistency: float = 0.0

    def consistency(self, slowest_percentage: float = 99.9) -> float:
        """pynvme's IOPS consistency: the IOPS of the second at ``slowest_percentage``
        of the seconds sorted fastest first, over the average (1.0: flat)."""
        return iops_consistency(self.io_per_second, slowest_percentage)

    # pynvme 1.x gives its result as a dict with attribute access: both work here.
    def __getitem__(self, key: str) -> Any:
        if key not in self._names():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self._names()

    def keys(self) -> list[str]:
        return list(self._names())

    def items(self) -> list[tuple[str, Any]]:
        return [(k, getattr(self, k)) for k in self._names()]

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._names() else default

    @classmethod
    def _names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.first_error is not None:
            fe = dict(self.first_error)
            cpl = fe.pop("completion")
            fe["cqe"] = {"sct": cpl.sct, "sc": cpl.sc, "cid": cpl.cid, "sqid": cpl.sqid,
                         "cdw0": cpl.cdw0, "dnr": cpl.dnr, "more": cpl.more}
            d["first_error"] = fe
        return d


def snapshot(stats: Any, prev: dict[str, Any] | None) -> tuple[Snapshot, dict[str, Any]]:
    """A Snapshot from the block, with rates since ``prev`` (the raw counters returned last)."""
    raw = stats.snapshot()
    elapsed = raw["elapsed_ns"] / 1e9
    if prev is None:
        d_ios, d_bytes, d_t = raw["done"], raw["bytes"], elapsed
    else:
        d_ios = raw["done"] - prev["done"]
        d_bytes = raw["bytes"] - prev["bytes"]
        d_t = (raw["now_ns"] - prev["now_ns"]) / 1e9
    pcts = stats.percentiles(SNAPSHOT_PERCENTILES)
    raw["hist"] = dict(stats.histogram())
    interval = _hist_delta(raw["hist"], prev["hist"] if prev is not None else {})
    done = raw["done"]
    snap = Snapshot(
        elapsed_s=elapsed, io_count=done, ios={k: v for k, v in raw["ios"].items() if v},
        iops=d_ios / d_t if d_t > 0 else 0.0, mbps=d_bytes / d_t / 1e6 if d_t > 0 else 0.0,
        iops_avg=done / elapsed if elapsed > 0 else 0.0,
        latency_avg_us=raw["lat_sum_ns"] / done / 1000 if done else 0.0,
        latency_percentiles_us=dict(zip(SNAPSHOT_PERCENTILES, pcts)), errors=raw["errors"],
        interval_percentiles_us={p: _percentile(interval, p) for p in SNAPSHOT_PERCENTILES})
    return snap, raw


def _hist_delta(now: dict[int, int], before: dict[int, int]) -> list[tuple[int, int]]:
    """(bucket value, count) of the completions between two histograms."""
    return sorted((v, c - before.get(v, 0)) for v, c in now.items() if c > before.get(v, 0))


def _percentile(buckets: list[tuple[int, int]], pct: float) -> int:
    """The smallest bucket value with at least ``pct`` percent of the counts at or below."""
    total = sum(c for _, c in buckets)
    if not total:
        return 0
    need, seen = total * pct / 100, 0
    for value, count in buckets:
        seen += count
        if seen >= need:
            return value
    return buckets[-1][0]


def iops_consistency(per_second: list[int], slowest_percentage: float = 99.9) -> float:
    """The IOPS of the second at ``slowest_percentage`` of the seconds sorted
    fastest first, over the average IOPS (pynvme's ``iops_consistency``)."""
    if not 0 < slowest_percentage < 100:
        raise InterfaceError(f"slowest_percentage {slowest_percentage} is outside (0, 100)")
    if not per_second or not sum(per_second):
        return 0.0
    average = sum(per_second) / len(per_second)
    index = int(len(per_second) * slowest_percentage) // 100
    return sorted(per_second, reverse=True)[index] / average


def whole_seconds(per_second: list[int], time_s: float) -> list[int]:
    """One entry per second of the run: with a time limit exactly ``ceil(time)``
    entries, the completions of commands drained after the limit counted in the
    last second (no second opened by the drain)."""
    if not time_s:
        return list(per_second)
    n = max(1, math.ceil(time_s))
    out = list(per_second[:n]) + [0] * (n - len(per_second))
    out[-1] += sum(per_second[n:])
    return out


def result(stats: Any, percentiles: tuple[float, ...], time_s: float = 0) -> IOWorkerResult:
    """The final result of a worker that ended (``time_s``: its time limit, 0: none)."""
    from aionvme._core import Completion

    raw = stats.snapshot()
    per_second = whole_seconds(stats.per_second(), time_s)
    ios = {k: int(raw["ios"].get(k, 0)) for k in OPS}
    done = sum(ios.values())
    elapsed_ns = raw["elapsed_ns"]
    first = None
    if raw["first_error"] is not None:
        fe = raw["first_error"]
        first = {"completion": Completion.from_bytes(fe["cqe"]), "lba": fe["lba"],
                 "opcode": fe["opcode"], "kind": fe["kind"], "errno": fe.get("errno", 0)}
        if "mismatch" in fe:
            first["mismatch"] = fe["mismatch"]
    return IOWorkerResult(
        io_counts=ios, io_count_read=ios["read"], io_count_write=ios["write"],
        io_count_nonread=done - ios["read"], io_count=done,
        mseconds=elapsed_ns // 1_000_000,
        iops=done * 1e9 / elapsed_ns if elapsed_ns else 0.0,
        mbps=raw["bytes"] * 1e3 / elapsed_ns if elapsed_ns else 0.0,
        latency_min_us=raw["lat_min_ns"] / 1000, latency_max_us=raw["lat_max_ns"] / 1000,
        latency_average_us=raw["lat_sum_ns"] / done / 1000 if done else 0.0,
        latency_percentiles_us=dict(zip(percentiles, stats.percentiles(list(percentiles)))),
        io_per_second=per_second, iops_consistency=iops_consistency(per_second),
        error=raw["errors"], first_error=first,
        reason=raw["reason"], data_bytes=raw["bytes"],
        error_code=((first["completion"].sct << 8) | first["completion"].sc
                    if first is not None and first["kind"] == "status" else 0))
