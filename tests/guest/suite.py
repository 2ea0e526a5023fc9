#!/usr/bin/env python3
"""The guest suites (`make test-guest`): each boots a guest (guest.py) and runs one command in it.

    python3 tests/guest/suite.py [--list] [--logs DIR] [NAME ...]

Runs every suite (or the NAMEs given) in turn, streaming the guest's output,
keeping each console log in DIR (default build/guest-logs/NAME.log), and
prints a summary with the time each took.  Exit status: 0 when all passed,
1 when one failed.  When a guest cannot run here (no QEMU, no Debian kernel
package) it prints "SKIPPED the guest suites: REASON" and exits 0: the reason
is always printed, never silent.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import guest  # noqa: E402

PY = sys.executable
VFIO_ADDR = f"0000:00:{guest.FIRST_SLOT:02x}.0"   # the first vfio-bound controller
PYTEST = [PY, "-m", "pytest", "-q", "-rfEX", "--tb=short"]
# The arena is pinned while a vfio device is open (VFIO type1): keep it small in the guest.
VFIO_ENV = {"AIONVME_ARENA_MB": "128"}
CONFORMANCE = sorted(os.path.relpath(p, ROOT) for p in
                     glob.glob(os.path.join(ROOT, "tests", "test_conf_*.py")))

# name -> (guest.run keyword arguments, command).  Size for TCG: Python runs ~15x
# slower in the guest than on the host.
SUITES: dict[str, tuple[dict, list[str]]] = {
    "smoke": ({"vfio": 1, "kernel": 1, "nvmet": True, "modules": ["ext4"], "timeout": 300},
              [PY, "tests/guest/check_smoke.py"]),
    # the vfio backend itself: bad DMA stopped by the IOMMU, MSI-X through VFIO,
    # an ioworker with verify, FLR, power cycle through callbacks, two controllers at once
    "vfio": ({"vfio": 2, "env": VFIO_ENV, "timeout": 900},
             PYTEST + ["--pciaddr", VFIO_ADDR, "tests/guest/check_vfio.py"]),
    # the conformance suites and the API tests on QEMU's controller through vfio-pci
    "vfio-conformance": ({"vfio": 1, "env": VFIO_ENV, "timeout": 3000},
                         PYTEST + ["--pciaddr", VFIO_ADDR, *CONFORMANCE, "tests/test_api.py"]),
    # aionvme's tcp host against Linux's nvmet-tcp target (null_blk behind it)
    "tcp-nvmet": ({"nvmet": True, "timeout": 300}, [PY, "tests/guest/check_tcp_nvmet.py"]),
    # Linux's nvme-tcp host against `aionvme serve`
    "tcp-serve": ({"modules": ["nvme-tcp", "nvme-fabrics", "crc32c_generic"], "timeout": 300},
                  [PY, "tests/guest/check_tcp_serve.py"]),
    # the kernel transport on nvme.ko: aionvme list/setup/reset first (mkfs + mount on
    # the first controller's namespace is refused, the second goes to vfio-pci and
    # back), then the passthrough subset with an ioworker and verify on the first
    "kernel": ({"kernel": 2, "modules": ["vfio-pci", "ext4"], "timeout": 900},
               PYTEST + ["--pciaddr", "/dev/nvme0", "tests/test_pci_bind_guest.py",
                         "tests/test_kernel_passthru.py"]),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", metavar="NAME")
    ap.add_argument("--list", action="store_true", help="list the suites and exit")
    ap.add_argument("--logs", default=os.path.join(ROOT, "build", "guest-logs"), metavar="DIR")
    a = ap.parse_args(argv)
    if a.list:
        for name, (kw, cmd) in SUITES.items():
            print(f"{name}: {kw} {' '.join(cmd)}")
        return 0
    unknown = [n for n in a.names if n not in SUITES]
    if unknown:
        ap.error(f"unknown suite(s) {', '.join(unknown)}; known: {', '.join(SUITES)}")
    why = guest.available()
    if why:
        print(f"SKIPPED the guest suites: {why}")
        return 0
    os.makedirs(a.logs, exist_ok=True)
    results = []
    for name in a.names or list(SUITES):
        kw, cmd = SUITES[name]
        log = os.path.join(a.logs, f"{name}.log")
        print(f"=== guest suite {name}: {' '.join(cmd)}", flush=True)
        t0 = time.monotonic()
        res = guest.run(cmd, cwd=ROOT, log=log, stream=True, **kw)
        secs = time.monotonic() - t0
        if res.reason:
            print(f"guest suite {name}: {res.reason}", file=sys.stderr)
        results.append((name, res.rc, secs, log))
    print("=== guest suites:")
    for name, rc, secs, log in results:
        print(f"{'passed' if rc == 0 else f'FAILED (exit status {rc})'}  {name}  {secs:.1f} s  log: {log}")
    return 0 if all(rc == 0 for _, rc, _, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
