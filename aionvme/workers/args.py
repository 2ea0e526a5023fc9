"""Validation of ``Namespace.ioworker`` arguments, before any process starts.

Every check raises ``InterfaceError`` naming the argument and its limit.
The result, ``IOWorkerArgs``, becomes the JSON a worker process is given.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from aionvme.exceptions import InterfaceError

if TYPE_CHECKING:
    from aionvme.namespace import Namespace

MAX_TIME_S = 24 * 3600        # the seed: "each ioworker can run up to 24 hours"
MIX_STEPS = 1000              # op mix resolution (ANV_IOW_MIX): 0.1 %
DEFAULT_PERCENTILES = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)

# enum anv_iow_op: slot of each operation in the worker's counters and mix table.
OPS = ("read", "write", "flush", "write_zeroes", "deallocate", "compare", "verify")
# NVM Command Set opcodes (3) accepted as op_percentage keys, with their names.
OPCODES = {0x02: "read", 0x01: "write", 0x00: "flush", 0x08: "write_zeroes",
           0x09: "deallocate", 0x05: "compare", 0x0C: "verify"}
PATTERNS = ("zeroes", "ones", "random")
MAX_SIZES = 4096              # distinct io sizes of one worker (ANV_IOW_SIZES)
SECTIONS = 100                # distribution: equal sections of the region (ANV_IOW_SECTIONS)
MAX_SEQUENCE = 1_000_000      # io_sequence commands (24 bytes each in the DMA arena)
WEIGHT_SCALE = 1 << 40        # ratios become integer weights of this total


@dataclasses.dataclass
class IOWorkerArgs:
    """Checked arguments of one ioworker (LBAs in the namespace's LBA size).

    ``io_size`` is the largest size; ``sizes`` the (size, integer weight)
    pairs when sizes vary; ``distribution`` the integer weights of 100
    sections; ``io_sequence`` (time_us, op slot, lba, nlb) tuples."""
    io_size: int
    lba_align: int
    lba_random: bool
    lba_step: int
    mix: dict[str, float]
    time: float
    qdepth: int
    region_start: int
    region_end: int
    iops: int
    io_count: int
    lba_start: int
    qprio: int
    pattern: Any
    stamp: bool
    interval: float
    check: bool
    percentiles: tuple[float, ...]
    output_io_per_second: list[int] | None = None
    output_percentile_latency: dict[float, float] | None = None
    sizes: list[tuple[int, int]] | None = None
    lba_step_io: bool = False
    distribution: list[int] | None = None
    io_sequence: list[tuple[float, int, int, int]] | None = None

    def size_table(self) -> list[tuple[int, int]]:
        """(size, cumulative weight) pairs for the worker (empty: every IO is io_size)."""
        out, cum = [], 0
        for size, weight in self.sizes or ():
            cum += weight
            out.append((size, cum))
        return out

    def dist_table(self) -> list[int]:
        """Cumulative section weights for the worker (empty: uniform)."""
        out, cum = [], 0
        for weight in self.distribution or ():
            cum += weight
            out.append(cum)
        return out

    def mix_table(self) -> bytes:
        """MIX_STEPS op slots drawn uniformly per command: the mix in 0.1 % steps."""
        table = bytearray()
        for name, pct in self.mix.items():
            table += bytes([OPS.index(name)]) * round(pct * MIX_STEPS / 100)
        if not table:
            raise InterfaceError("the op mix is empty")
        # Rounding may leave the table a step short or long: the largest share absorbs it.
        big = OPS.index(max(self.mix, key=lambda k: self.mix[k]))
        while len(table) < MIX_STEPS:
            table.append(big)
        return bytes(table[:MIX_STEPS])

    @property
    def unlimited(self) -> bool:
        return not self.time and not self.io_count and not self.io_sequence


def _int(name: str, value: Any, lo: int, hi: int | None = None, why: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InterfaceError(f"{name} must be an int, not {type(value).__name__}")
    if value < lo or (hi is not None and value > hi):
        limit = f"{lo}..{hi}" if hi is not None else f"at least {lo}"
        raise InterfaceError(f"{name} {value} is outside {limit}{why}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InterfaceError(f"{name} must be True or False, not {type(value).__name__} {value!r}")
    return value


def _mix(read_percentage: Any, op_percentage: Any) -> dict[str, float]:
    if op_percentage is None:
        rp = _int("read_percentage", read_percentage, 0, 100)
        return {k: v for k, v in (("read", float(rp)), ("write", float(100 - rp))) if v}
    if not isinstance(op_percentage, dict) or not op_percentage:
        raise InterfaceError("op_percentage must be a non-empty dict of opcode -> percent")
    mix: dict[str, float] = {}
    for key, pct in op_percentage.items():
        name = OPCODES.get(key) if isinstance(key, int) else key
        if name not in OPS:
            raise InterfaceError(
                f"op_percentage key {key!r} is not one of the opcodes "
                f"{', '.join(f'{k:#04x} ({v})' for k, v in OPCODES.items())}")
        if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 <= pct <= 100:
            raise InterfaceError(f"op_percentage[{key!r}] {pct!r} is outside 0..100")
        mix[name] = mix.get(name, 0.0) + float(pct)
    total = sum(mix.values())
    if abs(total - 100) > 1e-6:
        raise InterfaceError(f"op_percentage sums to {total:g}, not 100")
    return {k: v for k, v in mix.items() if v}


def _weights(name: str, ratios: dict[Any, Any]) -> dict[Any, int]:
    """Ratios (numbers >= 0, not all 0) as integer weights summing to about WEIGHT_SCALE."""
    for key, r in ratios.items():
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < float("inf"):
            raise InterfaceError(f"{name}[{key!r}] {r!r} must be a number >= 0")
    total = sum(ratios.values())
    if not total > 0:
        raise InterfaceError(f"{name}: the ratios sum to 0")
    return {k: round(r * WEIGHT_SCALE / total) for k, r in ratios.items()}


def _io_size(io_size: Any, max_io: int, why: str) -> tuple[int, list[tuple[int, int]] | None]:
    """The largest size and, when sizes vary, the (size, weight) pairs.

    An int is every IO's size; a ``range`` or a list draws each of its
    members alike (a member listed twice, twice as often); a 2-tuple
    ``(lo, hi)`` draws every size from lo to hi inclusive alike; a dict
    ``{size: ratio}`` draws each size in proportion to its ratio."""
    def one(v: Any) -> int:
        return _int("io_size", v, 1, max_io, why)

    if isinstance(io_size, int) and not isinstance(io_size, bool):
        return one(io_size), None
    if isinstance(io_size, tuple):
        if len(io_size) != 2:
            raise InterfaceError(f"io_size tuple {io_size!r} must be (lo, hi): a range of sizes")
        lo, hi = one(io_size[0]), one(io_size[1])
        if lo > hi:
            raise InterfaceError(f"io_size range ({lo}, {hi}) is empty: lo is above hi")
        ratios: dict[int, float] = dict.fromkeys(range(lo, hi + 1), 1.0)
    elif isinstance(io_size, (range, list)):
        if len(io_size) == 0:
            raise InterfaceError("io_size range or list is empty")
        ratios = {}
        for v in io_size:
            ratios[one(v)] = ratios.get(v, 0.0) + 1.0
    elif isinstance(io_size, dict):
        if not io_size:
            raise InterfaceError("io_size dict is empty: give {size: ratio}")
        ratios = {one(k): v for k, v in io_size.items()}
    else:
        raise InterfaceError(f"io_size must be an int, a range, a (lo, hi) tuple, a list or a "
                             f"dict of size -> ratio, not {type(io_size).__name__}")
    if len(ratios) > MAX_SIZES:
        raise InterfaceError(f"io_size has {len(ratios)} distinct sizes: at most {MAX_SIZES}")
    weights = _weights("io_size", ratios)
    sizes = sorted((k, w) for k, w in weights.items() if w)
    if not sizes:
        raise InterfaceError("io_size: every ratio is 0")
    return max(k for k, _ in sizes), sizes


def _distribution(distribution: Any) -> list[int] | None:
    """100 percentages (summing to 100): the share of IOs in each of 100 equal
    sections of the region, lowest LBAs first (pynvme 2.x gave per-10,000
    counts: divide them by 100)."""
    if distribution is None:
        return None
    if not isinstance(distribution, (list, tuple)) or len(distribution) != SECTIONS:
        raise InterfaceError(f"distribution must be a list of {SECTIONS} percentages "
                             f"(one per section of the region)")
    for i, p in enumerate(distribution):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 100:
            raise InterfaceError(f"distribution[{i}] {p!r} is outside 0..100")
    total = sum(distribution)
    if abs(total - 100) > 1e-6:
        raise InterfaceError(f"distribution sums to {total:g}, not 100")
    weights = _weights("distribution", dict(enumerate(distribution)))
    return [weights[i] for i in range(SECTIONS)]


def _sequence(seq: Any, nsze: int, max_io: int, why: str) -> list[tuple[float, int, int, int]]:
    """(time_us, op, lba, nlb) tuples, times from the start and never decreasing."""
    if not isinstance(seq, (list, tuple)) or not seq:
        raise InterfaceError("io_sequence must be a non-empty list of "
                             "(time_us, opcode or op name, lba, nlb) tuples")
    if len(seq) > MAX_SEQUENCE:
        raise InterfaceError(f"io_sequence has {len(seq)} commands: at most {MAX_SEQUENCE}")
    out, last = [], 0.0
    for i, item in enumerate(seq):
        if not isinstance(item, (list, tuple)) or len(item) != 4:
            raise InterfaceError(f"io_sequence[{i}] {item!r} is not a (time_us, op, lba, nlb) tuple")
        t, op, lba, nlb = item
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= MAX_TIME_S * 1e6:
            raise InterfaceError(f"io_sequence[{i}] time_us {t!r} is outside 0..{MAX_TIME_S * 10**6}")
        if t < last:
            raise InterfaceError(f"io_sequence[{i}] time_us {t} is before the previous {last}: "
                                 f"the sequence must be in time order")
        last = float(t)
        name = OPCODES.get(op) if isinstance(op, int) and not isinstance(op, bool) else op
        if name not in OPS:
            raise InterfaceError(
                f"io_sequence[{i}] op {op!r} is not one of the opcodes "
                f"{', '.join(f'{k:#04x} ({v})' for k, v in OPCODES.items())}")
        nlb = _int(f"io_sequence[{i}] nlb", nlb, 1, max_io, why)
        lba = _int(f"io_sequence[{i}] lba", lba, 0, nsze - nlb,
                   f" (NSZE {nsze}: the command must end inside the namespace)")
        out.append((last, OPS.index(name), lba, nlb))
    return out


def _pattern(pattern: Any) -> Any:
    if isinstance(pattern, bool):
        raise InterfaceError("pattern must be an int dword, bytes, or one of " + ", ".join(PATTERNS))
    if isinstance(pattern, tuple):
        if len(pattern) != 2 or pattern[0] != "random":
            raise InterfaceError(f"pattern {pattern!r} is not ('random', compressible percent)")
        return ("random", _int("pattern compressible percent", pattern[1], 0, 100))
    if pattern == "random":
        return ("random", 0)
    if isinstance(pattern, int):
        return _int("pattern", pattern, 0, 0xFFFFFFFF, " (a dword repeated)")
    if isinstance(pattern, (bytes, bytearray)):
        if not pattern:
            raise InterfaceError("pattern bytes must not be empty")
        return bytes(pattern)
    if pattern in PATTERNS:
        return pattern
    raise InterfaceError(f"pattern {pattern!r} is not an int dword, bytes, or one of "
                         + ", ".join(PATTERNS))


def check_args(ns: "Namespace", io_size: Any = 8, lba_align: Any = None, lba_random: Any = True,
               read_percentage: Any = 100, time: Any = 0, qdepth: Any = 64,
               region_start: Any = 0, region_end: Any = None, iops: Any = 0,
               io_count: Any = 0, lba_start: Any = 0, qprio: Any = 0,
               output_io_per_second: Any = None, output_percentile_latency: Any = None, *,
               lba_step: Any = None, op_percentage: Any = None, pattern: Any = 0,
               distribution: Any = None, io_sequence: Any = None,
               interval: Any = 1.0, check: bool = True, stamp: Any = True) -> IOWorkerArgs:
    """Check every argument against the namespace and its controller."""
    nvme = ns.nvme
    if nvme._transport is None:
        raise InterfaceError("the controller is not open: await aionvme.Controller(...) first")
    if not ns.nsze:
        raise InterfaceError("the namespace is not open: await aionvme.Namespace(nvme0, nsid) first")
    from aionvme.qpair import max_entries
    entries, what = max_entries(nvme)  # CAP.MQES is 0's based: the queue has MQES + 1 entries
    qdepth = _int("qdepth", qdepth, 1, entries - 1,
                  f" ({what}: the queue needs qdepth + 1 entries)")
    max_io = min(nvme.mdts // ns.lba_size, 0x10000)
    why = f" (MDTS {nvme.mdts} bytes / LBA size {ns.lba_size})"
    sequence = None
    if io_sequence is not None:
        for name, value, default in (("io_count", io_count, 0), ("iops", iops, 0),
                                     ("distribution", distribution, None),
                                     ("op_percentage", op_percentage, None)):
            if value != default:
                raise InterfaceError(f"{name} does not apply with io_sequence, which gives "
                                     f"every command")
        sequence = _sequence(io_sequence, ns.nsze, max_io, why)
        io_size, sizes = max(c[3] for c in sequence), None
    else:
        io_size, sizes = _io_size(io_size, max_io, why)
    smallest = min(k for k, _ in sizes) if sizes else io_size
    lba_align = smallest if lba_align is None else _int("lba_align", lba_align, 1, 0xFFFFFFFF)
    if not isinstance(lba_random, (bool, int)):
        raise InterfaceError(f"lba_random must be a bool, not {type(lba_random).__name__}")
    step_default = -(-io_size // lba_align) * lba_align
    # Varying sizes, sequential: each IO starts where the last ended (aligned up).
    lba_step_io = lba_step is None and sizes is not None
    if lba_step is None:
        lba_step = step_default
    else:
        _int("lba_step", lba_step, -ns.nsze, ns.nsze)
        if lba_random:
            raise InterfaceError("lba_step applies to sequential IO: pass lba_random=False")
    dist = _distribution(distribution)
    if dist is not None and not lba_random:
        raise InterfaceError("distribution applies to random IO: pass lba_random=True")
    mix = _mix(read_percentage, op_percentage)
    if isinstance(time, bool) or not isinstance(time, (int, float)) or not 0 <= time <= MAX_TIME_S:
        raise InterfaceError(f"time {time!r} is outside 0..{MAX_TIME_S} seconds (0: no limit)")
    io_count = _int("io_count", io_count, 0, None, " (0: no limit)")
    iops = _int("iops", iops, 0, None, " (0: no limit)")
    qprio = _int("qprio", qprio, 0, 3, " (SQ priority, 5.5 QPRIO)")
    region_start = _int("region_start", region_start, 0, ns.nsze - 1, f" (NSZE {ns.nsze})")
    if region_end is None:
        region_end = ns.nsze
    region_end = min(_int("region_end", region_end, 1, None), ns.nsze)
    first = -(-region_start // lba_align) * lba_align
    if first + io_size > region_end:
        raise InterfaceError(
            f"the region [{region_start}, {region_end}) is empty: no IO of io_size {io_size} "
            f"aligned to lba_align {lba_align} fits in it")
    slots = (region_end - io_size - first) // lba_align + 1
    if dist is not None and slots < SECTIONS:
        raise InterfaceError(f"distribution needs at least {SECTIONS} aligned start LBAs in the "
                             f"region; [{region_start}, {region_end}) has {slots}")
    lba_start = _int("lba_start", lba_start, 0, None, " (0: start at region_start)")
    if lba_start and not region_start <= lba_start <= region_end - io_size:
        raise InterfaceError(f"lba_start {lba_start} is outside the region "
                             f"[{region_start}, {region_end - io_size}] where an IO fits")
    if output_io_per_second is not None and not isinstance(output_io_per_second, list):
        raise InterfaceError("output_io_per_second must be a list (it is filled in) or None")
    percentiles: tuple[float, ...] = DEFAULT_PERCENTILES
    if output_percentile_latency is not None:
        if not isinstance(output_percentile_latency, dict):
            raise InterfaceError("output_percentile_latency must be a dict of percent -> None")
        for k in output_percentile_latency:
            if isinstance(k, bool) or not isinstance(k, (int, float)) or not 0 < k <= 100:
                raise InterfaceError(f"output_percentile_latency key {k!r} is outside (0, 100]")
        percentiles = tuple(sorted(set(percentiles) | {float(k) for k in output_percentile_latency}))
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 0.01 <= interval <= 3600:
        raise InterfaceError(f"interval {interval!r} is outside 0.01..3600 seconds")
    return IOWorkerArgs(
        io_size=io_size, lba_align=lba_align, lba_random=bool(lba_random), lba_step=lba_step,
        mix=mix, time=float(time), qdepth=qdepth, region_start=region_start,
        region_end=region_end, iops=iops, io_count=io_count, lba_start=lba_start, qprio=qprio,
        pattern=_pattern(pattern), stamp=_bool("stamp", stamp), interval=float(interval),
        check=bool(check),
        percentiles=percentiles, output_io_per_second=output_io_per_second,
        output_percentile_latency=output_percentile_latency, sizes=sizes,
        lba_step_io=lba_step_io, distribution=dist, io_sequence=sequence)
