"""Build of aionvme._core: the C driver core (ext/src) bound by Cython (ext/aionvme)."""
import glob
import os

import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("AIONVME_DEBUG", "0") == "1"

sources = ["ext/aionvme/_core.pyx"] + sorted(
    glob.glob("ext/src/*.c") + glob.glob("ext/src/dev/*.c") + glob.glob("ext/src/sim/*.c")
    + glob.glob("ext/src/kernel/*.c"))

cflags = ["-O0" if DEBUG else "-O2", "-g", "-Wall", "-Wno-unused-function", "-std=gnu11"]

ext = Extension(
    "aionvme._core",
    sources=sources,
    include_dirs=["ext/include"],
    extra_compile_args=cflags + ["-pthread"],
    extra_link_args=["-pthread"],
    define_macros=[("AIONVME_DEBUG", "1" if DEBUG else "0")],
)


def cythonized():
    from Cython.Build import cythonize

    return cythonize(
        [ext],
        include_path=["ext"],
        compiler_directives={"language_level": 3, "embedsignature": True},
        build_dir="build/cython",
    )


class BuildExt(build_ext):
    """Put an in-place build in place by rename, so a running process that has the
    old module mapped keeps it intact (a copy over it would corrupt its code).
    Switching between a normal and a debug build (AIONVME_DEBUG=1) recompiles
    everything: the sources did not change, the macros did."""

    MODE_STAMP = os.path.join("build", "aionvme-build-mode")

    def run(self):
        mode = "debug" if DEBUG else "normal"
        try:
            with open(self.MODE_STAMP) as f:
                last = f.read().strip()
        except OSError:
            last = None
        if last != mode:
            self.force = True
        super().run()
        os.makedirs(os.path.dirname(self.MODE_STAMP), exist_ok=True)
        with open(self.MODE_STAMP, "w") as f:
            f.write(mode + "\n")

    def copy_extensions_to_source(self):
        build_py = self.get_finalized_command("build_py")
        for ext in self.extensions:
            fullname = self.get_ext_fullname(ext.name)
            filename = self.get_ext_filename(fullname)
            modpath = fullname.split(".")
            package_dir = build_py.get_package_dir(".".join(modpath[:-1]))
            dest = os.path.join(package_dir, os.path.basename(filename))
            src = os.path.join(self.build_lib, filename)
            tmp = dest + ".tmp"
            shutil.copyfile(src, tmp)
            shutil.copymode(src, tmp)
            os.replace(tmp, dest)


setup(ext_modules=cythonized(), cmdclass={"build_ext": BuildExt})
