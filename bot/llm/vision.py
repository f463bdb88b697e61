"""Whether the configured model can see images: ``MEMBOT_VISION`` (on, off) or, with ``auto``, its name.

The table below names the model families that take image input on the Anthropic and OpenAI APIs and the common
vision models of OpenAI-compatible servers (Ollama, vLLM, llama.cpp). A name it does not know is taken to be
text-only: membot then tells the model and the user that an image was not looked at, rather than send one a
text-only model would refuse. Set ``MEMBOT_VISION=on`` for a vision model the table does not know.
"""

from __future__ import annotations

import re
from typing import Literal

__all__ = ["VisionMode", "model_sees_images", "sees_images"]

VisionMode = Literal["auto", "on", "off"]

# Matched against the lowercase model name, anywhere after a provider prefix ("openai/", "library/", ...).
_VISION_MODELS = re.compile(
    r"""
    (?:^|[/:])(?:
        claude-3                                   # every Claude 3 and 3.5/3.7 model
      | claude-(?:opus|sonnet|haiku)-[4-9]          # claude-sonnet-4-5, claude-opus-4-1, claude-haiku-4-5, ...
      | claude-[a-z]+-\d+-[4-9]                    # older spellings with the version last
      | claude-[4-9]                               # claude-4-..., claude-5-...
      | gpt-4o | chatgpt-4o | gpt-4\.1 | gpt-4\.5 | gpt-4-turbo(?!-preview) | gpt-4-vision
      | gpt-[5-9]                                  # gpt-5, gpt-5-mini, gpt-5.5, ...
      | o1(?!-mini|-preview)(?:$|-) | o3(?!-mini)(?:$|-) | o4-mini
    )
    | llava | bakllava | moondream | minicpm-v | pixtral | llama3\.2-vision | llama-3\.2-\d+b-vision
    | llama4 | llama-4 | gemma3 | gemma-3 | qwen2\.5vl | qwen2-vl | qwen2\.5-vl | qwen-vl | -vl(?:$|[-:.])
    | internvl | granite3\.2-vision | granite-vision | mistral-small3\.1 | mistral-small-3\.1 | cogvlm | idefics
    | phi-3\.5-vision | phi-4-multimodal | molmo
    """,
    re.VERBOSE,
)


def model_sees_images(model: str) -> bool:
    """Whether ``model`` is known to take image input (by its name)."""
    return bool(_VISION_MODELS.search(model.strip().lower()))


def sees_images(mode: VisionMode, model: str) -> bool:
    """``on`` and ``off`` decide; ``auto`` asks the table."""
    if mode == "auto":
        return model_sees_images(model)
    return mode == "on"
