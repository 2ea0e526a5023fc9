"""Guest side of the smoke suite: what the harness promised is there (runs as root in the guest).

- every NVMe function (class 010802) of the guest, with its driver;
- each address of AIONVME_GUEST_VFIO bound to vfio-pci, its IOMMU group's
  /dev/vfio/N, a VFIO container offering the type1v2 IOMMU;
- each controller of AIONVME_GUEST_KERNEL: its char device answers an
  Identify Controller through NVME_IOCTL_ADMIN_CMD, its namespace has a block
  device and a generic char device (/dev/ngXnY, io_uring passthrough);
- mkfs.ext4 + mount on the first kernel namespace works (so that
  `aionvme setup` can be shown to refuse a disk holding a mounted filesystem);
- the nvmet-tcp target of AIONVME_GUEST_NVMET answers an ICReq with an ICResp;
- aionvme's vfio backend refuses the nvme.ko-bound function, naming its driver;
- the aionvme being tested is the caller's (its import path).

Prints one line per check and exits non-zero on the first failure.
"""
from __future__ import annotations

import ctypes
import fcntl
import glob
import os
import stat
import subprocess

from checklib import fail, ok  # tests/guest: the script's own folder


VFIO_GET_API_VERSION = 0x3B64     # _IO(VFIO_TYPE, VFIO_BASE + 0), <linux/vfio.h>
VFIO_CHECK_EXTENSION = 0x3B65     # _IO(VFIO_TYPE, VFIO_BASE + 1)
VFIO_TYPE1v2_IOMMU = 3
NVME_IOCTL_ADMIN_CMD = 0xC0484E41  # _IOWR('N', 0x41, struct nvme_passthru_cmd), 72 bytes


def sysfs(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def list_nvme() -> None:
    for dev in sorted(glob.glob("/sys/bus/pci/devices/*")):
        if sysfs(f"{dev}/class") != "0x010802":
            continue
        drv = os.path.basename(os.readlink(f"{dev}/driver")) if os.path.exists(f"{dev}/driver") else "-"
        group = os.path.basename(os.readlink(f"{dev}/iommu_group"))
        print(f"     {os.path.basename(dev)} {sysfs(dev + '/vendor')}:{sysfs(dev + '/device')} "
              f"driver={drv} iommu_group={group}")


def check_vfio(addr: str) -> None:
    dev = f"/sys/bus/pci/devices/{addr}"
    drv = os.path.basename(os.readlink(f"{dev}/driver")) if os.path.exists(f"{dev}/driver") else None
    if drv != "vfio-pci":
        fail(f"{addr}: bound to {drv}, not vfio-pci")
    group = os.path.basename(os.readlink(f"{dev}/iommu_group"))
    if not stat.S_ISCHR(os.stat(f"/dev/vfio/{group}").st_mode):
        fail(f"{addr}: no /dev/vfio/{group}")
    fd = os.open("/dev/vfio/vfio", os.O_RDWR)
    try:
        if fcntl.ioctl(fd, VFIO_GET_API_VERSION) != 0:
            fail("VFIO API version is not 0")
        if fcntl.ioctl(fd, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1:
            fail("the VFIO container has no type1v2 IOMMU")
    finally:
        os.close(fd)
    ok(f"{addr} is bound to vfio-pci, IOMMU group {group}, type1v2 IOMMU offered")


def identify(char: str) -> bytes:
    data = ctypes.create_string_buffer(4096)
    cmd = bytearray(72)
    cmd[0] = 0x06                                            # opcode: Identify
    cmd[24:32] = ctypes.addressof(data).to_bytes(8, "little")   # addr
    cmd[36:40] = (4096).to_bytes(4, "little")                    # data_len
    cmd[40:44] = (1).to_bytes(4, "little")                       # cdw10: CNS 1, the controller
    fd = os.open(char, os.O_RDWR)
    try:
        rc = fcntl.ioctl(fd, NVME_IOCTL_ADMIN_CMD, cmd)  # the status, or OSError
    finally:
        os.close(fd)
    if rc != 0:
        fail(f"{char}: Identify returned status {rc:#x}")
    return data.raw


def check_kernel(char: str) -> str:
    if not stat.S_ISCHR(os.stat(char).st_mode):
        fail(f"{char} is not a character device")
    idc = identify(char)
    model = idc[24:64].decode(errors="replace").strip()
    if "QEMU NVMe" not in model:
        fail(f"{char}: Identify Controller gave model {model!r}")
    blk, ng = f"{char}n1", char.replace("/dev/nvme", "/dev/ng") + "n1"
    if not stat.S_ISBLK(os.stat(blk).st_mode):
        fail(f"{blk} is not a block device")
    if not stat.S_ISCHR(os.stat(ng).st_mode):
        fail(f"{ng} is not a character device")
    ok(f"{char}: Identify says {model!r}; {blk} and {ng} are there")
    return blk


def check_mkfs_mount(blk: str) -> None:
    mnt = "/dev/shm/aionvme-guest-mnt"
    os.makedirs(mnt, exist_ok=True)
    for cmd in (["mkfs.ext4", "-q", "-F", blk], ["mount", "-t", "ext4", blk, mnt]):
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            fail(f"`{' '.join(cmd)}`: {p.stderr.strip()}")
    try:
        with open(f"{mnt}/hello", "w") as f:
            f.write("hello")
        mounts = open("/proc/mounts").read()
        if f"{blk} {mnt} ext4" not in mounts:
            fail(f"{blk} is not in /proc/mounts")
        ok(f"mkfs.ext4 + mount of {blk} work (a namespace with a mounted filesystem)")
    finally:
        subprocess.run(["umount", mnt], check=True)


def check_nvmet(uri: str) -> None:
    import socket
    import struct
    hostport = uri.split("://", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    # ICReq PDU of the NVMe/TCP Transport Specification: type 0, HLEN = PLEN = 128, PFV 0
    icreq = struct.pack("<BBBBI", 0x00, 0, 128, 0, 128) + bytes(120)
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(icreq)
        resp = b""
        while len(resp) < 128:
            chunk = s.recv(128 - len(resp))
            if not chunk:
                break
            resp += chunk
    if len(resp) < 8 or resp[0] != 0x01:
        fail(f"{uri}: no ICResp to an ICReq (got {resp[:8].hex()})")
    ok(f"{uri}: the nvmet-tcp target answers an ICReq with an ICResp")


def main() -> None:
    list_nvme()
    vfio = [a for a in os.environ.get("AIONVME_GUEST_VFIO", "").split(",") if a]
    kernel = [c for c in os.environ.get("AIONVME_GUEST_KERNEL", "").split(",") if c]
    if not vfio or not kernel:
        fail(f"expected vfio and kernel controllers, got AIONVME_GUEST_VFIO={vfio} "
             f"AIONVME_GUEST_KERNEL={kernel}")
    for addr in vfio:
        check_vfio(addr)
    blks = [check_kernel(c) for c in kernel]
    check_mkfs_mount(blks[0])
    if os.environ.get("AIONVME_GUEST_NVMET"):
        check_nvmet(os.environ["AIONVME_GUEST_NVMET"])
    import asyncio

    import aionvme
    from aionvme.exceptions import InterfaceError
    ok(f"aionvme is imported from {os.path.dirname(aionvme.__file__)}")
    addr = os.path.basename(os.readlink(f"/sys/class/nvme/{os.path.basename(kernel[0])}/device"))

    async def refused() -> str:
        try:
            await aionvme.Controller(addr)
        except InterfaceError as e:
            return str(e)
        return ""
    why = asyncio.run(refused())
    if "bound to nvme, not vfio-pci" not in why:
        fail(f"Controller({addr!r}) on the nvme.ko-bound function: {why or 'opened'}")
    ok(f"Controller({addr!r}) is refused: {why}")


if __name__ == "__main__":
    main()
