"""Images sent with a message: image blocks on both wire formats, the describe call, what recall and the queue keep,
and every image that is not looked at told to the model and the user (real SDKs, the LLM stand-in, real Redis)."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import open_app
from bot.core.events import Attachment, InboundMessage, Scope
from bot.core.images import MAX_IMAGE_BYTES, estimate_tokens, image_input, refusal, sniff
from bot.llm.anthropic import AnthropicChatModel
from bot.llm.openai import OpenAIChatModel
from bot.llm.retry import RetryPolicy
from bot.llm.types import ChatMessage, ImageInput, ModelError, SystemPrompt
from bot.llm.vision import sees_images
from bot.settings import Settings
from memory.redis.keys import RedisKeys
from tests.scenario import RecordingSink, settings_for, slack_said
from tests.standins.brain import describe_image, fingerprint
from tests.standins.images import make_png
from tests.standins.llm_server import ObservedRequest, ScriptedLLMServer, ScriptedReply

PHOTO = make_png(40, 30, (10, 120, 200))
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 64 + b"\xff\xd9"
FAST = RetryPolicy(attempts=1, base_delay=0.01)


@pytest.fixture(params=["anthropic", "openai"])
def wire(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def with_images(text: str, *attachments: Attachment, dm: bool = True) -> InboundMessage:
    return dataclasses.replace(slack_said(text, dm=dm), attachments=attachments)


def photo(name: str = "photo.png", data: bytes = PHOTO, **extra: object) -> Attachment:
    return Attachment(name, "image/png", len(data), None, data, **extra)  # type: ignore[arg-type]


def turn_requests(llm: ScriptedLLMServer) -> list[ObservedRequest]:
    return [r for r in llm.requests if "You describe images" not in r.system]


def describe_requests(llm: ScriptedLLMServer) -> list[ObservedRequest]:
    return [r for r in llm.requests if "You describe images" in r.system]


@pytest.fixture
async def vision_app(llm: ScriptedLLMServer, wire: str, key_prefix: str, data_dir: Path) -> AsyncIterator[object]:
    async with open_app(settings_for(llm, wire, key_prefix, data_dir, MEMBOT_VISION="on")) as app:
        yield app


# -- the wire formats ---------------------------------------------------------------------------------------------


async def test_an_image_is_sent_as_the_documented_block_on_both_wires(llm: ScriptedLLMServer, wire: str) -> None:
    image = image_input("photo.png", PHOTO)
    assert isinstance(image, ImageInput)
    message = ChatMessage("user", "what is this?", images=(image,))
    model = (
        AnthropicChatModel("claude-test", "k", llm.anthropic_base_url, retry=FAST)
        if wire == "anthropic"
        else OpenAIChatModel("gpt-test", "k", llm.openai_base_url, retry=FAST)
    )
    async with model:
        await model.complete(SystemPrompt("s"), [message], [], max_output_tokens=64)
        bad = ChatMessage("user", "and this?", images=(ImageInput("image/heic", b"ftypheic", "x.heic", 10),))
        with pytest.raises(ModelError, match="400"):  # the API refuses what it does not take
            await model.complete(SystemPrompt("s"), [bad], [], max_output_tokens=64)
    request = llm.requests[0]
    encoded = base64.b64encode(PHOTO).decode()
    user = request.raw["messages"][-1]
    if wire == "anthropic":
        assert user["content"][0] == {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": encoded},
        }
        assert user["content"][1]["type"] == "text" and user["content"][1]["text"] == "what is this?"
    else:
        assert user["content"] == [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{encoded}"}},
        ]
    assert request.images == [{"media_type": "image/png", "data": encoded}]
    assert "media_type" in llm.image_refusals[0] or "unsupported image" in llm.image_refusals[0]


def test_the_message_stored_in_the_queue_carries_no_image() -> None:
    image = image_input("photo.png", PHOTO)
    assert isinstance(image, ImageInput)
    message = ChatMessage("user", "look", images=(image,), message_id="m1")
    assert "images" not in message.to_json() and base64.b64encode(PHOTO).decode()[:20] not in message.to_json()
    assert ChatMessage.from_json(message.to_json()) == dataclasses.replace(message, images=())


def test_formats_limits_and_the_vision_table() -> None:
    assert sniff(PHOTO) == "image/png" and sniff(JPEG) == "image/jpeg" and sniff(b"GIF89a..") == "image/gif"
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp" and sniff(b"\x00\x00\x00\x18ftypheic") is None
    assert estimate_tokens((40, 30)) == 255  # OpenAI's one tile costs more than Anthropic's 2 tokens
    assert estimate_tokens((4000, 3000)) >= 1500 and estimate_tokens(None) == 1600
    assert refusal("IMG_1.HEIC", None, 10) == "it is a HEIC image, and I can look at PNG, JPEG, GIF and WebP images"
    assert refusal("logo.svg", "image/svg+xml", 10) is not None and refusal("scan.tiff", None, 10) is not None
    assert refusal("big.png", "image/png", MAX_IMAGE_BYTES + 1) == ("it is 3.75 MB, and I look at images up to 3.75 MB")
    assert image_input("fake.png", b"not an image") == "it is not a PNG, JPEG, GIF or WebP image"
    assert sees_images("auto", "claude-sonnet-4-5") and sees_images("auto", "gpt-4o-mini")
    assert sees_images("auto", "llava:13b") and sees_images("auto", "qwen2.5vl:7b")
    assert not sees_images("auto", "gpt-3.5-turbo") and not sees_images("auto", "llama3.1:8b")
    assert not sees_images("auto", "o1-mini") and sees_images("on", "llama3.1:8b")
    assert not sees_images("off", "gpt-4o")
    env = {"MEMBOT_LLM_PROVIDER": "openai", "OPENAI_API_KEY": "k", "MEMBOT_MODEL": "gpt-4o"}
    assert Settings(_env_file=None, **env).sees_images()  # type: ignore[call-arg]
    assert not Settings(_env_file=None, **env, MEMBOT_VISION="off").sees_images()  # type: ignore[call-arg]


# -- a turn with an image -----------------------------------------------------------------------------------------


async def test_the_image_reaches_the_turn_and_its_description_stays_in_recall(
    vision_app: object, llm: ScriptedLLMServer, key_prefix: str
) -> None:
    app = vision_app
    assert app.runtime is not None  # type: ignore[attr-defined]
    sink = RecordingSink()
    message = with_images("look at my garden", photo())
    await app.runtime.handle(message, sink)  # type: ignore[attr-defined]
    description = describe_image("photo.png", PHOTO)
    encoded = base64.b64encode(PHOTO).decode()

    [describe] = describe_requests(llm)
    assert describe.images == [{"media_type": "image/png", "data": encoded}] and describe.tools == []
    assert describe.max_tokens == 300 and "look at my garden" in describe.messages[-1]["content"]
    turn = turn_requests(llm)
    assert turn and all(r.images == [{"media_type": "image/png", "data": encoded}] for r in turn)
    assert sink.notices == [] and len(sink.messages) == 1
    assert "look at my garden" in sink.messages[0] and "[image attached: photo.png]" in sink.messages[0]
    assert description in str(turn[0].messages), "the turn sees the description too"

    agent = message.agent_key
    raw_queue = await app.stores.redis.lrange(RedisKeys(key_prefix).queue(agent), 0, -1)  # type: ignore[attr-defined]
    assert raw_queue and not any(encoded[:40].encode() in item for item in raw_queue), "no image bytes in Redis"
    assert any(description.encode() in item for item in raw_queue)

    await app.runtime.handle(slack_said("search: " + fingerprint(PHOTO), dm=True), sink)  # type: ignore[attr-defined]
    later = [r for r in turn_requests(llm) if r not in turn]
    assert later and all(r.images == [] for r in later), "a later turn has no image bytes"
    assert description in str(later[0].messages), "... but it has the description"
    assert f"(attached: photo.png: {description})" in sink.messages[-1], "conversation_search finds it"

    admin = app.services.admin  # type: ignore[attr-defined]
    hits = await admin.search(agent, "fingerprint " + fingerprint(PHOTO), Scope.PRIVATE)
    [hit] = [h for h in hits if h.text == "look at my garden"]
    assert hit.attachment_text == f"photo.png: {description}"
    exported = await admin.export(agent)
    [stored] = [e for e in exported["recall"] if e["text"] == "look at my garden"]
    assert stored["attachment_text"] == f"photo.png: {description}" and stored["scope"] == "private"
    candidates = await admin.forget_candidates(agent, fingerprint(PHOTO))
    assert "look at my garden" in [c.text for c in candidates if c.store == "recall"], "forget finds it"
    assert await app.stores.recall.count(agent) == 4  # type: ignore[attr-defined]  # 2 messages, 2 answers: once


async def test_an_image_alone_is_answered_and_a_failed_description_still_shows_the_image(
    llm: ScriptedLLMServer, key_prefix: str, data_dir: Path
) -> None:
    settings = settings_for(llm, "openai", key_prefix, data_dir, MEMBOT_VISION="on", MEMBOT_LLM_RETRY_ATTEMPTS=1)
    async with open_app(settings) as app:
        assert app.runtime is not None
        llm.push(ScriptedReply(status=400, error_message="the describe call fails"))
        sink = RecordingSink()
        message = with_images("", photo("cat.png"))
        await app.runtime.handle(message, sink)
        [turn] = turn_requests(llm)
        assert len(turn.images) == 1
        assert "No description of the image cat.png was made" in str(turn.messages)
        assert sink.notices == [] and "[image attached: cat.png]" in sink.messages[0]
        [stored] = [e for e in (await app.services.admin.export(message.agent_key))["recall"] if e["role"] == "user"]
        assert stored["text"] == "[cat.png]" and stored["attachment_text"] == "cat.png (image; no description was made)"


async def test_a_model_that_cannot_see_is_told_and_the_user_gets_a_notice_and_the_answer(
    llm: ScriptedLLMServer, wire: str, key_prefix: str, data_dir: Path
) -> None:
    llm.accepts_images = False  # a text-only model: any image would be refused
    async with open_app(settings_for(llm, wire, key_prefix, data_dir)) as app:  # "scripted-model": no vision
        assert app.runtime is not None and not app.runtime.sees_images
        sink = RecordingSink()
        message = with_images("what do you think?", Attachment("photo.png", "image/png", len(PHOTO)))
        await app.runtime.handle(message, sink)
    assert sink.notices == ["I can't look at images with the current model, so I didn't see photo.png."]
    assert sink.messages and "what do you think?" in sink.messages[0]
    assert not describe_requests(llm) and llm.image_refusals == []
    told = str(turn_requests(llm)[0].messages)
    assert (
        "[image attached: photo.png; not shown to you: the current model cannot see images; the user was told]" in told
    )


async def test_a_model_said_to_see_that_refuses_the_image_answers_without_it_and_the_user_is_told(
    llm: ScriptedLLMServer, wire: str, key_prefix: str, data_dir: Path
) -> None:
    llm.accepts_images = False  # MEMBOT_VISION=on for a text-only model: the API refuses every image with a 400
    async with open_app(settings_for(llm, wire, key_prefix, data_dir, MEMBOT_VISION="on")) as app:
        assert app.runtime is not None and app.runtime.sees_images
        sink = RecordingSink()
        message = with_images("what do you think?", photo())
        await app.runtime.handle(message, sink)
        queue = [m.content for m in await app.stores.working.messages(message.agent_key)]
    assert sink.notices == ["The language model refused to look at photo.png, so I answered without it."]
    assert sink.messages and "what do you think?" in sink.messages[0]
    assert len(llm.image_refusals) == 2, "the describe call and the turn's first call, each refused once"
    with_image, *without = turn_requests(llm)
    assert with_image.images and without and not any(r.images for r in without)
    assert any("could not be shown to you after all" in text for text in queue)


async def test_images_that_cannot_be_looked_at_are_named_to_the_user_and_the_model(
    vision_app: object, llm: ScriptedLLMServer
) -> None:
    app = vision_app
    sink = RecordingSink()
    attachments = (
        Attachment("IMG_0001.HEIC", "image/heic", 2_000_000),
        Attachment("huge.png", "image/png", 9_000_000),
        photo("broken.png", problem="I couldn't download it from the chat service"),
        photo("fake.png", b"<svg/>"),
        photo("a.png"),
        photo("b.png", make_png(2, 2)),
        photo("c.png", make_png(3, 3)),
        photo("d.png", make_png(5, 5)),
        photo("e.png", make_png(6, 6)),
    )
    await app.runtime.handle(with_images("my holiday", *attachments), sink)  # type: ignore[attr-defined]
    [notice] = sink.notices
    assert notice.splitlines() == [
        "I couldn't look at IMG_0001.HEIC: it is a HEIC image, and I can look at PNG, JPEG, GIF and WebP images.",
        "I couldn't look at huge.png: it is 8.58 MB, and I look at images up to 3.75 MB.",
        "I couldn't look at broken.png: I couldn't download it from the chat service.",
        "I couldn't look at fake.png: it is not a PNG, JPEG, GIF or WebP image.",
        *(
            f"I couldn't look at {name}: I look at 4 images per message at most."
            for name in ("c.png", "d.png", "e.png")
        ),
    ]  # the first four that may be looked at are fetched (broken.png and fake.png too): those count
    assert len(describe_requests(llm)) == 2
    turn = turn_requests(llm)
    assert len(turn[0].images) == 2
    assert "[image attached: huge.png; not shown to you: it is 8.58 MB" in str(turn[0].messages)
    assert sink.messages and "my holiday" in sink.messages[0]
