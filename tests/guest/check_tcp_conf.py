"""Guest side: the conformance suites and API tests over aionvme's tcp transport
against Linux's nvmet-tcp (``--nvmet``).  Namespace 1 is moved onto a
memory-backed null_blk first (the harness's null_blk drops data), then pytest
runs with ``--pciaddr $AIONVME_GUEST_NVMET``; the arguments are pytest's."""
from __future__ import annotations

import os
import subprocess
import sys
import time

NULLB = "/sys/kernel/config/nullb/nullb1"


def write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def main() -> int:
    uri = os.environ["AIONVME_GUEST_NVMET"]
    nqn = uri.rsplit("/", 1)[1]
    os.makedirs(NULLB, exist_ok=True)
    for name, value in (("size", "512"), ("blocksize", "512"), ("memory_backed", "1"),
                        ("power", "1")):
        write(f"{NULLB}/{name}", value)
    for _ in range(100):
        if os.path.exists("/dev/nullb1"):
            break
        time.sleep(0.05)
    ns = f"/sys/kernel/config/nvmet/subsystems/{nqn}/namespaces/1"
    write(f"{ns}/enable", "0")
    write(f"{ns}/device_path", "/dev/nullb1")
    write(f"{ns}/enable", "1")
    print(f"namespace 1 of {nqn} is now /dev/nullb1 (memory backed)", flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", "--pciaddr", uri, *sys.argv[1:]])


sys.exit(main())
