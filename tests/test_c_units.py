"""The native core's C unit tests (TAP programs in ext/tests), built with the
machine's compiler and run here."""
import pathlib
import shutil
import subprocess

import pytest

EXT = pathlib.Path(__file__).resolve().parent.parent / "ext"
PROGRAMS = sorted((EXT / "tests").glob("test_*.c"))


@pytest.mark.parametrize("debug", [0, 1], ids=["build", "debug-build"])
@pytest.mark.parametrize("source", PROGRAMS, ids=lambda p: p.stem)
def test_c_unit(source, debug, tmp_path):
    """Each program in a normal build and with AIONVME_DEBUG=1 (the checks of debug.h)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler on this machine")
    exe = tmp_path / source.stem
    build = subprocess.run([cc, "-O1", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter",
                            f"-DAIONVME_DEBUG={debug}", "-I", str(EXT / "include"), str(source),
                            "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert "not ok" not in run.stdout, run.stdout
    assert run.returncode == 0 and run.stdout.rstrip().splitlines()[-1].startswith("1.."), run.stdout
