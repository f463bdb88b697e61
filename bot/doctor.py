"""``membot doctor``: check configuration and every connection, and say what to fix."""

from __future__ import annotations

from bot.app import ServiceUnavailable, build_model, connect_redis, open_stores
from bot.settings import ConfigError, Settings

Check = tuple[str, bool, str]


async def run_checks(settings: Settings) -> list[Check]:
    """Each check as (name, ok, detail); later checks run even when earlier ones fail."""
    results: list[Check] = []
    try:
        settings.check_llm()
        base = settings.anthropic_base_url if settings.resolved_provider() == "anthropic" else settings.openai_base_url
        where = f" via {base}" if base else ""
        results.append(("language model", True, f"{settings.resolved_provider()} {settings.resolved_model()}{where}"))
        build_model(settings)
    except ConfigError as exc:
        results.append(("language model", False, str(exc)))
    try:
        redis = await connect_redis(settings)
        info = await redis.info("server")
        await redis.aclose()
        results.append(("redis", True, f"{settings.redis_url.rpartition('@')[2]} (Redis {info.get('redis_version')})"))
    except ServiceUnavailable as exc:
        results.append(("redis", False, str(exc)))
        return results
    try:
        async with open_stores(settings) as stores:
            where = settings.qdrant_url or f"embedded at {settings.data_dir / 'qdrant'}"
            results.append(("qdrant", True, where))
            vector = await stores.embedder.embed(["doctor check"])
            results.append(("embeddings", True, f"{stores.embedder.name}, {len(vector[0])} dimensions"))
            waiting, dead = await stores.outbox.waiting(), await stores.outbox.dead_letters()
            detail = f"{waiting} messages waiting to be indexed, {dead} that could not be indexed"
            if dead:
                detail += f" (kept; inspect with: redis-cli XRANGE {stores.outbox.dead_letter_key} - +)"
            results.append(("recall outbox", dead == 0, detail))
    except Exception as exc:
        results.append(("qdrant/embeddings", False, f"{type(exc).__name__}: {exc}"))
    return results
