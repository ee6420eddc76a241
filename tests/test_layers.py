"""The layering of DESIGN.md holds: each package imports only the layers above it."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "ecuworks"

# DESIGN.md's table, top to bottom; a package may import the ones before it.
ORDER = [
    "errors",
    "wire",
    "profiles",  # vehicle definitions, read by the simulator and by P-Data's demo
    "transport",
    "uds",
    "pdata",
    "vehicle",
    "plan",
    "coding",
    "enabling",
    "execute",
    "platform",
    "web",
    "backend",
]
# The exceptions DESIGN.md names: the simulator is the other side of the wire, the CLI
# sits on top of everything.
ALLOWED_EXTRA = {"sim": {"errors", "wire", "profiles"}, "cli": set(ORDER) | {"sim"}}
# Modules at the package root that every layer may use: the error tree, and serving an
# ASGI app in-process (the simulator's control API and 'pdata serve'). They import
# nothing of ecuworks but the errors.
INFRASTRUCTURE = {"errors", "embedded_http"}


def allowed_imports(layer: str) -> set[str]:
    if layer in ALLOWED_EXTRA:
        return ALLOWED_EXTRA[layer] | {layer} | INFRASTRUCTURE
    return set(ORDER[: ORDER.index(layer) + 1]) | INFRASTRUCTURE


def test_infrastructure_modules_import_only_the_errors() -> None:
    for name in INFRASTRUCTURE - {"errors"}:
        assert ecuworks_imports(SRC / f"{name}.py") <= {"errors"}, name


def ecuworks_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ecuworks" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_module_respects_the_layer_table() -> None:
    violations = []
    modules = [p for p in SRC.rglob("*.py") if p.parent != SRC]
    assert modules, "no layer packages found"
    for path in modules:
        layer = path.relative_to(SRC).parts[0]
        assert layer in ORDER or layer in ALLOWED_EXTRA, f"{layer} is not in DESIGN.md's table"
        for imported in ecuworks_imports(path) - allowed_imports(layer):
            violations.append(f"{path.relative_to(SRC)} imports ecuworks.{imported}")
    assert not violations, "layering broken:\n" + "\n".join(violations)


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from ecuworks.uds.client import UdsClient\nimport ecuworks.errors\n")
    assert ecuworks_imports(module) == {"uds", "errors"}
    assert "uds" not in allowed_imports("transport")
