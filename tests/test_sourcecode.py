"""Lint as a test: ``ruff check`` with the rules of ``[tool.ruff]`` in pyproject.toml."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["aionvme", "tests", "benchmarks", "examples"]


def _ruff() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    exe = shutil.which("ruff")
    if exe is not None:
        return [exe]
    pytest.skip("ruff is not installed ('make test' installs it: pip install ruff)")


def test_ruff_check() -> None:
    paths = [p for p in CHECKED if (ROOT / p).is_dir()]
    proc = subprocess.run([*_ruff(), "check", "--no-cache", "--output-format", "concise", *paths],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"ruff check found problems:\n{proc.stdout}{proc.stderr}"


def test_mypy() -> None:
    """Type-check the package against its annotations and the native core's stub
    (aionvme/_core.pyi); the options are in pyproject.toml [tool.mypy]."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed ('make test' installs it: pip install mypy)")
    proc = subprocess.run([sys.executable, "-m", "mypy", "aionvme"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"mypy found problems:\n{proc.stdout}{proc.stderr}"


# The layers of aionvme/, lowest first (docs/design.md draws the same table).  A
# module may import modules of its own layer and of the layers below it, never
# above; ``aionvme/__init__.py`` (the package root) re-exports the API.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("aionvme._core", "aionvme.spec", "aionvme.exceptions", "aionvme.capabilities",
                    "aionvme.checks", "aionvme.settings")),
    ("simulator", ("aionvme.simulator",)),
    ("backends", ("aionvme.backends",)),
    ("transport", ("aionvme.transport",)),
    ("api", ("aionvme.controller", "aionvme.admin", "aionvme.bringup", "aionvme.resets",
             "aionvme.pcie", "aionvme.subsystem", "aionvme.qpair", "aionvme.namespace",
             "aionvme.verify", "aionvme.cmdlog", "aionvme.workers", "aionvme.stall")),
    ("tools", ("aionvme.pytest_plugin", "aionvme.cli", "aionvme.perf", "aionvme.target",
               "aionvme")),
]
# The simulated SSD is a program of its own: outside its folder only its
# configuration schema (what ``sim:PATH.toml`` holds) is imported.
SIMULATOR_INTERFACE = {"aionvme.simulator.config"}


def _layer(module: str) -> int:
    best, level = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best:
                best, level = len(p), i
    return level


def _module_of(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, whether only for type checking) for each aionvme import."""
    import ast

    tree = ast.parse(path.read_text())
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("aionvme"):
            if node.module == "aionvme":
                names = [f"aionvme.{a.name}" for a in node.names]
            else:
                names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("aionvme")]
        out += [(n, id(node) in typing_only) for n in names]
    return out


def _graph() -> dict[str, list[tuple[str, bool]]]:
    return {_module_of(p): _imports(p) for p in sorted((ROOT / "aionvme").rglob("*.py"))}


def test_every_module_has_a_layer() -> None:
    missing = [m for m in _graph() if _layer(m) < 0]
    assert not missing, f"modules in no layer of LAYERS: {missing}"


def test_imports_go_down_the_layers() -> None:
    """No edge from a lower layer to a higher one, type-checking imports included."""
    bad = []
    for module, imports in _graph().items():
        if module == "aionvme":
            continue
        for target, _ in imports:
            if _layer(target) > _layer(module):
                bad.append(f"{module} ({LAYERS[_layer(module)][0]}) imports {target} "
                           f"({LAYERS[_layer(target)][0]})")
            if (target.startswith("aionvme.simulator") and not module.startswith("aionvme.simulator")
                    and target not in SIMULATOR_INTERFACE):
                bad.append(f"{module} reaches into the simulator program: {target}")
    assert not bad, "imports against the layers:\n" + "\n".join(bad)


def test_no_runtime_import_cycle() -> None:
    """Modules that import each other at run time (not just for type checking)."""
    graph = _graph()
    edges = {m: {t for t, typing_only in imps if not typing_only and t in graph and t != m}
             for m, imps in graph.items()}
    for m in edges:  # a package's import of aionvme.x.y also runs aionvme.x
        edges[m] |= {p for t in list(edges[m]) for p in _parents(t) if p in graph and p != m
                     and not m.startswith(p + ".")}
    cycles = []
    for start in edges:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    cycles.append(" -> ".join(path + [start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles)))


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts))]
