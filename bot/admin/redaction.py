"""Deterministic redaction for forget: the sentences of a text that carry what is being forgotten.

Forget must work during a model outage, so the queue and the summaries are not rewritten by the model: every
sentence (or line) that contains a forgotten text, is contained in one, mentions the query as a phrase, or mentions
every word of the query is replaced by ``[forgotten]``. The same rule applies to every text it is given, so a fact
retold in a summary in the query's own words is removed with the message it came from. A paraphrase that shares
none of those (a summary saying "a number for the bank" of a forgotten "PIN") is not caught: that limit is stated
in the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

FORGOTTEN = "[forgotten]"
_MIN_SENTENCE = 4  # shorter fragments ("ok.") are never taken as evidence on their own
# a sentence ends at . ! ? followed by space, at a line break, or at an escaped line break inside JSON text
_BOUNDARY = re.compile(r"((?<=[.!?])\s+|\n|\\n)")
_WORD = re.compile(r"\w+")


def _normal(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


class Redactor:
    """``Redactor(query, texts)(text)`` is ``text`` with every sentence about the query or the texts redacted."""

    def __init__(self, query: str, texts: Iterable[str] = ()) -> None:
        self._phrases = [p for p in {_normal(query), *(_normal(t) for t in texts)} if len(p) >= _MIN_SENTENCE]
        self._words = [w for w in _normal(query).split() if len(w) >= 3]

    def matches(self, sentence: str) -> bool:
        normal = _normal(sentence)
        if len(normal) < 1:
            return False
        padded = f" {normal} "
        if any(f" {phrase} " in padded for phrase in self._phrases):
            return True
        if len(normal) >= _MIN_SENTENCE and any(f" {normal} " in f" {phrase} " for phrase in self._phrases):
            return True
        return bool(self._words) and all(re.search(rf"\b{re.escape(w)}", normal) for w in self._words)

    def __call__(self, text: str) -> str:
        if not text or not (self._phrases or self._words):
            return text
        parts = _BOUNDARY.split(text)
        changed = False
        for i in range(0, len(parts), 2):  # even indexes are sentences, odd ones the boundaries kept between them
            if parts[i].strip() and parts[i].strip() != FORGOTTEN and self.matches(parts[i]):
                parts[i] = FORGOTTEN
                changed = True
        return "".join(parts) if changed else text
