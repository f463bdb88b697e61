"""Prompt texts, kept as Markdown files beside this module so they are reviewed like code."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load_prompt(name: str) -> str:
    """The text of ``bot/core/prompts/<name>.md``, without trailing whitespace."""
    return resources.files(__package__).joinpath(f"{name}.md").read_text(encoding="utf-8").rstrip()
