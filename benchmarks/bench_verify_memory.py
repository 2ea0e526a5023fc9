"""Host memory of the data verification table, per LBA; writes JSON.

    python benchmarks/bench_verify_memory.py [--gib 16] [--json bench-results/bench_verify_memory.json]

The table of a namespace of ``--gib`` GiB of 512-byte LBAs (at least 16 GiB)
is driven through the same bookkeeping calls the driver makes for each
command (``VerifyTable.write`` before submission, its ``post(cpl)`` at a
successful completion), with no device: what is measured is the table, not
a device.  Memory is the pages the table's memfd holds (``st_blocks``), in
bytes per LBA of the namespace, and extrapolated to an 8 TB namespace of
512-byte LBAs (15.6 G LBAs), next to the 1 GiB goal of issue 9:

  (a) a full sequential fill (writes of 8192 LBAs)
  (b) (a), then random 4 KiB overwrites of 10 % of the LBAs
  (c) random 4 KiB writes of 10 % of the LBAs into an empty table

With ``--dir DIR`` the table is an unnamed file in DIR (``AIONVME_VERIFY_DIR``):
the bytes are then on disk, and only the page cache the kernel keeps of them
(reclaimable) is host memory.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import sys
import time

from aionvme import _core

LBA = 512
TB8_LBAS = 8 * 10**12 // LBA
GOAL = 1 << 30
OK_CQE = bytes(16)  # status 0: Successful Completion


def used(t: _core.VerifyTable) -> int:
    return os.fstat(t.fd).st_blocks * 512


def write(t: _core.VerifyTable, buf: _core.Buffer, lba: int, nlb: int,
          ok: _core.Completion) -> None:
    post = t.write(buf, lba, nlb)
    post(ok)


def case(name: str, nlba: int, fill: bool, overwrite: float, where: str | None,
         seed: int = 9) -> dict:
    t = _core.VerifyTable(1, nlba, LBA, where)
    ok = _core.Completion.from_bytes(OK_CQE)
    big, small = _core.Buffer(8192 * LBA, "fill"), _core.Buffer(8 * LBA, "4k")
    t0 = time.monotonic()
    if fill:
        for lba in range(0, nlba, 8192):
            write(t, big, lba, min(8192, nlba - lba), ok)
    rng = random.Random(seed)
    slots = nlba // 8
    for _ in range(int(nlba * overwrite) // 8):
        write(t, small, rng.randrange(slots) * 8, 8, ok)
    elapsed = time.monotonic() - t0
    b = used(t)
    per_lba = b / nlba
    return {"case": name, "nlba": nlba, "table_bytes": b, "bytes_per_lba": round(per_lba, 4),
            "extrapolated_8tb_bytes": int(per_lba * TB8_LBAS),
            "extrapolated_8tb_gib": round(per_lba * TB8_LBAS / (1 << 30), 1),
            "within_1gib_goal": per_lba * TB8_LBAS <= GOAL, "seconds": round(elapsed, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--gib", type=int, default=16, help="namespace size in GiB (at least 16)")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--dir", default=None, help="the table in a file in this directory")
    a = p.parse_args()
    if a.gib < 16:
        p.error(f"--gib {a.gib}: the issue asks for at least 16 GiB")
    nlba = (a.gib << 30) // LBA
    results = [case("a_sequential_fill", nlba, True, 0.0, a.dir),
               case("b_fill_plus_10pct_random_4k", nlba, True, 0.10, a.dir),
               case("c_random_4k_10pct_only", nlba, False, 0.10, a.dir)]
    out = {"bench": "verify_memory", "host": platform.node(), "python": sys.version.split()[0],
           "table": f"file in {a.dir} (bytes on disk)" if a.dir else "memfd (bytes in memory)",
           "namespace_gib": a.gib, "lba_size": LBA, "goal_8tb_bytes": GOAL, "results": results}
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        pathlib.Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
