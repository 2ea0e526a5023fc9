"""The verify table's cost per IO in an ioworker, without a device; writes JSON.

    python benchmarks/bench_verify_hotpath.py [--baseline DIR] [--json FILE]

Compiles a small C harness against ``ext/src`` (this tree, and with
``--baseline`` another checkout of aionvme, e.g. ``git archive main``) and
times the ioworker's verify hooks (``anv_verify_iow_submit`` and
``anv_verify_iow_complete``) for random 4 KiB reads and writes on a written
namespace of 512 Ki LBAs (a 14+ MiB table, larger than the caches), plus the
copy of the data a device would DMA.  Runs alternate between the trees, so
that the load of a shared machine hits both alike; the result is the median
of the runs, in ns per IO, and new / baseline.
"""
from __future__ import annotations

import argparse
import json
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]

HARNESS = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "aionvme/ioworker.h"
#include "aionvme/verify_iow.h"

#define NLBA (512u << 10)
#define LBA 512u
#define IO 8u
#define QD 64u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	static struct anv_verify v;
	static struct anv_verify_iow vw;
	static struct anv_verify_mismatch m;
	uint8_t *media = malloc((size_t)NLBA * LBA), *buf = malloc((size_t)QD * IO * LBA);
	unsigned long n = strtoul(argv[1], NULL, 0), seed = 7, bad = 0;
	double t0, tr, tw;

	if (!media || !buf || anv_verify_open(&v, 1, NLBA, LBA) < 0 ||
	    anv_verify_iow_init(&vw, &v, QD, IO, 1, &m) < 0)
		return 1;
	for (uint64_t lba = 0; lba < NLBA; lba += IO) {  /* written once, in order */
		anv_verify_iow_submit(&vw, 0, ANV_IOW_WRITE, lba, IO, buf);
		memcpy(media + lba * LBA, buf, IO * LBA);
		anv_verify_iow_complete(&vw, 0, 1, buf);
	}
	for (int pass = 0; pass < 2; pass++) {
		t0 = now();
		for (unsigned long i = 0; i < n; i++) {
			uint16_t cid = (uint16_t)(i % QD);
			uint8_t *b = buf + (size_t)cid * IO * LBA;
			uint64_t lba;

			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			lba = (seed >> 20) % (NLBA / IO) * IO;
			if (pass == 0) {
				anv_verify_iow_submit(&vw, cid, ANV_IOW_READ, lba, IO, b);
				memcpy(b, media + lba * LBA, IO * LBA);
				bad += anv_verify_iow_complete(&vw, cid, 1, b);
			} else {
				anv_verify_iow_submit(&vw, cid, ANV_IOW_WRITE, lba, IO, b);
				memcpy(media + lba * LBA, b, IO * LBA);
				anv_verify_iow_complete(&vw, cid, 1, b);
			}
		}
		if (pass == 0)
			tr = (now() - t0) / n;
		else
			tw = (now() - t0) / n;
	}
	printf("%.1f %.1f %lu\n", tr, tw, bad);
	return 0;
}
"""


def build(tree: pathlib.Path, tmp: pathlib.Path, name: str) -> pathlib.Path:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        sys.exit("no C compiler")
    src, exe = tmp / f"{name}.c", tmp / name
    src.write_text(HARNESS)
    objs = [str(tree / "ext" / "src" / f) for f in
            ("crc32c.c", "verify.c", "verify_inflight.c", "verify_io.c", "verify_iow.c")]
    subprocess.run([cc, "-O2", "-w", "-I", str(tree / "ext" / "include"), str(src), *objs,
                    "-o", str(exe)], check=True)
    return exe


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--baseline", default=None, help="another aionvme checkout to compare with")
    p.add_argument("--ios", type=int, default=2_000_000, help="IOs per pass")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args()
    trees = {"new": ROOT}
    if a.baseline:
        trees["baseline"] = pathlib.Path(a.baseline).resolve()
    res: dict[str, dict[str, list[float]]] = {k: {"read": [], "write": []} for k in trees}
    with tempfile.TemporaryDirectory() as tmp:
        exes = {k: build(t, pathlib.Path(tmp), k) for k, t in trees.items()}
        for _ in range(a.runs):
            for k, exe in exes.items():
                out = subprocess.run([str(exe), str(a.ios)], capture_output=True, text=True,
                                     check=True).stdout.split()
                if out[2] != "0":
                    sys.exit(f"{k}: {out[2]} false alarms")
                res[k]["read"].append(float(out[0]))
                res[k]["write"].append(float(out[1]))
    out: dict = {"bench": "verify_hotpath", "host": platform.node(), "ios_per_pass": a.ios,
                 "runs": a.runs, "ns_per_io": {}}
    for k in trees:
        out["ns_per_io"][k] = {op: round(statistics.median(v), 1) for op, v in res[k].items()}
    if "baseline" in trees:
        out["new_over_baseline"] = {op: round(out["ns_per_io"]["new"][op] /
                                              out["ns_per_io"]["baseline"][op], 3)
                                    for op in ("read", "write")}
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        pathlib.Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
