"""Cut documents into passages for archival memory: paragraphs kept whole where they fit, words never broken."""

from __future__ import annotations

import re

DEFAULT_CHUNK_CHARS = 1000
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n")


def _pack(pieces: list[str], size: int, joiner: str) -> list[str]:
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + len(joiner) + len(piece) > size:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}{joiner}{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks


def _words(text: str, size: int) -> list[str]:
    """Pieces of at most ``size`` characters, cut between words (inside a word only if it alone is longer)."""
    pieces: list[str] = []
    for word in text.split():
        pieces.extend(word[i : i + size] for i in range(0, len(word), size))
    return _pack(pieces, size, " ")


def _split_paragraph(paragraph: str, size: int) -> list[str]:
    sentences = [s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip()]
    pieces: list[str] = []
    for sentence in sentences:
        pieces.extend([sentence] if len(sentence) <= size else _words(sentence, size))
    return _pack(pieces, size, " ")


def chunk_text(text: str, size: int = DEFAULT_CHUNK_CHARS) -> list[str]:
    """Passages of at most ``size`` characters: whole paragraphs packed together, long ones cut at sentences."""
    if size < 20:
        raise ValueError("chunk size must be at least 20 characters")
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(normalized) if p.strip()]
    pieces: list[str] = []
    for paragraph in paragraphs:
        pieces.extend([paragraph] if len(paragraph) <= size else _split_paragraph(paragraph, size))
    return _pack(pieces, size, "\n\n")
