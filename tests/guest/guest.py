#!/usr/bin/env python3
"""A throw-away QEMU guest with the real Linux NVMe stack, for tests (stdlib only).

The guest runs Debian's stock kernel (``linux-image-6.1.0-*-amd64``, unpacked
with ``dpkg -x``, never installed) on QEMU q35 under TCG, behind an emulated
VT-d IOMMU.  A busybox initramfs loads the modules it needs, mounts the
host's ``/`` read-only over virtio-9p, chroots into it and runs ONE command
with the host's own Python, then powers off.  So a test in the guest runs the
caller's venv and the aionvme installed there, against QEMU's NVMe
controllers seen through vfio-pci and through the guest kernel's nvme.ko.

Command line::

    python3 tests/guest/guest.py run [--vfio N] [--kernel N] [--nvmet]
        [--modules m1,m2] [--mem MiB] [--timeout S] [--log FILE]
        [--env K=V ...] -- COMMAND ARGS...
    python3 tests/guest/guest.py available     # prints why not and exits 1, or exits 0
    python3 tests/guest/guest.py prepare       # fetches and unpacks into the cache

``--vfio N``     N QEMU NVMe controllers bound to vfio-pci (default 0), at
                 PCI slots 00:04.0, 00:05.0, ...
``--kernel N``   N more controllers left to the guest's nvme.ko (default 0),
                 on the slots after the vfio ones: /dev/nvme0, ...
``--nvmet``      an NVMe/TCP target in the guest kernel: subsystem
                 ``nqn.2026-12.io.aionvme:guest``, any host allowed, one
                 null_blk namespace, port 4420 on 127.0.0.1
``--modules``    more modules to load (with their dependencies), e.g.
                 ``nvme-tcp,nvme-fabrics``
``--mem``        guest RAM in MiB (default 1024); ``--timeout`` seconds for the
                 whole run (default 600); ``--log`` keeps the console log
``--env K=V``    more environment for COMMAND (repeatable)

Each controller is configured as the qemu backend configures QEMU's (a
64-entry MSI-X table, namespace 1 of 1 GiB in 512-byte LBAs) on its own
raw image (a sparse memfd, gone when QEMU exits).  COMMAND runs as root with cwd = the caller's cwd and the
environment: PATH, VIRTUAL_ENV, HOME, LANG and PYTHONPATH of the caller,
TMPDIR=/dev/shm (the guest's /tmp is the host's and read-only; /dev/shm is
a guest tmpfs), PYTHONUNBUFFERED=1, PYTHONDONTWRITEBYTECODE=1, and

- ``AIONVME_GUEST_VFIO="0000:00:04.0,..."``      the vfio-bound controllers
- ``AIONVME_GUEST_KERNEL="/dev/nvme0,..."``      the nvme.ko-bound controllers
- ``AIONVME_GUEST_NVMET="tcp://127.0.0.1:4420/nqn.2026-12.io.aionvme:guest"``

each set only when there is one.  COMMAND's stdout and stderr stream back to
the host's stdout and stderr (virtio serial ports, not ttys); the console
(kernel and init messages) goes to ``--log``.  The exit status is COMMAND's,
or 124 when the run timed out and 125 when the guest could not be started or
died before COMMAND finished; the reason is printed on stderr.

From Python (for pytest)::

    from guest import available, run
    why = available()                 # None, or why the guest cannot run here
    res = run(["python", "-c", "print(1)"], vfio=1, kernel=1)
    res.rc, res.output, res.log, res.reason

Cache: ``AIONVME_GUEST_CACHE`` or ``build/guest/`` of the source tree holds
the downloaded .debs, the unpacked kernel, the extracted vmlinux and the
module index.  A cache dir can be shared (a lock file serialises preparing).
``AIONVME_GUEST_ACCEL=kvm|tcg`` overrides the accelerator choice (KVM is used
only where /proc/cpuinfo shows vmx or svm: a /dev/kvm without them is a
software nested-virtualisation module far slower than TCG).
"""
from __future__ import annotations

import argparse
import dataclasses
import fcntl
import glob
import json
import lzma
import os
import re
import selectors
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
QEMU = "qemu-system-x86_64"
NQN = "nqn.2026-12.io.aionvme:guest"
NVMET_URI = f"tcp://127.0.0.1:4420/{NQN}"
FIRST_SLOT = 4          # the first controller's PCI slot: 00:04.0
IMAGE_SIZE = 1 << 30    # each controller's namespace image (a sparse memfd)
# The controllers as the qemu backend configures QEMU's (aionvme/qemu/config.py):
# a 64-entry MSI-X table, namespace 1 of 512-byte LBAs; so the conformance
# suites expect the same device through vfio-pci as over qtest.
NVME_OPTS = "msix_qsize=64"
NS_OPTS = "nsid=1,logical_block_size=512,physical_block_size=512"

INDEX_VERSION = 2       # of modules.json in the cache
RC_TIMEOUT = 124        # as timeout(1)
RC_HARNESS = 125        # the guest did not start or died before COMMAND finished

# What every guest loads: the 9p root and the virtio serial ports.
BASE_MODULES = ["virtio_pci", "9pnet_virtio", "9p", "virtio_console"]
VFIO_MODULES = ["vfio", "vfio_iommu_type1", "vfio-pci"]
KERNEL_MODULES = ["nvme"]
NVMET_MODULES = ["configfs", "null_blk", "nvmet", "nvmet-tcp"]


class GuestError(Exception):
    """The guest cannot be prepared or started here (the message says why)."""


@dataclasses.dataclass
class Result:
    """One guest run: COMMAND's exit status and output, the console log.

    ``rc`` is COMMAND's exit status, RC_TIMEOUT or RC_HARNESS; ``reason``
    says why for the last two (empty when COMMAND ran to its end).
    ``output`` is COMMAND's stdout and stderr as one text (in arrival order).
    """
    rc: int
    output: str
    log: str
    reason: str = ""
    seconds: float = 0.0


def cache_dir() -> str:
    return os.environ.get("AIONVME_GUEST_CACHE") or os.path.join(ROOT, "build", "guest")


# --------------------------------------------------------------------------- fetching

def _sh(cmd: list[str], cwd: str | None = None) -> str:
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if p.returncode:
        raise GuestError(f"`{' '.join(cmd)}` failed: {(p.stderr or p.stdout).strip()[-500:]}")
    return p.stdout


def _kernel_package() -> str:
    """The exact package linux-image-amd64 depends on (linux-image-6.1.0-N-amd64)."""
    for attempt in range(2):
        try:
            out = _sh(["apt-cache", "depends", "linux-image-amd64"])
        except (GuestError, FileNotFoundError):
            out = ""
        m = re.search(r"Depends:\s*(linux-image-\S+-amd64)", out)
        if m:
            return m.group(1)
        if attempt == 0 and os.geteuid() == 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
    raise GuestError("cannot find Debian's linux-image-*-amd64 package "
                     "(`apt-cache depends linux-image-amd64` names none; not a Debian host?)")


def _download(pkg: str, dest: str) -> str:
    """The .deb of pkg in dest, downloaded with `apt-get download` unless there."""
    have = glob.glob(os.path.join(dest, f"{pkg}_*.deb"))
    if have:
        return have[0]
    if shutil.which("apt-get") is None:
        raise GuestError(f"apt-get is missing: cannot download Debian's {pkg}")
    try:
        _sh(["apt-get", "download", "-q", pkg], cwd=dest)
    except GuestError:
        if os.geteuid() != 0:
            raise
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
        _sh(["apt-get", "download", "-q", pkg], cwd=dest)
    have = glob.glob(os.path.join(dest, f"{pkg}_*.deb"))
    if not have:
        raise GuestError(f"apt-get download {pkg} left no .deb in {dest}")
    return have[0]


def _extract_vmlinux(bzimage: str, out: str) -> None:
    """The uncompressed ELF kernel inside a bzImage (xz payload), for a PVH boot."""
    data = open(bzimage, "rb").read()
    start = 0
    while True:
        i = data.find(b"\xfd7zXZ\x00", start)
        if i < 0:
            raise GuestError(f"{bzimage}: no xz payload found")
        try:
            elf = lzma.LZMADecompressor().decompress(data[i:])
        except lzma.LZMAError:
            start = i + 1
            continue
        if elf[:4] == b"\x7fELF":
            break
        start = i + 1
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(elf)
    os.rename(tmp, out)


def _modinfo(path: str) -> dict[str, list[str]]:
    """The .modinfo section of a kernel module (ELF64 little-endian), key -> values."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return {}
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)

    def sect(i: int) -> tuple[int, int, int]:
        name, _t, _fl, _addr, off, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, off, size

    _, stroff, _ = sect(shstrndx)
    info: dict[str, list[str]] = {}
    for i in range(shnum):
        name, off, size = sect(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] != b".modinfo":
            continue
        for entry in data[off:off + size].split(b"\0"):
            if b"=" in entry:
                k, v = entry.decode(errors="replace").split("=", 1)
                info.setdefault(k, []).append(v)
    return info


def _norm(name: str) -> str:
    return name.replace("-", "_")


def _index_modules(kdir: str) -> dict:
    """name -> {path, depends, softdep}, plus alias -> name, of every module."""
    mods: dict[str, dict] = {}
    aliases: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(kdir):
        for fn in files:
            if not fn.endswith(".ko"):
                continue
            path = os.path.join(dirpath, fn)
            info = _modinfo(path)
            name = _norm(fn[:-3])
            deps = [d for d in ",".join(info.get("depends", [])).split(",") if d]
            pre: list[str] = []
            post: list[str] = []
            for s in info.get("softdep", []):
                into = pre
                for w in s.split():
                    if w in ("pre:", "post:"):
                        into = pre if w == "pre:" else post
                    else:
                        into.append(w)
            mods[name] = {"path": os.path.relpath(path, kdir), "depends": [_norm(d) for d in deps],
                          "pre": pre, "post": post}
            for a in info.get("alias", []):
                if not any(c in a for c in "*?["):
                    aliases.setdefault(a, name)
    return {"version": INDEX_VERSION, "modules": mods, "aliases": aliases}


class Kernel:
    """The unpacked kernel in the cache: vmlinux, modules, their dependencies."""

    def __init__(self, root: str) -> None:
        self.root = root
        meta = json.load(open(os.path.join(root, "kernel.json")))
        self.version = meta["version"]
        self.vmlinux = os.path.join(root, "vmlinux")
        self.moddir = os.path.join(root, "x", "lib", "modules", self.version)
        self.index = json.load(open(os.path.join(root, "modules.json")))

    def resolve(self, names: list[str]) -> list[str]:
        """Module paths in load order (dependencies first, soft pre-deps too)."""
        mods, aliases = self.index["modules"], self.index["aliases"]
        builtin = set()
        bpath = os.path.join(self.moddir, "modules.builtin")
        if os.path.exists(bpath):
            builtin = {_norm(os.path.basename(ln.strip())[:-3]) for ln in open(bpath)}
        order: list[str] = []
        seen: set[str] = set()

        def visit(n: str, soft: bool) -> None:
            name = _norm(n)
            if name not in mods:
                name = aliases.get(n, name)
            if name in seen or name in builtin:
                return
            if name not in mods:
                if soft:
                    return
                raise GuestError(f"no kernel module named {n!r} in {self.version}")
            seen.add(name)
            for d in mods[name]["depends"]:
                visit(d, False)
            for d in mods[name]["pre"]:
                visit(d, True)
            order.append(os.path.join(self.moddir, "kernel", mods[name]["path"]))
            for d in mods[name]["post"]:
                visit(d, True)
        for n in names:
            visit(n, False)
        return order


def _write_index(root: str, version: str) -> dict:
    index = _index_modules(os.path.join(root, "x", "lib", "modules", version, "kernel"))
    with open(os.path.join(root, "modules.json.tmp"), "w") as f:
        json.dump(index, f)
    os.rename(os.path.join(root, "modules.json.tmp"), os.path.join(root, "modules.json"))
    return index


def prepare() -> Kernel:
    """Fetch (apt-get download) and unpack (dpkg -x) the kernel and busybox, once."""
    root = cache_dir()
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(root, "kernel.json")) and os.path.exists(
                os.path.join(root, "busybox")):
            k = Kernel(root)
            if k.index.get("version") != INDEX_VERSION:
                k.index = _write_index(root, k.version)
            return k
        for tool in ("dpkg",):
            if shutil.which(tool) is None:
                raise GuestError(f"{tool} is missing: cannot unpack Debian packages")
        debs = os.path.join(root, "debs")
        os.makedirs(debs, exist_ok=True)
        pkg = _kernel_package()
        kdeb = _download(pkg, debs)
        bdeb = _download("busybox-static", debs)
        x = os.path.join(root, "x")
        shutil.rmtree(x, ignore_errors=True)
        _sh(["dpkg", "-x", kdeb, x])
        bx = os.path.join(root, "bx")
        shutil.rmtree(bx, ignore_errors=True)
        _sh(["dpkg", "-x", bdeb, bx])
        shutil.copy(os.path.join(bx, "bin", "busybox"), os.path.join(root, "busybox"))
        shutil.rmtree(bx)
        version = pkg[len("linux-image-"):]
        vmlinuz = os.path.join(x, "boot", f"vmlinuz-{version}")
        _extract_vmlinux(vmlinuz, os.path.join(root, "vmlinux"))
        _write_index(root, version)
        with open(os.path.join(root, "kernel.json"), "w") as f:
            json.dump({"version": version, "package": os.path.basename(kdeb),
                       "busybox": os.path.basename(bdeb)}, f)
        return Kernel(root)


def available() -> str | None:
    """Why a guest cannot run here, or None when it can (fetching into the cache)."""
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian package qemu-system-x86)"
    if sys.platform != "linux":
        return "the guest needs a Linux host"
    try:
        prepare()
    except (GuestError, OSError) as e:
        return f"the guest's kernel cannot be had: {e}"
    return None


# --------------------------------------------------------------------------- initramfs

def _cpio(entries: list[tuple[str, int, bytes]]) -> bytes:
    """A newc cpio archive of (name, mode, data); data of a symlink is its target."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(entries + [("TRAILER!!!", 0, b"")], 1):
        nb = name.encode() + b"\0"
        hdr = "070701" + "".join(f"{v:08x}" for v in (
            ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0))
        out += hdr.encode() + nb
        out += b"\0" * (-len(out) % 4)
        out += data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


INIT = r"""#!/bin/busybox sh
# init of the aionvme test guest (tests/guest/guest.py writes /run.conf)
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
. /run.conf
say() { read up _ < /proc/uptime; echo "guest-init [$up]: $*"; }
fail() { say "FAILED: $*"; echo "harness $*" > "$STATUS" 2>/dev/null; poweroff -f; sleep 5; exit 1; }
# vfio-pci, never nvme.ko, may take the vfio controllers: set before any driver loads
for a in $VFIO; do
    echo vfio-pci > /sys/bus/pci/devices/$a/driver_override || fail "driver_override of $a"
done
say "loading modules"
for m in $MODULES; do insmod "/modules/$m" || say "insmod $m failed"; done
say "modules loaded"
# the virtio serial ports: stdout, stderr, status (in the order QEMU was given them)
for i in 1 2 3 4 5 6 7 8 9 10; do ls /dev/vport*p3 >/dev/null 2>&1 && break; sleep 0.1; done
OUT=$(ls /dev/vport*p1) ; ERR=$(ls /dev/vport*p2); STATUS=$(ls /dev/vport*p3)
[ -c "$STATUS" ] || { say "no virtio serial ports"; poweroff -f; }
mkdir -p /root
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /root \
    || fail "cannot mount the host's root over 9p"
mount -t devtmpfs devtmpfs /root/dev || fail "devtmpfs"
mount -t proc proc /root/proc && mount -t sysfs sysfs /root/sys || fail "proc/sys"
mkdir -p /root/dev/shm && mount -t tmpfs -o mode=1777 tmpfs /root/dev/shm || fail "/dev/shm"
ln -sf /proc/self/fd /root/dev/fd; ln -sf fd/0 /root/dev/stdin
ln -sf fd/1 /root/dev/stdout; ln -sf fd/2 /root/dev/stderr
if grep -q configfs /proc/filesystems; then
    mount -t configfs configfs /root/sys/kernel/config || fail "configfs"
fi
ip link set lo up
say "mounted"
for a in $VFIO; do
    if [ -e /sys/bus/pci/devices/$a/driver ]; then
        echo $a > /sys/bus/pci/devices/$a/driver/unbind
    fi
    echo $a > /sys/bus/pci/drivers_probe
    [ -e /sys/bus/pci/drivers/vfio-pci/$a ] || fail "$a is not bound to vfio-pci"
done
KDEVS=""
for a in $KERNEL; do
    n=""
    for i in $(seq 100); do
        n=$(ls /sys/bus/pci/devices/$a/nvme 2>/dev/null | head -n1)
        [ -n "$n" ] && [ -c /dev/$n ] && break
        sleep 0.1
    done
    [ -c "/dev/$n" ] || fail "$a has no nvme char device (nvme.ko did not bind it)"
    # and its namespace's block device (the kernel scans namespaces asynchronously)
    for i in $(seq 100); do ls /dev/${n}n1 >/dev/null 2>&1 && break; sleep 0.1; done
    KDEVS="$KDEVS${KDEVS:+,}/dev/$n"
done
if [ -n "$NVMET" ]; then
    C=/root/sys/kernel/config/nvmet
    S=$C/subsystems/$NQN
    mkdir $S && echo 1 > $S/attr_allow_any_host && mkdir $S/namespaces/1 \
        && echo -n /dev/nullb0 > $S/namespaces/1/device_path && echo 1 > $S/namespaces/1/enable \
        && mkdir $C/ports/1 && echo tcp > $C/ports/1/addr_trtype && echo ipv4 > $C/ports/1/addr_adrfam \
        && echo 127.0.0.1 > $C/ports/1/addr_traddr && echo 4420 > $C/ports/1/addr_trsvcid \
        && ln -s $S $C/ports/1/subsystems/$NQN || fail "nvmet-tcp target setup"
fi
[ -n "$VFIO" ] && export AIONVME_GUEST_VFIO=$(echo $VFIO | tr ' ' ',')
[ -n "$KDEVS" ] && export AIONVME_GUEST_KERNEL=$KDEVS
[ -n "$NVMET" ] && export AIONVME_GUEST_NVMET=$NVMET
say "running the command"
chroot /root /bin/sh -c 'cd "$0" && exec "$@"' "$CWD" "$@" </dev/null >"$OUT" 2>"$ERR"
rc=$?
say "the command exited with $rc"
sync
echo "rc $rc" > "$STATUS"
poweroff -f
"""


def _conf(cmd: list[str], env: dict[str, str], modules: list[str], vfio: list[str],
          kernel: list[str], nvmet: bool, cwd: str) -> bytes:
    lines = [f"MODULES={shlex.quote(' '.join(modules))}",
             f"VFIO={shlex.quote(' '.join(vfio))}",
             f"KERNEL={shlex.quote(' '.join(kernel))}",
             f"NVMET={shlex.quote(NVMET_URI if nvmet else '')}",
             f"NQN={shlex.quote(NQN)}",
             f"CWD={shlex.quote(cwd)}"]
    lines += [f"export {k}={shlex.quote(v)}" for k, v in env.items()]
    lines.append("set -- " + " ".join(shlex.quote(a) for a in cmd))
    return ("\n".join(lines) + "\n").encode()


# --------------------------------------------------------------------------- running

def _accel() -> str:
    want = os.environ.get("AIONVME_GUEST_ACCEL")
    if want in ("kvm", "tcg"):
        return want
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        flags = ""
    if re.search(r"^flags\s*:.*\b(vmx|svm)\b", flags, re.M) and os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "kvm"
    return "tcg"


def _memfd(name: str, size: int = 0, data: bytes = b"") -> int:
    fd = os.memfd_create(name, 0)  # inherited by QEMU (pass_fds)
    if data:
        os.write(fd, data)
    if size:
        os.ftruncate(fd, size)
    return fd


def _die_with_parent() -> None:
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def run(cmd: list[str], *, vfio: int = 0, kernel: int = 0, nvmet: bool = False,
        modules: list[str] | tuple[str, ...] = (), mem: int = 1024, timeout: float = 600.0,
        env: dict[str, str] | None = None, cwd: str | None = None, log: str | None = None,
        stream: bool = False) -> Result:
    """Boot a guest, run cmd in it, return its Result (see the module's docstring).

    With ``stream=True`` COMMAND's stdout/stderr are also copied to this
    process's stdout/stderr as they arrive.  Raises GuestError when the kernel
    cannot be had (call available() first); everything after that is a Result.
    """
    if not cmd:
        raise ValueError("cmd: a command to run in the guest is required")
    if vfio < 0 or kernel < 0 or vfio + kernel > 20:
        raise ValueError(f"vfio={vfio}, kernel={kernel}: 0..20 controllers in all")
    if mem < 256:
        raise ValueError(f"mem={mem}: at least 256 MiB")
    t0 = time.monotonic()
    k = prepare()
    slots = [f"0000:00:{FIRST_SLOT + i:02x}.0" for i in range(vfio + kernel)]
    names = list(BASE_MODULES)
    if vfio:
        names += VFIO_MODULES
    if kernel:
        names += KERNEL_MODULES
    if nvmet:
        names += NVMET_MODULES
    names += [m for m in modules if m]
    paths = k.resolve(names)
    cwd = os.path.abspath(cwd or os.getcwd())
    genv = {"TMPDIR": "/dev/shm", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
            "TERM": "dumb"}
    for key in ("PATH", "VIRTUAL_ENV", "HOME", "LANG", "LC_ALL", "PYTHONPATH"):
        if key in os.environ:
            genv[key] = os.environ[key]
    genv.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin")
    if "/sbin" not in genv["PATH"].split(":"):
        genv["PATH"] += ":/usr/local/sbin:/usr/sbin:/sbin"  # mkfs, ip, ... for the command
    genv.update(env or {})
    entries: list[tuple[str, int, bytes]] = [
        ("bin", 0o40755, b""), ("dev", 0o40755, b""), ("proc", 0o40755, b""),
        ("sys", 0o40755, b""), ("root", 0o40755, b""), ("modules", 0o40755, b""),
        ("bin/busybox", 0o100755, open(os.path.join(k.root, "busybox"), "rb").read()),
        ("init", 0o100755, INIT.encode())]
    modnames = []
    for p in paths:
        base = os.path.basename(p)
        modnames.append(base)
        entries.append((f"modules/{base}", 0o100644, open(p, "rb").read()))
    entries.append(("run.conf", 0o100644, _conf(cmd, genv, modnames, slots[:vfio],
                                                 slots[vfio:], nvmet, cwd)))
    fds: list[int] = []
    try:
        initrd = _memfd("aionvme-guest-initrd", data=_cpio(entries))
        fds.append(initrd)
        rout, wout = os.pipe()
        rerr, werr = os.pipe()
        rsta, wsta = os.pipe()
        rcon, wcon = os.pipe()
        fds += [wout, werr, wsta, wcon]

        def path(fd: int) -> str:
            return f"/proc/self/fd/{fd}"  # QEMU inherits the numbers (pass_fds)
        accel = _accel()
        qemu = [QEMU, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-machine", f"q35,kernel-irqchip=split,accel={accel}",
                "-cpu", "host" if accel == "kvm" else "max", "-smp", "1", "-m", f"{mem}M",
                "-device", "intel-iommu,intremap=on,caching-mode=on",
                "-kernel", k.vmlinux, "-initrd", path(initrd),
                "-append", "console=ttyS0,115200 intel_iommu=on panic=-1 mitigations=off rdinit=/init "
                           f"loglevel={os.environ.get('AIONVME_GUEST_LOGLEVEL', '4')}",
                "-chardev", f"file,id=con,path={path(wcon)}", "-serial", "chardev:con",
                "-fsdev", "local,id=hostroot,path=/,readonly=on,security_model=none,multidevs=remap",
                "-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot,addr=02.0",
                "-device", "virtio-serial-pci,addr=03.0"]
        for i, (name, fd) in enumerate((("out", wout), ("err", werr), ("status", wsta)), 1):
            qemu += ["-chardev", f"file,id={name},path={path(fd)}",
                     "-device", f"virtserialport,chardev={name},nr={i},name=aionvme.{name}"]
        for i, addr in enumerate(slots):
            img = _memfd(f"aionvme-guest-nvme{i}", size=IMAGE_SIZE)
            fds.append(img)
            qemu += ["-drive", f"if=none,id=d{i},format=raw,file={path(img)}",
                     "-device", f"nvme,id=nvme{i},serial=AIONVMEGUEST{i},addr={addr[8:10]}.0,{NVME_OPTS}",
                     "-device", f"nvme-ns,drive=d{i},bus=nvme{i},{NS_OPTS}"]
        proc = subprocess.Popen(qemu, stdin=subprocess.DEVNULL, stdout=wcon, stderr=wcon,
                                pass_fds=fds, preexec_fn=_die_with_parent)
        for fd in fds:
            os.close(fd)
        fds = []
        return _collect(proc, {rout: "out", rerr: "err", rsta: "status", rcon: "con"},
                        t0, timeout, log, stream)
    finally:
        for fd in fds:
            os.close(fd)


def _collect(proc: subprocess.Popen, pipes: dict[int, str], t0: float, timeout: float,
             log: str | None, stream: bool) -> Result:
    sel = selectors.DefaultSelector()
    for fd, name in pipes.items():
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ, name)
    bufs: dict[str, bytearray] = {n: bytearray() for n in pipes.values()}
    output = bytearray()
    reason = ""
    logf = open(log, "wb") if log else None
    try:
        while sel.get_map():
            left = t0 + timeout - time.monotonic()
            if left <= 0:
                reason = f"timeout: the guest run took longer than {timeout:g} s"
                break
            for key, _ in sel.select(min(left, 1.0)):
                try:
                    data = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not data:
                    sel.unregister(key.fd)
                    os.close(key.fd)
                    continue
                name = key.data
                bufs[name] += data
                if name in ("out", "err"):
                    output += data
                    if stream:
                        s = sys.stdout if name == "out" else sys.stderr
                        s.buffer.write(data)
                        s.flush()
                elif name == "con" and logf:
                    logf.write(data)
                    logf.flush()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for key in list(sel.get_map().values()):
            os.close(key.fd)
        sel.close()
        if logf:
            logf.close()
    con = bufs["con"].decode(errors="replace")
    status = bufs["status"].decode(errors="replace").split()
    out = output.decode(errors="replace")
    secs = time.monotonic() - t0
    if reason:
        return Result(RC_TIMEOUT, out, con, reason, secs)
    if len(status) >= 2 and status[0] == "rc" and status[1].isdigit():
        return Result(int(status[1]), out, con, "", secs)
    if status[:1] == ["harness"]:
        reason = "the guest's init failed: " + " ".join(status[1:])
    else:
        tail = "\n".join(con.strip().splitlines()[-15:])
        reason = (f"the guest died before the command finished (QEMU exit status "
                  f"{proc.returncode}); console tail:\n{tail}")
    return Result(RC_HARNESS, out, con, reason, secs)


# --------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="guest.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    sub.add_parser("available", help="exit 0 when a guest can run here, else say why")
    sub.add_parser("prepare", help="fetch and unpack the kernel and busybox into the cache")
    r = sub.add_parser("run", help="boot a guest and run COMMAND in it")
    r.add_argument("--vfio", type=int, default=0, metavar="N")
    r.add_argument("--kernel", type=int, default=0, metavar="N")
    r.add_argument("--nvmet", action="store_true")
    r.add_argument("--modules", default="", metavar="m1,m2")
    r.add_argument("--mem", type=int, default=1024, metavar="MiB")
    r.add_argument("--timeout", type=float, default=600.0, metavar="S")
    r.add_argument("--log", metavar="FILE")
    r.add_argument("--env", action="append", default=[], metavar="K=V")
    r.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args(argv)
    if a.what == "available":
        why = available()
        print(why or "ok")
        return 1 if why else 0
    if a.what == "prepare":
        k = prepare()
        print(f"{k.root}: {k.version}")
        return 0
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("run: COMMAND is required (after --)")
    env = {}
    for kv in a.env:
        if "=" not in kv:
            ap.error(f"--env {kv!r}: K=V expected")
        key, val = kv.split("=", 1)
        env[key] = val
    why = available()
    if why:
        print(f"guest.py: cannot run a guest: {why}", file=sys.stderr)
        return RC_HARNESS
    try:
        res = run(cmd, vfio=a.vfio, kernel=a.kernel, nvmet=a.nvmet,
                  modules=[m for m in a.modules.split(",") if m], mem=a.mem, timeout=a.timeout,
                  env=env, log=a.log, stream=True)
    except ValueError as e:
        ap.error(str(e))
    except GuestError as e:
        print(f"guest.py: cannot run a guest: {e}", file=sys.stderr)
        return RC_HARNESS
    if res.reason:
        print(f"guest.py: {res.reason}", file=sys.stderr)
    return res.rc


if __name__ == "__main__":
    sys.exit(main())
