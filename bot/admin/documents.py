"""Read documents for import into archival memory: plain text, Markdown, HTML, PDF (pypdf) and DOCX (python-docx).

``read_document`` turns a file's bytes into ``Document`` pages of text (one page for formats without pages);
``passages`` cuts them into archival passages that name their source, page and position, so a search hit says
where it came from. A file that cannot be read raises ``DocumentError`` with the reason, in words for a user.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePath

from bot.admin.chunking import DEFAULT_CHUNK_CHARS, chunk_text

__all__ = ["SUPPORTED_SUFFIXES", "Document", "DocumentError", "Passage", "passages", "read_document"]

TEXT_SUFFIXES = frozenset({".txt", ".text", ".md", ".markdown", ".rst", ".csv", ".log"})
HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | HTML_SUFFIXES | {".pdf", ".docx"}
MAX_BYTES = 50 * 1024 * 1024


class DocumentError(Exception):
    """A document that cannot be imported; the message says why, for the person who gave it."""


@dataclass(frozen=True)
class Document:
    """A document's text, page by page (``pages[0]`` is page 1), and the SHA-256 of its bytes."""

    name: str
    kind: str
    pages: tuple[str, ...]
    sha256: str

    @property
    def paged(self) -> bool:
        return self.kind == "pdf"


@dataclass(frozen=True)
class Passage:
    """One archival passage of a document: its text starts with where it came from."""

    text: str
    page: int | None
    position: int  # 1-based, over the whole document
    total: int


def read_document(name: str, data: bytes) -> Document:
    """Parse ``data`` by the suffix of ``name``; DocumentError for an unknown type, an empty or unreadable file."""
    suffix = PurePath(name).suffix.lower()
    pages: tuple[str, ...]
    if len(data) > MAX_BYTES:
        raise DocumentError(f"it is {len(data) / 1e6:.0f} MB; the limit is {MAX_BYTES // 1_000_000} MB")
    if suffix in TEXT_SUFFIXES:
        kind, pages = "text", (_decode(data),)
    elif suffix in HTML_SUFFIXES:
        kind, pages = "html", (_html_text(_decode(data)),)
    elif suffix == ".pdf":
        kind, pages = "pdf", _pdf_pages(data)
    elif suffix == ".docx":
        kind, pages = "docx", (_docx_text(data),)
    else:
        known = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise DocumentError(f"membot cannot read {suffix or 'files without a suffix'} files (it reads {known})")
    if not any(page.strip() for page in pages):
        hint = " (a scanned PDF has images, not text)" if kind == "pdf" else ""
        raise DocumentError(f"it has no text to import{hint}")
    return Document(PurePath(name).name, kind, pages, hashlib.sha256(data).hexdigest())


def passages(document: Document, size: int = DEFAULT_CHUNK_CHARS) -> list[Passage]:
    """The document cut into passages of about ``size`` characters, each headed by its source and place."""
    pieces = [
        (index + 1 if document.paged else None, chunk)
        for index, page in enumerate(document.pages)
        for chunk in chunk_text(page, size)
    ]
    total = len(pieces)
    return [
        Passage(f"{_where(document.name, page, position, total)}:\n{chunk}", page, position, total)
        for position, (page, chunk) in enumerate(pieces, start=1)
    ]


def _where(name: str, page: int | None, position: int, total: int) -> str:
    place = f", page {page}" if page is not None else ""
    return f"From {name}{place} (passage {position} of {total})"


def _decode(data: bytes) -> str:
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"  # UTF-16 only with its BOM
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        raise DocumentError("it is not UTF-8 text (save it as UTF-8 and try again)")
    return text


class _TextOfHtml(HTMLParser):
    """The visible text of an HTML page: scripts, styles and templates skipped, blocks on their own lines."""

    SKIPPED = frozenset({"script", "style", "template", "noscript", "head"})
    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _html_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n\s*\n\s*", "\n\n", text).strip()


def _pdf_pages(data: bytes) -> tuple[str, ...]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise DocumentError("the PDF is encrypted with a password")
        return tuple(page.extract_text() or "" for page in reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise DocumentError(f"the PDF cannot be read ({exc})") from None


def _docx_text(data: bytes) -> str:
    import zipfile

    from docx import Document as open_docx

    try:
        docx = open_docx(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(f"the DOCX file cannot be read ({exc})") from None
    paragraphs = [p.text for p in docx.paragraphs]
    for table in docx.tables:
        paragraphs.extend(" | ".join(cell.text for cell in row.cells) for row in table.rows)
    return "\n\n".join(p for p in paragraphs if p.strip())
