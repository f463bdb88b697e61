"""All configuration in one pydantic-settings class, read from the environment and ``.env``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.llm.vision import VisionMode, sees_images
from bot.ops.data_dir import default_data_dir
from bot.runtime.channels import Allowlist, parse_ids
from bot.runtime.proactive import parse_quiet_hours, parse_timezone
from memory.redis.retry import RedisResilience
from memory.redis.url import parse_redis_url

DEFAULT_MODELS = {"anthropic": "claude-sonnet-5-5", "openai": "gpt-5.5"}


class ConfigError(Exception):
    """The configuration cannot work; the message names the variables to set."""


def parse_shard_ids(text: str) -> tuple[int, ...]:
    """``DISCORD_SHARD_IDS``: ``"0,1"``, ``"0-3"``, ``"0-1,4"`` → sorted distinct shard ids; ``""`` → (). Raises
    ValueError. (What a process does with its shards is the Discord adapter's: ``adapters/discord/shards.py``.)"""
    ids: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low, high = int(first), int(last) if dash else int(first)
        except ValueError:
            raise ValueError(f"invalid shard id {part!r}: use numbers and ranges, e.g. 0,1 or 0-3") from None
        if low < 0 or high < low:
            raise ValueError(f"invalid shard range {part!r}: ids start at 0 and ranges go up, e.g. 0-3")
        ids.update(range(low, high + 1))
    return tuple(sorted(ids))


class Settings(BaseSettings):
    """membot's settings. Every field is documented in ``.env.example``."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True)

    llm_provider: Literal["anthropic", "openai"] | None = Field(None, alias="MEMBOT_LLM_PROVIDER")
    model: str | None = Field(None, alias="MEMBOT_MODEL")
    context_window: int = Field(200_000, alias="MEMBOT_CONTEXT_WINDOW", ge=1000)
    max_output_tokens: int = Field(1024, alias="MEMBOT_MAX_OUTPUT_TOKENS", ge=64)
    max_steps: int = Field(10, alias="MEMBOT_MAX_STEPS", ge=1, le=50)
    max_message_chars: int = Field(8000, alias="MEMBOT_MAX_MESSAGE_CHARS", ge=100)
    core_block_limit: int = Field(2000, alias="MEMBOT_CORE_BLOCK_LIMIT", ge=100)
    core_versions_kept: int = Field(200, alias="MEMBOT_CORE_VERSIONS_KEPT", ge=1)
    audit_max_entries: int = Field(5000, alias="MEMBOT_AUDIT_MAX_ENTRIES", ge=100)
    llm_timeout: float = Field(60.0, alias="MEMBOT_LLM_TIMEOUT", gt=0)
    llm_retry_attempts: int = Field(4, alias="MEMBOT_LLM_RETRY_ATTEMPTS", ge=1, le=10)
    llm_retry_delay: float = Field(1.0, alias="MEMBOT_LLM_RETRY_DELAY", ge=0)
    turn_timeout: float = Field(90.0, alias="MEMBOT_TURN_TIMEOUT", gt=0)
    working_notice_after: float = Field(3.0, alias="MEMBOT_WORKING_NOTICE_AFTER", ge=0)
    vision: VisionMode = Field("auto", alias="MEMBOT_VISION")
    stream: bool = Field(True, alias="MEMBOT_STREAM")  # on|off: show long replies as they are written

    anthropic_api_key: SecretStr | None = Field(None, alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(None, alias="ANTHROPIC_BASE_URL")
    openai_api_key: SecretStr | None = Field(None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(None, alias="OPENAI_BASE_URL")

    redis_url: str = Field("redis://127.0.0.1:6379/0", alias="REDIS_URL")
    redis_prefix: str = Field("membot", alias="MEMBOT_REDIS_PREFIX")
    redis_retry_seconds: float = Field(10.0, alias="MEMBOT_REDIS_RETRY_SECONDS", ge=0)
    redis_timeout: float = Field(15.0, alias="MEMBOT_REDIS_TIMEOUT", ge=1)  # > the outbox's 200 ms XREADGROUP BLOCK
    redis_connect_timeout: float = Field(3.0, alias="MEMBOT_REDIS_CONNECT_TIMEOUT", gt=0)
    qdrant_url: str | None = Field(None, alias="QDRANT_URL")
    qdrant_api_key: SecretStr | None = Field(None, alias="QDRANT_API_KEY")
    data_dir: Path = Field(default_factory=default_data_dir, alias="MEMBOT_DATA_DIR")
    embedder: Literal["local", "openai", "hashing"] = Field("local", alias="MEMBOT_EMBEDDER")
    openai_embedding_model: str = Field("text-embedding-3-small", alias="MEMBOT_OPENAI_EMBEDDING_MODEL")
    embedding_dimensions: int | None = Field(None, alias="MEMBOT_EMBEDDING_DIMENSIONS", ge=1, le=65536)

    discord_token: SecretStr | None = Field(None, alias="DISCORD_TOKEN")
    discord_api_base_url: str | None = Field(None, alias="DISCORD_API_BASE_URL")
    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_app_token: SecretStr | None = Field(None, alias="SLACK_APP_TOKEN")
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str | None = Field(None, alias="SLACK_API_URL")
    slack_http_host: str = Field("0.0.0.0", alias="SLACK_HTTP_HOST")
    slack_http_port: int = Field(3000, alias="SLACK_HTTP_PORT", ge=0, le=65535)
    admin_ids: str = Field("", alias="MEMBOT_ADMIN_IDS")
    rate_limit_per_minute: int = Field(20, alias="MEMBOT_RATE_LIMIT_PER_MINUTE", ge=1)
    allowed_channels: str = Field("", alias="MEMBOT_ALLOWED_CHANNELS")
    allowed_users: str = Field("", alias="MEMBOT_ALLOWED_USERS")
    log_level: str = Field("WARNING", alias="MEMBOT_LOG_LEVEL")
    log_format: Literal["console", "json"] = Field("console", alias="MEMBOT_LOG_FORMAT")

    http_host: str = Field("127.0.0.1", alias="MEMBOT_HTTP_HOST")
    http_port: int | None = Field(8080, alias="MEMBOT_HTTP_PORT", ge=0, le=65535)
    shutdown_timeout: float = Field(25.0, alias="MEMBOT_SHUTDOWN_TIMEOUT", ge=0)
    health_grace_seconds: float = Field(60.0, alias="MEMBOT_HEALTH_GRACE_SECONDS", gt=0)
    replicas: int = Field(1, alias="MEMBOT_REPLICAS", ge=1)
    discord_shard_count: int | None = Field(None, alias="DISCORD_SHARD_COUNT", ge=1)
    discord_shard_ids: str = Field("", alias="DISCORD_SHARD_IDS")

    lock_lease_seconds: float = Field(10.0, alias="MEMBOT_LOCK_LEASE_SECONDS", gt=0)
    lock_renew_seconds: float = Field(3.0, alias="MEMBOT_LOCK_RENEW_SECONDS", gt=0)
    lock_wait_seconds: float = Field(300.0, alias="MEMBOT_LOCK_WAIT_SECONDS", ge=0)
    busy_notice_seconds: float = Field(3.0, alias="MEMBOT_BUSY_NOTICE_SECONDS", ge=0)

    reflect_after_minutes: float = Field(15.0, alias="MEMBOT_REFLECT_AFTER_MINUTES", gt=0)
    consolidate_every_minutes: float = Field(360.0, alias="MEMBOT_CONSOLIDATE_EVERY_MINUTES", gt=0)
    proactive_max_per_day: int = Field(2, alias="MEMBOT_PROACTIVE_MAX_PER_DAY", ge=0)
    quiet_hours: str = Field("22-08", alias="MEMBOT_QUIET_HOURS")
    timezone: str = Field("UTC", alias="MEMBOT_TIMEZONE")
    # a reminder being sent is claimed this long; unsent by then (the process died), another process sends it
    reminder_lease_seconds: float = Field(120.0, alias="MEMBOT_REMINDER_LEASE_SECONDS", ge=1)

    @model_validator(mode="after")
    def _renew_within_lease(self) -> Settings:
        if self.lock_renew_seconds >= self.lock_lease_seconds:
            raise ValueError(
                f"MEMBOT_LOCK_RENEW_SECONDS ({self.lock_renew_seconds:g}) must be shorter than "
                f"MEMBOT_LOCK_LEASE_SECONDS ({self.lock_lease_seconds:g}): the lease is renewed before it runs out"
            )
        return self

    @field_validator("llm_provider", mode="before")
    @classmethod
    def _blank_provider_is_none(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return value or None
        return value

    @field_validator("http_port", "discord_shard_count", "embedding_dimensions", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("vision", mode="before")
    @classmethod
    def _vision_words(cls, value: object) -> object:
        if isinstance(value, str):
            word = value.strip().lower()
            return {"": "auto", "true": "on", "yes": "on", "1": "on", "false": "off", "no": "off", "0": "off"}.get(
                word, word
            )
        return value

    @field_validator("data_dir", mode="before")
    @classmethod
    def _blank_data_dir_is_default(cls, value: object) -> object:
        return default_data_dir() if isinstance(value, str) and not value.strip() else value

    @field_validator("data_dir")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().absolute()  # messages name it; the store registration records it

    def redis_resilience(self) -> RedisResilience:
        """How the Redis clients retry and time out (``MEMBOT_REDIS_*``)."""
        return RedisResilience(
            retry_seconds=self.redis_retry_seconds,
            socket_timeout=self.redis_timeout,
            connect_timeout=self.redis_connect_timeout,
        )

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: str) -> str:
        parse_redis_url(value)
        return value

    @field_validator("discord_shard_ids")
    @classmethod
    def _valid_shard_ids(cls, value: str) -> str:
        parse_shard_ids(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _valid_quiet_hours(cls, value: str) -> str:
        parse_quiet_hours(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        parse_timezone(value)
        return value

    @property
    def admin_id_set(self) -> frozenset[str]:
        return frozenset(part.strip() for part in self.admin_ids.split(",") if part.strip())

    def resolved_provider(self) -> Literal["anthropic", "openai"]:
        """The provider to use: the configured one, or the one whose credentials are present."""
        if self.llm_provider:
            return self.llm_provider
        if self.anthropic_api_key:
            return "anthropic"
        if self.openai_api_key or self.openai_base_url:
            return "openai"
        raise ConfigError(
            "No language model is configured. Set MEMBOT_LLM_PROVIDER=anthropic with ANTHROPIC_API_KEY, "
            "or MEMBOT_LLM_PROVIDER=openai with OPENAI_API_KEY (or OPENAI_BASE_URL for a local "
            "OpenAI-compatible server such as vLLM, Ollama or llama.cpp)."
        )

    def resolved_model(self) -> str:
        return self.model or DEFAULT_MODELS[self.resolved_provider()]

    def sees_images(self) -> bool:
        """Whether images sent to membot are shown to the model (MEMBOT_VISION, or known from the model name)."""
        return sees_images(self.vision, self.resolved_model())

    def allowlist(self) -> Allowlist:
        """The channels and people membot may talk with (``MEMBOT_ALLOWED_CHANNELS``/``_USERS``; empty: all)."""
        return Allowlist(parse_ids(self.allowed_channels), parse_ids(self.allowed_users))

    def check_llm(self) -> None:
        """Raise ConfigError naming the missing variables when the chosen provider cannot be reached."""
        provider = self.resolved_provider()
        if provider == "anthropic" and not self.anthropic_api_key:
            raise ConfigError(
                "MEMBOT_LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY (and optionally ANTHROPIC_BASE_URL)."
            )
        if provider == "openai" and not (self.openai_api_key or self.openai_base_url):
            raise ConfigError(
                "MEMBOT_LLM_PROVIDER=openai needs OPENAI_API_KEY, or OPENAI_BASE_URL for a compatible local server."
            )
        if self.max_output_tokens >= self.context_window // 2:
            raise ConfigError(
                f"MEMBOT_MAX_OUTPUT_TOKENS ({self.max_output_tokens}) must be less than half of "
                f"MEMBOT_CONTEXT_WINDOW ({self.context_window})."
            )


def load_settings() -> Settings:
    """Read settings; turn validation errors into one ConfigError that names the variables."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"Invalid configuration: {problems}") from None
