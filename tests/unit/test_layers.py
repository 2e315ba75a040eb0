"""Dependencies point inward: the domain imports only the standard library and itself."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import ordermesh

PACKAGE = Path(ordermesh.__file__).parent
ALLOWED_THIRD_PARTY = {"holidays"}  # small pure libraries the domain may lean on


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_domain_imports_only_stdlib_and_itself() -> None:
    offenders = []
    for path in sorted((PACKAGE / "domain").rglob("*.py")):
        for name in _imports(path):
            top = name.split(".")[0]
            if name.startswith("ordermesh.domain") or top in sys.stdlib_module_names or top == "__future__":
                continue
            if top in ALLOWED_THIRD_PARTY:
                continue
            offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []


def test_services_and_adapters_never_import_entry_points() -> None:
    offenders = []
    for layer in ("services", "adapters", "domain"):
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            for name in _imports(path):
                if name.startswith(("ordermesh.api", "ordermesh.cli", "ordermesh.web", "ordermesh.workers")):
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []
