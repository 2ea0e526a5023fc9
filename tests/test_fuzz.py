"""The fuzzers of the simulator (issue 12), each for a few seconds from its
committed seed corpus, which holds every input that once crashed or hung it:

- ext/fuzz/fuzz_sim_io.c: libFuzzer (clang, ASan + UBSan) on the native data
  path: SQE decoding, the NVM command set, fault rules, PRP and SGL walks;
- tests/fuzz/fuzz_admin.py: atheris on the admin plane (aionvme.simulator).

Longer by hand: build as fuzz_sim_io.c says, or run fuzz_admin.py, with
-max_total_time=600 and a corpus directory of your own."""
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SIM_SOURCES = [ROOT / "ext" / "src" / "sim" / f"{name}.c" for name in ("ctrl", "dma", "io", "loop")]
SECONDS = 5
# libFuzzer's exit codes: 0 nothing found; otherwise the artifact says what.
FLAGS = [f"-max_total_time={SECONDS}", "-timeout=5", "-rss_limit_mb=2048", "-seed=12",
         "-print_final_stats=1"]


def _findings(tmp_path: pathlib.Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir()
                  if p.name.split("-")[0] in ("crash", "timeout", "oom", "leak", "slow"))


def test_data_path_fuzzer(tmp_path):
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed (Debian package clang: make test-deps installs it)")
    exe = tmp_path / "fuzz_sim_io"
    build = subprocess.run(
        [clang, "-g", "-O1", "-fsanitize=fuzzer,address,undefined",
         "-fno-sanitize-recover=undefined", "-Wall", "-Werror", "-I", str(ROOT / "ext" / "include"),
         str(ROOT / "ext" / "fuzz" / "fuzz_sim_io.c"), *map(str, SIM_SOURCES), "-o", str(exe)],
        capture_output=True, text=True)
    if build.returncode and "libclang_rt.fuzzer" in build.stderr:
        pytest.skip(f"clang has no libFuzzer runtime here: {build.stderr.strip()[-200:]}")
    assert build.returncode == 0, build.stderr
    work = tmp_path / "corpus"
    work.mkdir()
    run = subprocess.run([str(exe), *FLAGS, f"-artifact_prefix={tmp_path}/", str(work),
                          str(ROOT / "ext" / "fuzz" / "corpus" / "sim_io")],
                         capture_output=True, text=True, timeout=SECONDS + 120)
    assert run.returncode == 0 and not _findings(tmp_path), \
        f"{_findings(tmp_path)}\n{run.stderr[-4000:]}"
    assert "stat::number_of_executed_units" in run.stderr


def test_admin_plane_fuzzer(tmp_path):
    pytest.importorskip("atheris", reason="atheris is not installed (make test-deps installs it)")
    work = tmp_path / "corpus"
    work.mkdir()
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "fuzz" / "fuzz_admin.py"), *FLAGS,
                          f"-artifact_prefix={tmp_path}/", str(work),
                          str(ROOT / "tests" / "fuzz" / "corpus" / "admin")],
                         capture_output=True, text=True, timeout=SECONDS + 120, cwd=tmp_path)
    assert run.returncode == 0 and not _findings(tmp_path), \
        f"{_findings(tmp_path)}\n{run.stderr[-4000:]}"
    assert "Done" in run.stderr
