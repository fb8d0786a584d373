"""What a section of the report is made of; the template draws each kind of block. Text in a
block is plain (untrusted metadata included): the template escapes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from artsim.report.examples import Example, Thumb
from artsim.report.rows import Table


@dataclass(frozen=True)
class Text:
    text: str
    kind: str = "text"


@dataclass(frozen=True)
class TableBlock:
    table: Table
    kind: str = "table"


@dataclass(frozen=True)
class Figure:
    uri: str
    alt: str
    style: str = "plot"  # "plot": a chart, two a row; "wide": an image shown on its own row
    kind: str = "figure"


@dataclass(frozen=True)
class Examples:
    examples: list[Example]
    kind: str = "examples"


@dataclass(frozen=True)
class Thumbs:
    thumbs: list[Thumb]
    kind: str = "thumbs"


Block = Text | TableBlock | Figure | Examples | Thumbs


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list[Block] = field(default_factory=list)

    def text(self, text: str) -> None:
        self.blocks.append(Text(text))

    def table(self, table: Table) -> None:
        if table:
            self.blocks.append(TableBlock(table))

    def figure(self, draw: Callable[[], str], alt: str, when: bool = True) -> None:
        """A figure drawn only `when` its data is there (drawing is the costly part)."""
        if when:
            self.blocks.append(Figure(draw(), alt))
