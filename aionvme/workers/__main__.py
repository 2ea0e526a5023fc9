"""Entry of an ioworker process: ``python -m aionvme.workers SPEC_JSON``.

The parent passes the DMA arena, the BAR page, the doorbell eventfd and the
statistics block as inherited fds; everything else is in the JSON spec
(aionvme.workers.worker builds it).  Exit code 0: the run ended and the
statistics block says how."""
from __future__ import annotations

import json
import os
import signal
import sys


def _die_with_parent(parent_pid: int) -> None:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the parent
    if os.getppid() != parent_pid:
        os._exit(3)  # the parent died before the line above


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m aionvme.workers SPEC_JSON (started by Namespace.ioworker)",
              file=sys.stderr)
        return 2
    spec = json.loads(argv[1])
    _die_with_parent(spec["parent_pid"])
    # Ctrl-C goes to the whole process group: the parent decides, and sets the stop flag.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    from aionvme import _core

    spec["mix"] = bytes.fromhex(spec["mix"])
    stats = _core.IOWorkerStats(spec["fds"]["stats"])
    try:
        return int(_core.ioworker_run(spec, stats))
    finally:
        stats.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
