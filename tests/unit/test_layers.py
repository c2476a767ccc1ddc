"""The packages' layers, read from the code's imports (every `import`, at any depth).

cli/            the command line: may import anything below
serve/  train/  never each other: training runs as a child process of the gateway;
                serve/ mounts ui/'s app on the gateway
ui/             an HTTP client of the gateway: neither feedback/ nor train/ (nor serve/)
feedback/       the store: none of the above
common/         shared by serve/ and train/: none of the above, not even feedback/
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "serve", "train", "ui", "feedback", "common", "bench")
FORBIDDEN = {
    "serve": {"train", "cli", "bench"},
    "train": {"serve", "cli", "ui", "bench"},
    "ui": {"feedback", "train", "serve", "cli", "bench"},
    "feedback": {"serve", "train", "ui", "cli", "common", "bench"},
    "common": {"serve", "train", "ui", "feedback", "cli", "bench"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """(top-level package, line) of every import in a module that names one of ours."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found |= {(n.split(".")[0], node.lineno) for n in names if n.split(".")[0] in PACKAGES}
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_a_layer_it_must_not(package):
    crossings = [
        f"{path.relative_to(ROOT)}:{line} imports {top}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for top, line in sorted(imported_packages(path))
        if top in FORBIDDEN[package]
    ]
    assert not crossings, "\n".join(crossings)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from train.cli import run_train\n    import serve.gateway\n")
    assert imported_packages(module) == {("train", 2), ("serve", 3)}


@pytest.mark.parametrize("script", sorted(p.stem for p in (ROOT / "bench").glob("*.py")))
def test_every_bench_script_imports(script):
    """The bench scripts run by hand, not in the suite: a name moved between modules would
    otherwise break one unnoticed until its next (hour-long) run."""
    importlib.import_module(f"bench.{script}")
