"""Reading a source's metadata files (CSV, class lists) when any row of them may be malformed.

A problem of one row (bytes that are not UTF-8, a field over the csv module's size limit, a
cell that does not parse) costs that row: it comes back as a `BadRow` naming the file and
line. A problem of the whole file (no header, a required column missing, a file that is not
text) raises `SourceError` naming the file and the line, before any image is read.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


class SourceError(ValueError):
    """A file of the source that cannot be used at all; the message names the file and the line."""


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be used: `where` is `file:line`, `filename` the file it names when that is legible."""

    where: str
    detail: str
    filename: str | None = None


@dataclass(frozen=True)
class CsvRow:
    line: int
    values: dict[str, str]


def legible(text: str) -> str:
    """`text` with undecodable bytes (surrogate escapes) written as `\\xNN`, and any other lone
    surrogate (JSON can hold one) as `\\udNNN`: safe to print and to store as UTF-8."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a surrogate escape: a byte that was not UTF-8
        return False
    return True


def read_csv_rows(path: Path, required: tuple[str, ...] = ("filename",)) -> Iterator[CsvRow | BadRow]:
    """The rows of a CSV with a header, as stripped `column -> value` dicts, or why a row is unusable.

    `required[0]` is the column that names a row's file. Extra cells beyond the header and
    missing trailing ones are tolerated, as csv.DictReader does.
    """
    records = _records(path)
    header = _header(path, next(records, None), required)
    name_column = header.index(required[0]) if required else 0
    for record in records:
        if isinstance(record, BadRow):
            yield record
            continue
        line, cells = record
        problem = _undecodable(path, line, cells, name_column)
        yield problem or CsvRow(line, {column: cell.strip() for column, cell in zip(header, cells)})


def read_csv_cells(path: Path, name_column: int = 0) -> Iterator[CsvRow | BadRow]:
    """The rows of a CSV without a header (ArtGAN's), as `column index (str) -> stripped cell`."""
    for record in _records(path):
        if isinstance(record, BadRow):
            yield record
            continue
        line, cells = record
        problem = _undecodable(path, line, cells, name_column)
        yield problem or CsvRow(line, {str(index): cell.strip() for index, cell in enumerate(cells)})


def _records(path: Path) -> Iterator[tuple[int, list[str]] | BadRow]:
    """(line, cells) of every non-blank row, or a BadRow where the csv module gives up on one."""
    # surrogateescape: bytes are decoded per row, so one stray non-UTF-8 byte costs only its
    # own row; utf-8-sig drops the BOM spreadsheets write.
    with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        reader = csv.reader(handle)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # e.g. a field over csv.field_size_limit(): the rest goes on
                yield BadRow(f"{path.name}:{reader.line_num}", f"{path.name} line {reader.line_num}: {exc}")
                continue
            if any(cell.strip() for cell in cells):
                yield reader.line_num, cells


def _header(path: Path, first: tuple[int, list[str]] | BadRow | None, required: tuple[str, ...]) -> list[str]:
    if isinstance(first, BadRow):
        raise SourceError(f"{path} line {first.where.rpartition(':')[2]}: unreadable CSV header ({first.detail})")
    line, cells = first if first is not None else (1, [])
    header = [cell.strip() for cell in cells]
    if not all(_is_utf8(cell) for cell in header):
        raise SourceError(f"{path} line {line}: the header is not UTF-8 text: {legible(','.join(header))[:200]}")
    missing = [name for name in required if name not in header]
    if missing:
        raise SourceError(
            f"{path} line {line}: no {', '.join(map(repr, missing))} column "
            f"(columns: {', '.join(header)[:200] or 'none'})"
        )
    return header


def _undecodable(path: Path, line: int, cells: list[str], name_column: int) -> BadRow | None:
    if all(_is_utf8(cell) for cell in cells):
        return None
    named = cells[name_column].strip() if name_column < len(cells) else ""
    return BadRow(
        f"{path.name}:{line}",
        f"{path.name} line {line}: bytes that are not UTF-8: {legible(','.join(cells))[:200]}",
        named if named and _is_utf8(named) else None,
    )


def read_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a small text file; a line that is not UTF-8 makes the file unusable."""
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        try:
            yield number, raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise SourceError(f"{path} line {number}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
