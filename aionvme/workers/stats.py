"""What an ioworker reports: periodic ``Snapshot``s while it runs and the
final ``IOWorkerResult``, both read from its shared statistics block."""
from __future__ import annotations

import dataclasses
from typing import Any

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

    @property
    def latency_p99_us(self) -> int:
        return self.latency_percentiles_us.get(99.0, 0)


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
    done = raw["done"]
    snap = Snapshot(
        elapsed_s=elapsed, io_count=done, ios={k: v for k, v in raw["ios"].items() if v},
        iops=d_ios / d_t if d_t > 0 else 0.0, mbps=d_bytes / d_t / 1e6 if d_t > 0 else 0.0,
        iops_avg=done / elapsed if elapsed > 0 else 0.0,
        latency_avg_us=raw["lat_sum_ns"] / done / 1000 if done else 0.0,
        latency_percentiles_us=dict(zip(SNAPSHOT_PERCENTILES, pcts)), errors=raw["errors"])
    return snap, raw


def result(stats: Any, percentiles: tuple[float, ...]) -> IOWorkerResult:
    """The final result of a worker that ended."""
    from aionvme._core import Completion

    raw = stats.snapshot()
    ios = {k: int(raw["ios"].get(k, 0)) for k in OPS}
    done = sum(ios.values())
    elapsed_ns = raw["elapsed_ns"]
    first = None
    if raw["first_error"] is not None:
        fe = raw["first_error"]
        first = {"completion": Completion.from_bytes(fe["cqe"]), "lba": fe["lba"],
                 "opcode": fe["opcode"], "kind": fe["kind"]}
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
        io_per_second=stats.per_second(), error=raw["errors"], first_error=first,
        reason=raw["reason"], data_bytes=raw["bytes"],
        error_code=((first["completion"].sct << 8) | first["completion"].sc
                    if first is not None and first["kind"] == "status" else 0))
