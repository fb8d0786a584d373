"""The compact approximate index: exact search (today's results) up to EXACT_LIMIT usable originals, past it
candidates from the compact IVF re-ranked exactly, for any embedding width; stored beside the vectors and read
back only when its bytes check out (a truncated or edited one is reported and the index searched exactly)."""
from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from artsim.index import ann
from artsim.index.query import shortlist_rows
from artsim.index.store import ANN, Entries, load_index, new_vector_file, save_index


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(count: int, dim: int, seed: int = 0) -> np.ndarray:
    """Unit rows around 40 centres: neighbours worth finding, as a trunk's embeddings have."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, dim))
    return unit(centres[rng.integers(0, 40, count)] + 0.6 * rng.standard_normal((count, dim)))


def write_index(folder: Path, vectors: np.ndarray, problems: list[str] | None = None):
    count, dim = vectors.shape
    problems = problems or [""] * count
    vector_file, stored = new_vector_file(folder, count, dim)
    stored[:] = vectors
    entries = Entries.empty()
    for row in range(count):
        entries.append(ids=f"o{row}", locations=f"o{row}.jpg", sha256=f"{row:064x}", sizes=1, mtimes_ns=1,
                       phash="", artists="", titles="", problems=problems[row])
    save_index(folder, "m", folder, entries, vector_file, stored, np.ones(count, np.float32))
    index, problem = load_index(folder)
    assert problem is None
    return index


def queries_near(vectors: np.ndarray, count: int = 40, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    sources = vectors[rng.choice(len(vectors), count, replace=False)]
    return unit(sources + 0.3 * rng.standard_normal(sources.shape))


def test_up_to_the_limit_the_search_is_exact_and_no_compact_index_is_stored(tmp_path):
    vectors = clustered(300, 16)
    index = write_index(tmp_path, vectors)
    assert index.compact is None and not (tmp_path / ANN).exists()
    queries = queries_near(vectors)
    exact_scores, exact_rows = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    found = shortlist_rows(queries, index.vectors, 10, index.usable, index.compact)
    assert [list(rows) for rows, _ in found] == exact_rows.tolist()
    assert np.array_equal(np.array([scores for _, scores in found]), exact_scores.astype(np.float64))


@pytest.mark.parametrize("dim", [24, 25, 600])  # narrower than COMPACT_DIM (kept whole; odd too) and wider (PCA)
def test_past_the_limit_a_stored_compact_index_finds_the_exact_neighbours_with_exact_scores(tmp_path, monkeypatch,
                                                                                            dim):
    monkeypatch.setattr(ann, "EXACT_LIMIT", 500)
    vectors = clustered(3000, dim)
    problems = ["unreadable" if row % 50 == 0 else "" for row in range(3000)]
    index = write_index(tmp_path, vectors, problems)
    assert index.compact is not None and (tmp_path / ANN).is_file()
    queries = queries_near(vectors)
    usable = index.usable
    exact = shortlist_rows(queries, index.vectors, 10, usable)
    approximate = shortlist_rows(queries, index.vectors, 10, usable, index.compact)
    recall = ann.recall_at_k(np.array([r for r, _ in exact]), np.array([r for r, _ in approximate]))
    assert recall >= 0.99
    for query, (rows, scores) in zip(queries, approximate):
        assert usable[rows].all()  # an original without a vector is never proposed
        assert np.allclose(scores, vectors[rows] @ query, atol=1e-6)  # cosines are exact, best first
        assert list(scores) == sorted(scores, reverse=True)


def test_the_models_embedding_is_kept_whole_and_a_wider_one_reduced_to_it(tmp_path, monkeypatch):
    monkeypatch.setattr(ann, "EXACT_LIMIT", 500)
    monkeypatch.setattr(ann, "COMPACT_DIM", 32)
    whole = write_index(tmp_path / "whole", clustered(1500, 32)).compact.index
    wider = write_index(tmp_path / "wider", clustered(1500, 48)).compact.index
    assert not isinstance(faiss.downcast_index(whole), faiss.IndexPreTransform)
    assert isinstance(faiss.downcast_index(wider), faiss.IndexPreTransform)
    assert faiss.extract_index_ivf(whole).d == faiss.extract_index_ivf(wider).d == 32
    assert faiss.extract_index_ivf(whole).nlist == int(ann.LISTS_PER_ROOT * np.sqrt(1500))


def test_a_compact_index_laid_out_by_another_version_is_reported_searched_exactly_and_rebuilt(tmp_path, monkeypatch,
                                                                                             caplog):
    monkeypatch.setattr(ann, "EXACT_LIMIT", 500)
    vectors = clustered(2000, 24)
    with monkeypatch.context() as older:  # an older version's fewer, longer lists (sha256 intact)
        older.setattr(ann, "LISTS_PER_ROOT", 2)
        write_index(tmp_path, vectors)
    index, problem = load_index(tmp_path, verify_files=False)
    assert problem is None and index.compact is None and "lists" in index.compact_problem and ANN in caplog.text
    queries = queries_near(vectors)
    _, exact_rows = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert [list(r) for r, _ in shortlist_rows(queries, index.vectors, 10, index.usable)] == exact_rows.tolist()
    rebuilt = write_index(tmp_path, vectors)  # the next update writes this version's
    assert rebuilt.compact is not None and rebuilt.compact_problem is None


def test_the_compact_index_is_the_same_for_the_same_vectors(tmp_path, monkeypatch):
    monkeypatch.setattr(ann, "EXACT_LIMIT", 500)
    vectors = clustered(2000, 24)
    first = write_index(tmp_path / "a", vectors).compact
    second = write_index(tmp_path / "b", vectors).compact
    assert np.array_equal(first.to_bytes(), second.to_bytes())


@pytest.mark.parametrize("damage", ["truncated", "flipped", "missing", "not faiss"])
def test_a_damaged_compact_index_is_reported_and_the_index_searched_exactly(tmp_path, monkeypatch, caplog, damage):
    monkeypatch.setattr(ann, "EXACT_LIMIT", 500)
    vectors = clustered(2000, 24)
    write_index(tmp_path, vectors)
    data = (tmp_path / ANN).read_bytes()
    if damage == "truncated":
        (tmp_path / ANN).write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        (tmp_path / ANN).write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    elif damage == "missing":
        (tmp_path / ANN).unlink()
    else:
        (tmp_path / ANN).write_bytes(b"\0" * len(data))
    index, problem = load_index(tmp_path, verify_files=False)
    assert problem is None and index is not None  # the vectors are fine: the index stays usable
    assert index.compact is None and index.compact_problem
    assert ANN in caplog.text
    queries = queries_near(vectors)
    _, exact_rows = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    assert [list(r) for r, _ in shortlist_rows(queries, index.vectors, 10, index.usable, index.compact)] \
        == exact_rows.tolist()


def test_bytes_of_another_index_shape_are_refused():
    vectors = clustered(600, 8)
    built = faiss.index_factory(8, "IVF4,SQ8", faiss.METRIC_L2)
    built.train(vectors)
    built.add(vectors)
    with pytest.raises(ValueError, match="width 8"):
        ann.CompactIndex.from_bytes(faiss.serialize_index(built), dim=16, count=600)
    with pytest.raises(ValueError, match="not a faiss index"):
        ann.CompactIndex.from_bytes(np.frombuffer(b"garbage" * 10, dtype=np.uint8), dim=8, count=600)
