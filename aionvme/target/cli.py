"""``aionvme serve [sim|sim:PATH.toml] --listen HOST:PORT [--nqn NQN]``."""
from __future__ import annotations

import argparse
import asyncio
import signal

from aionvme.exceptions import InterfaceError
from aionvme.target.server import DEFAULT_NQN, Target
from aionvme.transport.tcp.fabrics import DEFAULT_PORT


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("backend", nargs="?", default="sim",
                   help="the controller to export (default: sim; sim:PATH.toml)")
    p.add_argument("--listen", default=f"127.0.0.1:{DEFAULT_PORT}",
                   help=f"HOST:PORT to listen on (default 127.0.0.1:{DEFAULT_PORT}; port 0: any)")
    p.add_argument("--nqn", default=DEFAULT_NQN, help=f"subsystem NQN (default {DEFAULT_NQN})")


def parse_listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise InterfaceError(f"--listen {text!r} is not HOST:PORT")
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise InterfaceError(f"--listen {text!r}: port {port!r} is not a number") from None


async def serve(args: argparse.Namespace) -> None:
    host, port = parse_listen(args.listen)
    async with Target(args.backend, host=host, port=port, nqn=args.nqn) as t:
        print(f"serving {args.backend} as {t.nqn} on {t.host}:{t.port} (NVMe/TCP)", flush=True)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


def main(args: argparse.Namespace) -> int:
    asyncio.run(serve(args))
    return 0
