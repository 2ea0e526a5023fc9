"""The ``aionvme`` command: ``aionvme info [ADDRESS]`` prints what a device
identifies itself as and its health; ``aionvme perf [ADDRESS] ...`` runs
ioworkers against it (see aionvme.perf); ``aionvme list``, ``aionvme setup
[ADDR ...]`` and ``aionvme reset [ADDR ...]`` show NVMe controllers and bind them
to vfio-pci and back (see aionvme.pci_bind)."""
from __future__ import annotations

import argparse
import asyncio
import sys

import aionvme


async def _info(address: str) -> None:
    async with aionvme.Controller(address) as nvme0:
        print(f"address      {address}")
        print(f"model        {nvme0.id_data(63, 24, str)}")
        print(f"serial       {nvme0.id_data(23, 4, str)}")
        print(f"firmware     {nvme0.id_data(71, 64, str)}")
        vs = nvme0[0x08]
        print(f"version      {vs >> 16}.{(vs >> 8) & 0xFF}.{vs & 0xFF}")
        print(f"mdts         {nvme0.mdts} bytes")
        print(f"namespaces   {nvme0.id_data(519, 516)}")
        ns = await aionvme.Namespace(nvme0, 1)
        print(f"namespace 1  {ns.nsze} LBAs of {ns.lba_size} bytes ({ns.capacity / 1e9:.1f} GB)")
        smart = aionvme.Buffer(512)
        await nvme0.getlogpage(0x02, smart, 512)
        print(f"temperature  {int(smart.data(2, 1)) - 273} C")
        print(f"power cycles {smart.data(127, 112)}")


def _bind(args: argparse.Namespace) -> int:
    from aionvme import pci_bind
    system = pci_bind.System()
    if args.command == "list":
        print(pci_bind.table(system.controllers()))
        if not system.iommu_on():
            print(f"note: {pci_bind.IOMMU_HOWTO}")
        return 0
    addrs = args.addresses or None
    if args.command == "setup":
        done = pci_bind.setup(system, addrs, force=args.force)
    else:
        done = pci_bind.reset(system, addrs)
    for line in done:
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="aionvme", description="Test NVMe SSDs from asyncio Python.")
    sub = p.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="identify a device and show its health")
    info.add_argument("address", nargs="?", default="sim", help="device address (default: sim)")
    from aionvme import perf
    perf.add_arguments(sub.add_parser("perf", help="run ioworkers and report IOPS and latency"))
    sub.add_parser("list", help="every NVMe controller: address, driver, IOMMU group, in use")
    st = sub.add_parser("setup", help="bind controllers to vfio-pci (refuses ones in use)")
    st.add_argument("addresses", nargs="*", metavar="ADDR", help="PCI addresses (default: all free)")
    st.add_argument("--force", action="store_true",
                    help="bind even if a namespace is in use (never the root filesystem's)")
    rs = sub.add_parser("reset", help="give controllers back to the nvme driver")
    rs.add_argument("addresses", nargs="*", metavar="ADDR", help="PCI addresses (default: all on vfio-pci)")
    from aionvme.target import cli as serve
    serve.add_arguments(sub.add_parser("serve", help="export a controller as an NVMe/TCP target"))
    args = p.parse_args(argv)
    try:
        if args.command == "info":
            asyncio.run(_info(args.address))
        elif args.command == "perf":
            return perf.main(args)
        elif args.command in ("list", "setup", "reset"):
            return _bind(args)
        elif args.command == "serve":
            return serve.main(args)
    except aionvme.NvmeError as e:
        print(f"aionvme: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("aionvme: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
