"""The layers of membot and the one direction of their imports (README "How membot is built").

bot/core (the domain) imports no other layer of bot/; bot/core and bot/runtime import no infrastructure package;
memory/ implements bot/core's ports and imports nothing else of bot/; adapters/ use the core's public types and a
short, explicit list of bot/ modules; only the composition root (bot/app.py, bot/stores.py, bot/cli/) knows memory/
and adapters/.
Every import counts, including the ones inside functions.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INFRASTRUCTURE = {"redis", "qdrant_client", "apscheduler", "discord", "slack", "slack_bolt", "slack_sdk"}
UPPER_LAYERS = ("bot.runtime", "bot.admin", "bot.ops", "bot.app", "bot.cli", "bot.services", "bot.settings")
COMPOSITION_ROOTS = ("bot/app.py", "bot/stores.py", "bot/cli/")
# Modules of bot/ that reach memory/ for a reason of their own (each is a later step of issue #14):
KNOWS_MEMORY = {
    "bot/settings.py": "checks REDIS_URL with memory.redis.url.parse_redis_url and builds the retry policy",
}
CORE_PUBLIC_TYPES = {"bot.core.events", "bot.core.memory_types", "bot.core.ports"}
ADAPTERS_MAY_USE = {
    "bot.services",  # what the composition root hands an adapter
    "bot.settings",  # its own settings and ConfigError
    "bot.admin.authz",  # who may run a memory command
    "bot.admin.memory",  # the platform-neutral memory commands and their views
    "bot.admin.documents",  # which files membot can import, and why one could not be read
    "bot.admin.import_progress",  # the status message of an import, edited as it goes
    "bot.core.images",  # which attachments are images a model can be shown, and their limits
    "bot.admin.audit",  # history items to render
    "bot.admin.repair",  # rollback and mark results to render
    "bot.runtime.proactive",  # the proactive setting a user changes
    "bot.runtime.admission",  # the shared admission step (dedupe, rate limit, the limit notice)
    "bot.runtime.channels",  # channel modes and allowlists: who is answered, who only remembered
    "bot.runtime.runtime",  # the notice of a failed turn
    "bot.ops.connections",  # reporting the platform connection for /healthz
}
MEMORY_MAY_USE = CORE_PUBLIC_TYPES | {"bot.llm.types", "bot.core.tasks"}  # tasks: stopping loops reliably


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_package(module: str) -> bool:
    return (ROOT / module.replace(".", "/") / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every module the file imports: ``from pkg import sub`` counts as ``pkg.sub``; relative imports are resolved."""
    here = _module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            submodules = {f"{base}.{a.name}" for a in node.names if _is_package(base) and _exists(f"{base}.{a.name}")}
            found.update(submodules or {base})
    return found


def _exists(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        files = sorted((ROOT / folder).rglob("*.py"))
        assert files, f"no modules under {folder}"  # a moved folder must not make these checks pass vacuously
        yield from files


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _top(module: str) -> str:
    return module.split(".")[0]


def _within(module: str, prefixes: tuple[str, ...] | set[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_core_and_runtime_import_no_infrastructure() -> None:
    offenders = {
        _relative(path): sorted(m for m in _imports(path) if _top(m) in INFRASTRUCTURE | {"memory", "adapters"})
        for path in _files("bot/core", "bot/runtime")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_core_imports_no_layer_above_it() -> None:
    offenders = {
        _relative(path): sorted(m for m in _imports(path) if _within(m, UPPER_LAYERS)) for path in _files("bot/core")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_runtime_builds_on_the_core_and_the_model_types_only() -> None:
    allowed = ("bot.core", "bot.runtime", "bot.llm.types")
    offenders = {
        _relative(path): sorted(m for m in _imports(path) if _top(m) == "bot" and not _within(m, allowed))
        for path in _files("bot/runtime")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_only_the_composition_root_knows_memory_and_adapters() -> None:
    offenders = [
        _relative(path)
        for path in _files("bot")
        if not _relative(path).startswith(COMPOSITION_ROOTS)
        and _relative(path) not in KNOWS_MEMORY
        and {_top(m) for m in _imports(path)} & {"memory", "adapters"}
    ]
    assert offenders == []
    assert all((ROOT / path).exists() for path in KNOWS_MEMORY)  # the exceptions name real files


def test_adapters_use_the_core_types_and_an_explicit_list_of_bot_modules() -> None:
    allowed = CORE_PUBLIC_TYPES | ADAPTERS_MAY_USE
    offenders = {
        _relative(path): sorted(
            m for m in _imports(path) if (_top(m) == "bot" and m not in allowed) or _top(m) == "memory"
        )
        for path in _files("adapters")
    }
    assert {path: found for path, found in offenders.items() if found} == {}
    assert all(_exists(module) for module in allowed)  # the list names real modules


def test_memory_uses_only_the_core_types_and_ports_and_no_adapter() -> None:
    offenders = {
        _relative(path): sorted(
            m for m in _imports(path) if (_top(m) == "bot" and m not in MEMORY_MAY_USE) or _top(m) == "adapters"
        )
        for path in _files("memory")
    }
    assert {path: found for path, found in offenders.items() if found} == {}


def test_the_core_and_the_runtime_name_no_platform() -> None:
    """Platform policy (agent keys, whom a key belongs to, shards, notices) lives in adapters/: no string in the
    code of bot/core or bot/runtime names a platform (docstrings may mention one)."""
    platforms = ("console", "discord", "slack")
    offenders: dict[str, list[str]] = {}
    for path in _files("bot/core", "bot/runtime"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        found = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and any(node.value == p or node.value.startswith(f"{p}:") for p in platforms)
        ]
        if found:
            offenders[_relative(path)] = found
    assert offenders == {}
