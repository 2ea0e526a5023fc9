"""``python -m aionvme.simulator --fd N``: the simulator device process."""
import argparse
import sys

from aionvme.simulator.device import serve


def main() -> int:
    p = argparse.ArgumentParser(prog="aionvme.simulator", description=__doc__)
    p.add_argument("--fd", type=int, required=True, help="connected unix socket to the host")
    args = p.parse_args()
    return serve(args.fd)


if __name__ == "__main__":
    sys.exit(main())
