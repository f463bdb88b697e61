"""`membot import`: real Markdown, HTML, PDF and DOCX files made here, imported by a real `membot import` process;
passages name their source, page and position; a second import adds nothing; unreadable files are named and the
others go on."""

from __future__ import annotations

import json
from pathlib import Path

import docx

from bot.admin.documents import DocumentError, passages, read_document
from tests.test_cli import env, membot

__all__ = ["env"]  # the fixture, shared with the CLI tests


def make_pdf(pages: list[str]) -> bytes:
    """A minimal PDF with one line of Helvetica text per page (what a PDF writer produces, without a library)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
        content_id, page_id = len(objects) + 2, len(objects) + 1
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode('latin-1')}\nendstream")
        kids.append(f"{page_id} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def make_docx(path: Path, paragraphs: list[str]) -> None:
    document = docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Locker", "42"
    document.save(str(path))


def test_each_format_reads_into_passages_that_say_where_they_come_from(tmp_path: Path) -> None:
    pdf = read_document("manual.pdf", make_pdf(["The boiler is in the cellar.", "Bleed the radiators in October."]))
    assert pdf.kind == "pdf" and len(pdf.pages) == 2
    assert [p.text for p in passages(pdf)] == [
        "From manual.pdf, page 1 (passage 1 of 2):\nThe boiler is in the cellar.",
        "From manual.pdf, page 2 (passage 2 of 2):\nBleed the radiators in October.",
    ]
    html = read_document("page.html", b"<html><head><title>x</title><script>var a=1;</script></head><body><h1>Tea"
                         b"</h1><p>Steep green tea for 2&nbsp;minutes.</p></body></html>")  # fmt: skip
    assert html.pages == ("Tea\n\nSteep green tea for 2\xa0minutes.",)
    make_docx(tmp_path / "notes.docx", ["First paragraph.", "Second paragraph."])
    word = read_document("notes.docx", (tmp_path / "notes.docx").read_bytes())
    assert word.pages == ("First paragraph.\n\nSecond paragraph.\n\nLocker | 42",)
    for name, data, reason in [
        ("x.pdf", b"%PDF-1.4 not really", "the PDF cannot be read"),
        ("x.docx", b"PK not a zip", "the DOCX file cannot be read"),
        ("x.xyz", b"hello", "membot cannot read .xyz files"),
        ("x.txt", b"\xff\xfe\x00", "not UTF-8"),
        ("x.txt", "caf\xe9".encode("latin-1"), "not UTF-8"),
        ("x.md", b"   \n\n  ", "no text to import"),
    ]:
        try:
            read_document(name, data)
        except DocumentError as exc:
            assert reason in str(exc), (name, str(exc))
        else:
            raise AssertionError(f"{name} was read")


def test_membot_import_stores_each_file_once_and_names_what_it_could_not_read(
    env: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "garden.md").write_text("# Garden\n\nThe tomatoes go in after the last frost.\n", encoding="utf-8")
    (folder / "tea.html").write_text("<p>Steep green tea for two minutes.</p>", encoding="utf-8")
    (folder / "manual.pdf").write_bytes(make_pdf(["The boiler is in the cellar.", "Bleed radiators in October."]))
    make_docx(folder / "bike.docx", ["The bike lock code is 4711."])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    missing = tmp_path / "missing.txt"

    first = membot(["import", str(folder), str(missing), "--user", "console:ivy"], env, tmp_path)
    assert first.returncode == 1, first.stderr
    assert "manual.pdf: 2 of 2 passages stored" in first.stdout
    assert "garden.md: 1 of 1 passages stored" in first.stdout and "bike.docx: 1 of 1" in first.stdout
    assert "broken.pdf: the PDF cannot be read" in first.stderr.replace("\n", " ")
    assert "missing.txt: No such file or directory" in first.stderr.replace("\n", " ")
    assert "Traceback" not in first.stderr

    again = membot(["import", str(folder / "manual.pdf"), "--user", "console:ivy"], env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert "manual.pdf: 0 of 2 passages stored, 2 already known" in again.stdout

    exported = json.loads(membot(["memory", "export", "console:ivy"], env, tmp_path).stdout)
    notes = sorted(item["text"] for item in exported["archival"])
    assert len(notes) == 5
    assert "From manual.pdf, page 2 (passage 2 of 2):\nBleed radiators in October." in notes
    assert all(item["scope"] == "private" for item in exported["archival"])
    imports = [e for e in exported["audit"] if e.get("kind") == "import"]
    assert {e["detail"]["kind"] for e in imports} == {"pdf", "docx", "html", "text"}

    found = membot(["memory", "search", "console:ivy", "where is the boiler", "--json"], env, tmp_path)
    assert json.loads(found.stdout)[0]["text"].startswith("From manual.pdf, page 1")
