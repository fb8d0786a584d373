"""What evaluate reads of each image: the descriptors and thumbnails it scores, and no others; each read once."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from artsim.core.images import as_image_file
from artsim.describe import table as descriptor_io
from artsim.evaluate import described_ids, evaluate_on_test, readings
from artsim.evaluate import run as evaluate_run
from tests.evaluate.test_run import (
    NO_TRANSFORMED_SET,
    collection,
    describe_tiny_project,
    descriptor_scorer,
    mostly_test,
    random_model,
)
from tests.support.tiny_project import build_tiny_project, resolved_pairs


def test_evaluate_reads_no_descriptor_nor_grey_thumbnail_it_does_not_score(tmp_path: Path, monkeypatch) -> None:
    """The stage reads the descriptors of the collection and of the test pairs only (described_ids), and keeps the
    grey thumbnail of no val variant: the figures are those of reading every image's descriptors."""
    paths = build_tiny_project(tmp_path)
    pairs = mostly_test(resolved_pairs(paths))
    pairs = pairs.assign(split=np.where(pairs["original_id"].isin(["o9", "o10"]), "val", pairs["split"]))
    originals, every = collection(paths, mostly_test=True), descriptor_scorer(paths)
    needed = described_ids(pairs, originals)
    # From the pairs table and the manifest alone (no file paths): what a stage knows before resolving any file.
    unresolved = pairs.drop(columns=["original_path", "generated_path"])
    assert described_ids(unresolved, originals.drop(columns="path")) == needed
    test = pairs[pairs["split"] == "test"]
    val = pairs[(pairs["split"] == "val") & ~pairs["generated_id"].isin(test["generated_id"])]  # in no test pair
    assert len(val) and needed.isdisjoint(val["generated_id"]) and needed < set(every.descriptors.ids)
    some = replace(every, descriptors=descriptor_io.read_descriptors(describe_tiny_project(paths), needed))
    assert len(some.descriptors) == len(needed) < len(every.descriptors)
    greyed, signatures_of = [], readings.signatures_of

    def recorded_signatures(paths, grey_for=None):
        greyed.append(None if grey_for is None else {as_image_file(p) for p in grey_for})
        return signatures_of(paths, grey_for)

    monkeypatch.setattr(readings, "signatures_of", recorded_signatures)
    reports = [json.dumps(evaluate_on_test(random_model(), pairs, originals, 32, 4, descriptor_scorer=described,
                                           alterations=NO_TRANSFORMED_SET).report, sort_keys=True)
               for described in (every, some)]
    assert reports[0] == reports[1] and '"n_queries": 0' not in reports[0]
    assert greyed[0] is not None and greyed[0].isdisjoint(as_image_file(p) for p in val["generated_path"])
    assert {as_image_file(p) for p in originals["path"]} <= greyed[0]  # SSIM ranks: every candidate's thumbnail


def test_the_candidates_and_queries_read_their_thumbnails_and_descriptors_in_place(tmp_path: Path,
                                                                                    monkeypatch) -> None:
    paths = build_tiny_project(tmp_path)
    described = descriptor_scorer(paths)
    inputs, scorer_inputs = [], evaluate_run.scorer_inputs

    def recorded(readers, *args):
        inputs.append((readers.signatures.grey, scorer_inputs(readers, *args)))
        return inputs[-1][1]

    monkeypatch.setattr(evaluate_run, "scorer_inputs", recorded)
    evaluate_on_test(random_model(), mostly_test(resolved_pairs(paths)), collection(paths, mostly_test=True), 32, 4,
                     descriptor_scorer=described, alterations=NO_TRANSFORMED_SET)
    (kept, queries), (_, candidates) = inputs
    assert len(queries) and len(candidates) and len(kept) >= len(queries) + len(candidates)
    assert queries.greys.array is kept and candidates.greys.array is kept  # rows of the one array, not a copy
    for inputs_of in (queries, candidates):  # the rows of the descriptors read, not a second copy of their floats
        assert inputs_of.descriptors.source is described.descriptors
        assert len(inputs_of.descriptors) == len(inputs_of)


def test_descriptor_rows_read_in_place_are_the_rows_a_copy_holds(tmp_path: Path) -> None:
    descriptors = descriptor_scorer(build_tiny_project(tmp_path)).descriptors
    ids = list(descriptors.ids[::-2])
    copied, in_place = descriptors.select(ids), descriptors.rows_of(ids)
    assert in_place.names == copied.names and len(in_place) == len(copied) == len(ids)
    for name in copied.names:
        assert np.array_equal(in_place[name], copied[name])
        assert np.array_equal(in_place.rows(1, 3)[name], copied.rows(1, 3)[name])
        assert np.array_equal(in_place.take(np.array([2, 0]))[name], copied.take(np.array([2, 0]))[name])
