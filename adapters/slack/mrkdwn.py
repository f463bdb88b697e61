"""Markdown from the model → Slack mrkdwn, and splitting long answers under Slack's limits. Pure functions.

Slack's mrkdwn differs from Markdown: ``*bold*``, ``_italic_``, ``~strike~``, ``<url|text>`` links, no headings
and no list syntax. ``&``, ``<`` and ``>`` must be escaped everywhere (code included), except in the ``<...>``
sequences Slack itself understands; of those only user and channel mentions from the model are kept —
``<!channel>``/``<!here>`` would ping a whole channel, so they are escaped like any other text.
"""

from __future__ import annotations

import re

# chat.postMessage truncates text beyond 40,000 characters; Slack recommends messages under 4,000 and Block Kit
# sections hold 3,000. We keep each message within MESSAGE_LIMIT so every piece is comfortable to read.
MESSAGE_LIMIT = 3000
TEXT_CHAR_LIMIT = 40_000

_FENCE = re.compile(r"^\s*(```|~~~)[^`]*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_AUTOLINK = re.compile(r"<((?:https?|mailto):[^>\s]+)>")
_SLACK_MENTION = re.compile(r"<[@#][UWC][A-Z0-9]+(?:\|[^>]*)?>")
_BOLD_ITALIC = re.compile(r"\*\*\*(?=\S)(.+?)(?<=\S)\*\*\*")
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^(\s*)[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^(\s*)(\d{1,9})[.)]\s+(.*)$")
_QUOTE = re.compile(r"^\s*>\s?(.*)$")
_RULE = re.compile(r"^\s{0,3}([-*_])(\s*\1){2,}\s*$")

_BULLETS = ("•", "◦", "▪")
_BOLD_MARK = "\x01"  # stands for "*" until italics are converted, so bold is not read as italics
_TOKEN = "\x02{}\x03"  # placeholder for text that must pass through untouched (code, links, mentions)
_TOKEN_RE = re.compile(r"\x02(\d+)\x03")


def escape(text: str) -> str:
    """Escape Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(markdown: str) -> str:
    """Convert Markdown (bold, italics, strike, code, links, headings, lists, quotes) to Slack mrkdwn."""
    out: list[str] = []
    fence: str | None = None
    markdown = re.sub(r"[\x01-\x03]", "", markdown)  # our placeholder characters never come from outside
    for line in markdown.replace("\r\n", "\n").split("\n"):
        match = _FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            out.append("```")  # Slack shows a language tag as code, so it is dropped
            continue
        if fence is not None:
            if line.strip() == fence:
                fence = None
                out.append("```")
            else:
                out.append(escape(line))
            continue
        out.append(_convert_line(line))
    if fence is not None:
        out.append("```")
    return "\n".join(out)


def _convert_line(line: str) -> str:
    if _RULE.match(line):
        return "──────────"
    if match := _HEADING.match(line):
        return f"*{_inline(match.group(1)).replace('*', '')}*" if match.group(1) else ""
    if match := _QUOTE.match(line):
        return "> " + _convert_line(match.group(1)) if match.group(1) else ">"
    if match := _BULLET.match(line):
        level = len(match.group(1).expandtabs(4)) // 2
        return "    " * level + f"{_BULLETS[min(level, len(_BULLETS) - 1)]} {_inline(match.group(2))}"
    if match := _NUMBERED.match(line):
        level = len(match.group(1).expandtabs(4)) // 2
        return "    " * level + f"{match.group(2)}. {_inline(match.group(3))}"
    return _inline(line)


def _inline(text: str) -> str:
    """Inline formatting of one line outside code blocks."""
    kept: list[str] = []

    def keep(value: str) -> str:
        kept.append(value)
        return _TOKEN.format(len(kept) - 1)

    text = _INLINE_CODE.sub(lambda m: keep(f"`{escape(m.group(2).strip() or m.group(2))}`"), text)
    text = _IMAGE_OR_LINK.sub(lambda m: keep(_link(m.group(2), m.group(1))), text)
    text = _AUTOLINK.sub(lambda m: keep(_link(m.group(1), "")), text)
    text = _SLACK_MENTION.sub(lambda m: keep(m.group(0)), text)
    text = escape(text)
    text = _BOLD_ITALIC.sub(lambda m: f"{_BOLD_MARK}_{m.group(1)}_{_BOLD_MARK}", text)
    text = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(1) or m.group(2)}{_BOLD_MARK}", text)
    text = _ITALIC_STAR.sub(lambda m: f"_{m.group(1)}_", text)
    text = _STRIKE.sub(lambda m: f"~{m.group(1)}~", text)
    text = text.replace(_BOLD_MARK, "*")
    while _TOKEN_RE.search(text):  # a link label may hold a code span's token
        text = _TOKEN_RE.sub(lambda m: kept[int(m.group(1))], text)
    return text


def _link(url: str, label: str) -> str:
    url = url.replace("&", "&amp;").replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    label = escape(re.sub(r"\*\*|__|`|~~", "", label).replace("|", "/")).strip()
    return f"<{url}|{label}>" if label and label != url else f"<{url}>"


def split_message(text: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """Split mrkdwn into messages of at most ``limit`` characters.

    Breaks between paragraphs where it can, then between lines, then between words. A code block that fits in
    one message is never split; a longer one is split between lines, each piece closed and reopened with
    a fence so every message renders on its own.
    """
    if limit < 20:
        raise ValueError("limit must be at least 20 characters")
    pieces: list[str] = []
    for unit in _units(text):
        pieces.extend(_fit(unit, limit))
    messages: list[str] = []
    current = ""
    for piece in pieces:
        joined = f"{current}\n\n{piece}" if current else piece
        if len(joined) <= limit:
            current = joined
        else:
            messages.append(current)
            current = piece
    if current:
        messages.append(current)
    return [message for message in messages if message.strip()]


def format_reply(markdown: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """The model's Markdown as one or more Slack messages."""
    return split_message(to_mrkdwn(markdown), limit) or [""]


def _units(text: str) -> list[str]:
    """Paragraphs and whole code blocks (between lines that are exactly a fence), in order."""
    units: list[str] = []
    paragraph: list[str] = []
    code: list[str] | None = None
    for line in text.split("\n"):
        if code is not None:
            code.append(line)
            if line.strip() == "```":
                units.append("\n".join(code))
                code = None
        elif line.strip() == "```":
            if paragraph:
                units.append("\n".join(paragraph))
                paragraph = []
            code = [line]
        elif line.strip():
            paragraph.append(line)
        elif paragraph:
            units.append("\n".join(paragraph))
            paragraph = []
    if code is not None:
        units.append("\n".join([*code, "```"]))
    if paragraph:
        units.append("\n".join(paragraph))
    return units


def _fit(unit: str, limit: int) -> list[str]:
    """One paragraph or code block as pieces of at most ``limit`` characters."""
    if len(unit) <= limit:
        return [unit]
    if unit.startswith("```"):
        body = unit.split("\n")[1:]
        if body and body[-1].strip() == "```":
            body = body[:-1]
        inner = limit - len("```\n\n```")
        return [f"```\n{chunk}\n```" for chunk in _pack(body, inner, "\n")]
    return _pack(unit.split("\n"), limit, "\n")


def _pack(lines: list[str], limit: int, sep: str) -> list[str]:
    """Greedily join lines with ``sep`` into chunks of at most ``limit``; split over-long lines at spaces."""
    chunks: list[str] = []
    current: str | None = None
    for line in lines:
        for part in _split_line(line, limit):
            if current is None:
                current = part
            elif len(current) + len(sep) + len(part) <= limit:
                current += sep + part
            else:
                chunks.append(current)
                current = part
    if current is not None:
        chunks.append(current)
    return chunks


def _split_line(line: str, limit: int) -> list[str]:
    parts: list[str] = []
    while len(line) > limit:
        cut = line.rfind(" ", limit // 2, limit + 1)
        if cut <= 0:
            cut = limit
            amp = line.rfind("&", cut - 5, cut)
            if amp > 0 and ";" not in line[amp:cut]:  # never cut inside an &amp; escape
                cut = amp
        parts.append(line[:cut].rstrip())
        line = line[cut:].lstrip()
    parts.append(line.rstrip())
    return parts
