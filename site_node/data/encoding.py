"""Which text encoding a CSV file is in, decided before it is parsed.

Read: UTF-8 (with or without BOM), UTF-16 either byte order (Excel's "Unicode text"; with a BOM,
or recognised by its zero bytes), Windows-1252 and Latin-1 (older Excel "CSV (Comma
delimited)" on Western European Windows). Refused with the encoding named and how to re-save:
UTF-32, and files that are not text (zero bytes, a ZIP/XLSX under a .csv name). The whole file
is decoded once in blocks, so a stray byte deep in the file decides, not the first lines.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

from fedsurv.site_node.data.errors import DataValidationError, Finding

RESAVE = ("in Excel use File > Save As > 'CSV UTF-8 (Comma delimited) (*.csv)'; in LibreOffice "
          "tick 'Edit filter settings' and choose 'Unicode (UTF-8)'")
"""How to re-save a file as UTF-8 CSV, for messages."""
_BLOCK = 1 << 20
_SAMPLE = 1 << 16


@dataclass(frozen=True)
class TextEncoding:
    """A detected encoding: the Python codec that reads it and its name for people."""

    codec: str
    label: str

    @property
    def is_utf8(self) -> bool:
        return self.codec in ("utf-8", "utf-8-sig")

    def note(self) -> str:
        """What site IT should know when the file is not UTF-8."""
        return f"read as {self.label}; to be sure every character is kept, save it as UTF-8: " \
            + RESAVE


UTF8 = TextEncoding("utf-8", "UTF-8")


def _refuse(path: Path, message: str) -> None:
    raise DataValidationError([Finding(file=path.name, rule="text_encoding", message=message)])


def detect_encoding(path: Path) -> TextEncoding:
    """The encoding of the text file ``path``; raises (rule text_encoding) when unsupported."""
    with path.open("rb") as handle:
        head = handle.read(_SAMPLE)
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        _refuse(path, "the file is UTF-32 text, which is not read; save it as UTF-8: " + RESAVE)
    if head.startswith(codecs.BOM_UTF16_LE):
        return _checked(path, TextEncoding("utf-16", "UTF-16 (little-endian, with BOM)"))
    if head.startswith(codecs.BOM_UTF16_BE):
        return _checked(path, TextEncoding("utf-16", "UTF-16 (big-endian, with BOM)"))
    if head.startswith(codecs.BOM_UTF8):
        return _checked(path, TextEncoding("utf-8-sig", "UTF-8 (with BOM)"))
    if head.startswith(b"PK\x03\x04"):
        _refuse(path, "the file is a ZIP archive (an .xlsx workbook?), not CSV text; give it "
                      "its real extension (.xlsx) or save the sheet as CSV UTF-8")
    zeros = head.count(b"\x00")
    if zeros:
        odd, even = head[1::2].count(b"\x00"), head[0::2].count(b"\x00")
        if zeros * 3 >= len(head) and max(odd, even) >= 0.9 * zeros:
            label = "little" if odd > even else "big"
            codec = "utf-16-le" if odd > even else "utf-16-be"
            return _checked(path, TextEncoding(codec, f"UTF-16 ({label}-endian, no BOM)"))
        _refuse(path, "the file holds NUL (0x00) bytes: it is not CSV text (a binary or damaged "
                      "file?); export the table from its program as CSV UTF-8: " + RESAVE)
    for encoding in (UTF8, TextEncoding("cp1252", "Windows-1252 (Western European)"),
                     TextEncoding("latin-1", "Latin-1 (ISO-8859-1)")):
        if _decodes(path, encoding.codec):
            return encoding
    raise AssertionError("latin-1 decodes any byte")  # pragma: no cover


def _decodes(path: Path, codec: str) -> bool:
    """The whole file decodes in ``codec`` (read in blocks: bounded memory)."""
    decoder = codecs.getincrementaldecoder(codec)()
    try:
        with path.open("rb") as handle:
            while block := handle.read(_BLOCK):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _checked(path: Path, encoding: TextEncoding) -> TextEncoding:
    """``encoding`` when the whole file decodes in it, else refuse naming it."""
    if not _decodes(path, encoding.codec):
        _refuse(path, f"the file starts as {encoding.label} text but has bytes that are not "
                      f"valid {encoding.label}; save it again as UTF-8: " + RESAVE)
    return encoding


def first_line(path: Path, encoding: TextEncoding) -> str:
    """The file's first line (for the separator), decoded."""
    with path.open("rb") as handle:
        head = handle.read(_SAMPLE)
    text = codecs.getincrementaldecoder(encoding.codec)(errors="replace").decode(head)
    return text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
