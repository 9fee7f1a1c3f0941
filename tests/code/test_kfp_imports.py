"""KFP modules (``pipelines``, ``components/pipeline_steps``) pull in only kfp and the standard
library when imported: compiling a pipeline needs neither the models nor their libraries, and what
a component runs it imports inside its function, in the image. import-linter (``make lint``) checks
every import, wherever it stands; this checks the module-level ones, which it cannot tell apart.
The command-line module (``pipelines/cli.py``) builds its parser from the shared flag types; it is
no start here, but it is checked too if a KFP module imports it."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
KFP_FOLDERS = ("pipelines", "components/pipeline_steps")
PROJECT_PACKAGES = {p.parent.name for p in REPO.glob("*/__init__.py")}
ALLOWED_EXTERNAL = {"kfp", "__future__", *sys.stdlib_module_names}


def _module_file(name: str) -> Path | None:
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_level_imports(nodes) -> list[ast.Import | ast.ImportFrom]:
    """Import statements that run on import: not those inside a function body."""
    found = []
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            found += _module_level_imports(ast.iter_child_nodes(node))
    return found


def _imported_names(statement: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(statement, ast.Import):
        return [alias.name for alias in statement.names]
    module = statement.module or ""
    submodules = [f"{module}.{alias.name}" for alias in statement.names]
    return [module, *(name for name in submodules if _module_file(name))]


def _with_parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def test_kfp_modules_import_only_kfp_and_the_standard_library_at_module_level():
    start = [
        ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for folder in KFP_FOLDERS
        for path in sorted((REPO / folder).glob("*.py"))
        if path.stem != "cli"
    ]
    assert len(start) > 5, start
    seen: set[str] = set()
    queue = list(start)
    offenders = []
    while queue:
        module = queue.pop()
        if module in seen:
            continue
        seen.add(module)
        tree = ast.parse(_module_file(module).read_text())
        for statement in _module_level_imports(tree.body):
            for name in _imported_names(statement):
                if name.split(".")[0] in PROJECT_PACKAGES:
                    queue += [n for n in _with_parents(name) if _module_file(n)]
                elif name.split(".")[0] not in ALLOWED_EXTERNAL:
                    offenders.append(f"{module} (line {statement.lineno}) imports {name}")
    assert not offenders, "module-level imports beyond kfp and the standard library:\n" + (
        "\n".join(offenders)
    )
