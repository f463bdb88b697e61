"""An OpenAI-compatible embeddings server with a model membot does not know (Ollama's nomic-embed-text, say): the
size of its vectors is asked of the server at start; when the server cannot tell, start-up says what to set."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.app import open_memory_app
from bot.settings import Settings
from bot.stores import ServiceUnavailable
from tests.scenario import settings_for
from tests.standins.llm_server import ScriptedLLMServer


def openai_embedding_settings(llm: ScriptedLLMServer, key_prefix: str, data_dir: Path, **extra: object) -> Settings:
    return settings_for(
        llm,
        "openai",
        key_prefix,
        data_dir,
        MEMBOT_EMBEDDER="openai",
        MEMBOT_OPENAI_EMBEDDING_MODEL="nomic-embed-text",
        **extra,
    )


async def test_the_size_of_an_unknown_models_vectors_is_asked_of_the_server(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = openai_embedding_settings(llm, key_prefix, data_dir)
    async with open_memory_app(settings) as app:
        assert app.stores.embedder.dimensions == 384  # what the stand-in answers for a model it does not know
        assert [r["input"] for r in llm.embedding_requests][:1] == [["dimension probe"]]


async def test_a_server_that_cannot_tell_names_the_setting(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    llm.embeddings_down = True
    settings = openai_embedding_settings(llm, key_prefix, data_dir)
    with pytest.raises(ServiceUnavailable, match="Set MEMBOT_EMBEDDING_DIMENSIONS"):
        async with open_memory_app(settings):
            pass
    llm.embeddings_down = False
    given = openai_embedding_settings(llm, key_prefix, data_dir, MEMBOT_EMBEDDING_DIMENSIONS=384)
    llm.embeddings_down = True
    async with open_memory_app(given) as app:
        assert app.stores.embedder.dimensions == 384, "with the setting, membot starts while the server is down"
