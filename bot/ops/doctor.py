"""``membot doctor``: check configuration and every connection, and say what to fix. It builds what it checks as
every command does, through the composition root (``bot.app``)."""

from __future__ import annotations

import asyncio
import time

from bot.app import build_model, open_memory_app, platform_checks
from bot.core.prompts import load_prompt
from bot.llm.types import ChatMessage, SystemPrompt
from bot.ops.data_dir import DataDirError, check_data_dir
from bot.settings import ConfigError, Settings
from bot.stores import ServiceUnavailable, Stores, connect_redis

Check = tuple[str, bool, str]


async def _indexer_state(stores: Stores, within: float = 3.0) -> tuple[bool, str]:
    """Give this process's indexer a moment with what is waiting: healthy once the outbox empties, or backing off."""
    health = stores.indexer.health
    deadline = time.monotonic() + within
    while await stores.outbox.waiting() and not health.backing_off and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)  # polls Redis, which other processes change
    waiting = await stores.outbox.waiting()
    if health.backing_off:
        return False, f"{health.describe()}; {waiting} messages wait in Redis, nothing is lost"
    return True, "healthy" if not waiting else f"healthy, still indexing ({waiting} waiting)"


async def _language_model(settings: Settings, within: float = 30.0) -> Check:
    """Ask the configured model for a few tokens: the key, the model name and the server are all checked."""
    try:
        settings.check_llm()
        model = build_model(settings)
    except ConfigError as exc:
        return "language model", False, str(exc)
    base = settings.anthropic_base_url if settings.resolved_provider() == "anthropic" else settings.openai_base_url
    name = f"{settings.resolved_provider()} {settings.resolved_model()}" + (f" via {base}" if base else "")
    system, ping = SystemPrompt(load_prompt("connection_check")), [ChatMessage("user", "ping")]
    started = time.monotonic()
    try:
        async with asyncio.timeout(within):
            await model.complete(system, ping, [], max_output_tokens=16)
    except TimeoutError:
        return "language model", False, f"{name} did not answer within {within:g}s"
    except Exception as exc:  # ModelError and what the SDK raised: say it in one line
        return "language model", False, f"{name} failed: {str(exc)[:300] or type(exc).__name__}"
    finally:
        await model.aclose()
    return "language model", True, f"{name} answered in {time.monotonic() - started:.1f}s"


async def run_checks(settings: Settings) -> list[Check]:
    """Each check as (name, ok, detail); later checks run even when earlier ones fail."""
    results: list[Check] = []
    results.append(await _language_model(settings))
    for name, check in platform_checks(settings):
        try:
            results.append((name, True, await check()))
        except RuntimeError as exc:
            results.append((name, False, str(exc)))
    try:
        redis = await connect_redis(settings)
        info = await redis.info("server")
        await redis.aclose()
        results.append(("redis", True, f"{settings.redis_url.rpartition('@')[2]} (Redis {info.get('redis_version')})"))
    except ServiceUnavailable as exc:
        results.append(("redis", False, str(exc)))
        return results
    if not settings.qdrant_url:
        try:
            check_data_dir(settings.data_dir)
            results.append(("data directory", True, f"{settings.data_dir.resolve()} is writable"))
        except DataDirError as exc:
            results.append(("data directory", False, str(exc)))
            return results
    try:
        async with open_memory_app(settings) as memory:
            stores = memory.stores
            where = settings.qdrant_url or f"embedded at {settings.data_dir / 'qdrant'}"
            results.append(("qdrant", True, where))
            try:
                vector = await stores.embedder.embed(["doctor check"])
                results.append(("embeddings", True, f"{stores.embedder.name}, {len(vector[0])} dimensions"))
            except Exception as exc:
                detail = f"{stores.embedder.name} does not answer ({type(exc).__name__}); membot chats on and "
                results.append(("embeddings", False, detail + "searches by words until it is back"))
            waiting, dead = await stores.outbox.waiting(), await stores.outbox.dead_letters()
            detail = f"{waiting} messages waiting to be indexed, {dead} that could not be indexed"
            if dead:
                detail += f" (kept; inspect with: redis-cli XRANGE {stores.outbox.dead_letter_key} - +)"
            results.append(("recall outbox", dead == 0, detail))
            results.append(("recall indexer", *await _indexer_state(stores)))
    except Exception as exc:
        results.append(("qdrant/embeddings", False, f"{type(exc).__name__}: {exc}"))
    return results
