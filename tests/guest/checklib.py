"""What the guest-side check scripts share: one line per check on the console,
and the first failure ends the script with status 1 (the guest's exit code)."""
from __future__ import annotations

import sys


def ok(what: str) -> None:
    print(f"ok   {what}", flush=True)


def fail(what: str) -> None:
    print(f"FAIL {what}", flush=True)
    sys.exit(1)
