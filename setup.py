"""Build of aionvme._core: the C driver core (ext/src) bound by Cython (ext/aionvme)."""
import glob
import os

from setuptools import Extension, setup

DEBUG = os.environ.get("AIONVME_DEBUG", "0") == "1"

sources = ["ext/aionvme/_core.pyx"] + sorted(
    glob.glob("ext/src/*.c") + glob.glob("ext/src/dev/*.c") + glob.glob("ext/src/sim/*.c"))

cflags = ["-O0" if DEBUG else "-O2", "-g", "-Wall", "-Wno-unused-function", "-std=gnu11"]

ext = Extension(
    "aionvme._core",
    sources=sources,
    include_dirs=["ext/include"],
    extra_compile_args=cflags,
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


setup(ext_modules=cythonized())
