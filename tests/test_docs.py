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
