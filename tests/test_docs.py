"""The documentation site builds with ``mkdocs build --strict`` (a broken link, a
missing page or a docstring mkdocstrings cannot render fails the build), its API
reference is rendered from the docstrings, and its Python examples parse."""
from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed ('make test' installs the docs tools)")
    site = tmp_path / "site"
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
         "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}{proc.stderr}"
    api = (site / "api" / "index.html").read_text()
    # The reference is generated: methods of the classes appear with their docstrings.
    for anchor in ("aionvme.Controller.identify", "aionvme.Namespace.read", "aionvme.Qpair.delete",
                   "aionvme.Buffer.data", "aionvme.Completion.sct", "aionvme.config",
                   "aionvme.backends.sim.SimControl.inject_status"):
        assert f'id="{anchor}"' in api, f"{anchor} is missing from the API reference"
    assert "Identify (5.17)" in api


def _python_blocks(text: str) -> list[tuple[int, str]]:
    blocks = []
    for m in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
        blocks.append((text.count("\n", 0, m.start()) + 1, m.group(1)))
    return blocks


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")) + ["../README.md"])
def test_python_examples_parse(page: str) -> None:
    path = DOCS / page
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    for line, code in _python_blocks(path.read_text()):
        try:
            compile(code, f"{path.name}:{line}", "exec", flags=flags)
        except SyntaxError as e:
            pytest.fail(f"{path.name}, code block at line {line}: {e}")


# Blocks that cannot run here, by page and first line: what they need.
NOT_RUN = {("backends.md", 'async with aionvme.Controller("qemu:mdts=5,max_ioqpairs=8") as nvme0:'):
           "QEMU with options of its own (tests/test_qemu.py runs QEMU)"}


def _runnable(page: str) -> list[tuple[int, str]]:
    out = []
    for line, code in _python_blocks((DOCS / page).read_text()):
        if (Path(page).name, code.splitlines()[0]) in NOT_RUN:
            continue
        out.append((line, code))
    return out


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")
                                        if _runnable(p.name)) + ["../README.md"])
def test_python_examples_run(page: str, tmp_path: Path) -> None:
    """Each example runs against the simulator: a block with tests runs under pytest
    with the plugin from a folder of its own with no configuration, as a user's would;
    a script runs as a script.  Runs of 10 s (3 s) are shortened to 1 s."""
    tests, scripts = [], []
    for line, code in _runnable(page):
        code = code.replace("time=10", "time=1").replace("time=3", "time=1")
        header = f"# {page}, code block at line {line}\nimport asyncio\nimport pytest\nimport aionvme\n"
        if re.search(r"^async def test_", code, re.M):
            tests.append((line, header + code))
        else:
            if "asyncio.run(" not in code:
                code += "\n\nasyncio.run(main())\n"
            scripts.append((line, header + code))
    assert tests or scripts, f"{page} has no Python example"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for line, code in scripts:
        script = tmp_path / f"example_{line}.py"
        script.write_text(code)
        proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env=env)
        assert proc.returncode == 0, f"{page}:{line} failed:\n{proc.stdout}{proc.stderr}"
    if tests:
        for line, code in tests:
            (tmp_path / f"test_example_{line}.py").write_text(code)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                               "-rfEs", str(tmp_path)], cwd=tmp_path, capture_output=True,
                              text=True, timeout=300, env=env)
        assert proc.returncode == 0, f"{page} examples failed:\n{proc.stdout}{proc.stderr}"
        assert " passed" in proc.stdout and "skipped" not in proc.stdout, proc.stdout
