"""Which originals of an index does a query image most resemble? One `Searcher` per index, built once (by
`artsim search`, by `artsim serve` at startup), answering queries already decoded.

Queries are embedded in batches; each is ranked by a ranking of artsim.index.query.RANKINGS. The head is not
a distance, so scoring a query against every original with it costs one head pass per original; instead the
originals are shortlisted by cosine similarity of trunk embeddings and only the shortlist is scored by the head.
What embeds, what scores a pair and what judges a hit (its mark and verdict sentence) are given (the app's
model), so this package knows no model file and no verdict.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from artsim.core import layout
from artsim.core.errors import UserError
from artsim.core.hashes import phash_bits
from artsim.index import DEFAULT_SHORTLIST
from artsim.index.query import Calibration, HeadScores, IndexSearch, Ranked, ranking_named
from artsim.index.store import StoredIndex

EMBED_BATCH = 16

# Trunk embeddings (n, dim) of decoded RGB images, in order.
Embed = Callable[[Sequence[Image.Image]], np.ndarray]


@dataclass(frozen=True)
class Judgement:
    """What the scores judging a hit (Ranked.evidence: scorer -> score) say by their own scorers' thresholds:
    `likely_derived` where each reaches its scorer's threshold at 90% precision (None where a scorer has none), and
    `text`, the verdict in words (which scorer's threshold, at what precision, on how many held-out pairs)."""

    likely_derived: bool | None
    text: str


Judge = Callable[[Mapping[str, float]], Judgement]


@dataclass(frozen=True)
class Query:
    name: str
    image: Image.Image | None
    error: str | None = None  # why the query could not be decoded: it gets no hit


@dataclass(frozen=True)
class Hit:
    id: str
    rank: int
    score: float
    cosine: float
    artist: str
    title: str
    path: str
    likely_derived: bool | None = None  # judged by its ranking's scorers' thresholds at 90% precision; None without
    verdict_text: str = ""  # that judgement in words, as compare words its verdict, naming the scorers judging it
    # What `artsim export image ID OUT` takes for this original (its manifest id) when the index is of a workspace's
    # ingested originals, whose `path` may be a shard member (`…/shards/88.tar#512+107765`); None for a folder's
    # original, whose `path` is its file.
    export_id: str | None = None


@dataclass(frozen=True)
class QueryResult:
    query: str
    hits: list[Hit]
    candidates: int
    error: str | None = None  # the query could not be used: it has no hit


class Searcher:
    """Searches of one index: `search(queries, top_k, ranking)` gives one QueryResult per query, in order."""

    def __init__(self, index: StoredIndex, root: Path, embed: Embed, head: HeadScores, judge: Judge,
                 shortlist: int = DEFAULT_SHORTLIST, calibration: Calibration | None = None) -> None:
        if shortlist < 1:
            raise UserError("--shortlist must be at least 1")
        self.index, self.root = index, root  # hit paths are root / location
        self.embed, self.head, self.judge, self.shortlist = embed, head, judge, shortlist
        # Its usable mask and pHashes are per index, not per query; the calibration is fused's (shipped with the model).
        self.ranker = IndexSearch(index, calibration)
        # A root with a manifest is a workspace's data/ingested (artsim.index.collection): its ids are the manifest's.
        self.exportable = (root / layout.MANIFEST).is_file()

    @property
    def skipped(self) -> dict[str, str]:
        """Originals of the index that have no vector (unreadable, not an image), with why."""
        entries = self.index.entries
        return {str(self.root / location): problem for location, problem in zip(entries.locations, entries.problems)
                if problem}

    def search(self, queries: Iterable[Query], top_k: int, ranking: str, count: int | None = None
               ) -> Iterator[QueryResult]:
        """One result per query, in query order; an undecodable query gets its error, never stops the others.
        `queries` is read a batch at a time (a generator decoding them lazily keeps memory bounded); `count`:
        how many there are, for the progress bar (shown past one batch)."""
        if top_k < 1:
            raise UserError("--top-k and --shortlist must be at least 1")
        ranking_named(ranking)  # an unknown ranking fails before any query is embedded
        pending = iter(queries)
        quiet = True if count is None or count <= EMBED_BATCH else None  # None: shown on a terminal
        with tqdm(total=count, desc="search", unit="query", disable=quiet) as progress:
            while batch := list(islice(pending, EMBED_BATCH)):
                yield from self._search_batch(batch, top_k, ranking)
                progress.update(len(batch))

    def _search_batch(self, queries: Sequence[Query], top_k: int, ranking: str) -> Iterator[QueryResult]:
        usable = [query for query in queries if query.image is not None]
        embeddings = self.embed([query.image for query in usable]) if usable else []
        shortlists = self.ranker.shortlists(np.asarray(embeddings, dtype=np.float32).reshape(len(usable), -1),
                                            max(self.shortlist, top_k)) if usable else []
        found = {
            id(query): (embedding, shortlisted) for query, embedding, shortlisted in zip(usable, embeddings, shortlists)
        }
        count = len(self.index.entries)
        for query in queries:
            if id(query) not in found:
                yield QueryResult(query.name, [], count, query.error or "no image")
                continue
            embedding, shortlisted = found[id(query)]
            ranked = self.ranker.rank(ranking, embedding, phash_bits(query.image), shortlisted, self.head, top_k)
            yield QueryResult(query.name, [self._hit(rank, r) for rank, r in enumerate(ranked, start=1)], count)

    def _hit(self, rank: int, ranked: Ranked) -> Hit:
        entries, row = self.index.entries, ranked.row
        judged = self.judge(ranked.evidence)
        return Hit(entries.ids[row], rank, ranked.score, ranked.cosine, entries.artists[row], entries.titles[row],
                   str(self.root / entries.locations[row]), judged.likely_derived, judged.text,
                   entries.ids[row] if self.exportable else None)
