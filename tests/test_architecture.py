"""The dependency rule: adapters/ and memory/ use bot/'s types; bot/ imports neither (except its composition root)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# settings validates REDIS_URL with memory.redis.url; the scheduler keeps its jobs in Redis (memory.redis)
COMPOSITION_ROOTS = {"bot/app.py", "bot/cli.py", "bot/settings.py", "bot/ops/scheduler.py"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_bot_imports_neither_adapters_nor_memory() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "bot").rglob("*.py")
        if str(path.relative_to(ROOT)) not in COMPOSITION_ROOTS and _imports(path) & {"adapters", "memory"}
    ]
    assert offenders == []


def test_memory_does_not_import_adapters_and_adapters_do_not_import_memory() -> None:
    assert [p.name for p in (ROOT / "memory").rglob("*.py") if "adapters" in _imports(p)] == []
    assert [p.name for p in (ROOT / "adapters").rglob("*.py") if "memory" in _imports(p)] == []
