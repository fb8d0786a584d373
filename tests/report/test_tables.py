"""The documentation's tables are written by docs/gen_tables.py from metrics/ and bench/results/,
never by hand: a committed page that differs from what the generator writes fails here."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pandas as pd
import pytest

from artsim.core import layout
from artsim.report import tables

REPO_ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_tables", REPO_ROOT / "docs" / "gen_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
PAGES = GEN.pages()


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(REPO_ROOT).as_posix() for p in PAGES])
def test_every_committed_table_is_what_the_generator_writes(page: Path):
    text = page.read_text(encoding="utf-8")
    assert GEN.filled(text) == text, f"{page.name}: run python docs/gen_tables.py"


def test_the_generated_pages_hold_the_tables_from_metrics_and_benches():
    names = {m.group("name") for page in PAGES for m in GEN.MARKED.finditer(page.read_text(encoding="utf-8"))}
    assert {"thresholds", "peers", "regression", "transformed", "descriptor_study"} <= names
    assert {"bench/seeds/recall_at_1", "bench/seeds/pair_auc", "bench/scale_retrieval_500/goal"} <= names
    shown = {name.removeprefix("bench/").split("/")[0] for name in names if name.startswith("bench/")}
    measured = {path.stem for path in (REPO_ROOT / "bench" / "results").glob("*.json")}
    assert measured <= shown, "a bench result no page shows"
    assert shown <= measured | set(GEN.PENDING), "a page names a bench result that nothing writes"


def test_a_bench_result_not_measured_yet_names_the_command_that_writes_it(monkeypatch):
    monkeypatch.setitem(GEN.PENDING, "never_measured", "python bench/never.py --n 3")
    assert "`python bench/never.py --n 3` writes `bench/results/never_measured.json`" in GEN.table(
        "bench/never_measured")
    with pytest.raises(FileNotFoundError):
        GEN.table("bench/no_such_result")
    with pytest.raises(SystemExit, match="unknown table"):
        GEN.table("bench/seeds/no_such_view")


def _metrics(folder: Path, model_mirror: float, plain: dict[str, tuple[float | None, float | None]]) -> Path:
    """A metrics/ folder as evaluate writes it: evaluate.json's scorers and evaluate/transformed.csv."""
    (folder / "evaluate").mkdir(parents=True)
    report = {"mse": 0.02, "transformed": {"model": {"recall_at_1": 0.1}},
              **{scorer: {"recall_at_1": r1, "pair_auc": auc} for scorer, (r1, auc) in plain.items()}}
    (folder / "evaluate.json").write_text(json.dumps(report), encoding="utf-8")
    rows = [("mirror", "model", model_mirror, 0.8), ("mirror", "phash", 0.0, 0.35), ("mirror", "dhash", 0.6, ""),
            ("mirror", "fused", 0.9, 0.95), ("all", "model", 0.7, 0.9), ("all", "phash", 0.7, 0.88)]
    (folder / "evaluate" / "transformed.csv").write_text(
        "case,transform,scorer,pair_auc,recall_at_1\n"
        + "".join(f"{t} / {s},{t},{s},{auc},{r1}\n" for t, s, r1, auc in rows), encoding="utf-8")
    return folder


def test_the_seeds_bench_keeps_every_scorer_per_transform_and_the_gap_to_the_peer_to_match(tmp_path):
    from bench import seeds

    plain = {"model": (0.9, 0.95), "descriptor": (1.0, 1.0), "phash": (0.8, 0.97), "fused": (0.95, None)}
    runs = [seeds.scorer_figures(_metrics(tmp_path / str(seed), mirror, plain))
            for seed, mirror in enumerate((0.4, 0.6))]
    sets = seeds.spread_by_set(runs)
    assert list(sets) == ["plain", "mirror", "all"] and "transformed" not in sets["plain"]
    assert sets["mirror"]["model"]["recall_at_1"] == pytest.approx({"mean": 0.5, "std": 0.1414214, "n": 2})
    assert sets["mirror"]["dhash"]["pair_auc"] is None and sets["plain"]["fused"]["pair_auc"] is None
    goal = seeds.goal(sets)
    # The plain set is held to pHash alone (the descriptor score is higher); a transform to its best peer.
    assert goal["sets"]["plain"]["recall_at_1"] == pytest.approx(
        {"peer": "phash", "model": 0.9, "peer_mean": 0.8, "gap": 0.1, "met": True})
    assert goal["sets"]["mirror"]["recall_at_1"]["peer"] == "dhash"  # fused, higher, is the model helped: no peer
    assert goal["sets"]["mirror"]["recall_at_1"]["gap"] == pytest.approx(-0.1)
    assert goal["sets"]["mirror"]["pair_auc"]["peer"] == "phash" and goal["sets"]["all"]["recall_at_1"]["met"]
    assert goal["met"] is False

    table = tables.seed_spread({"seeds": [0, 1], "kernel": "native", "sets": sets, "goal": goal}, "recall_at_1")
    assert table.header[0] == "set (2 seeds, native kernels)" and table.header[-1] == "model − peer to match"
    assert table.rows[1] == ("mirror", "0.50 ± 0.14", "—", "0.00 ± 0.00", "0.60 ± 0.00", "0.90 ± 0.00",
                             "-0.100 (dHash)")
    assert table.rows[0][-1] == "+0.100 (pHash)"


def test_the_scale_bench_states_its_goal_per_transform(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))
    import scale_retrieval

    per_transform = {"mirror": {"model": {"recall_at_1": 0.06}, "descriptor": {"recall_at_1": 0.9}},
                     "greyscale": {"model": {"recall_at_1": 0.8}},
                     "all": {"model": {"recall_at_1": 0.59}, "descriptor": {"recall_at_1": 0.83}}}
    reached = scale_retrieval.goal(per_transform)
    assert reached["teacher_gap"] == pytest.approx(-0.24) and reached["below_floor"] == ["mirror"]
    assert not reached["met"]
    # The docs state it as gaps computed from the recorded figures: a transform to the floor, pooled to the teacher.
    table = tables.scale_goal_table({"figures": {"per_transform": per_transform}, "goal": {"floor": 0.5}})
    assert table.rows == (("mirror", "0.060", "floor 0.500", "-0.440", "not met"),
                          ("greyscale", "0.800", "floor 0.500", "+0.300", "met"),
                          ("all", "0.590", "descriptor score (teacher) 0.830", "-0.240", "not met"))
    per_transform["mirror"]["model"]["recall_at_1"] = per_transform["all"]["model"]["recall_at_1"] = 0.9
    assert scale_retrieval.goal(per_transform)["met"]
    assert tables.scale_goal({"all": {"model": {"recall_at_1": 0.9}}}, 0.5)["met"] is False  # no teacher: unknown


def test_a_stale_table_is_rewritten_from_the_metrics():
    stale = "intro\n<!-- table:thresholds -->\n| scorer | typed by hand |\n<!-- /table -->\nafter\n"
    written = GEN.filled(stale)
    report = json.loads((REPO_ROOT / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    assert "typed by hand" not in written and written.startswith("intro\n") and written.endswith("after\n")
    assert f"| siamese model | {report['model']['threshold_at_precision_90']:.3f} |" in written


def test_a_changed_metric_changes_its_table():
    report = json.loads((REPO_ROOT / "metrics" / "evaluate.json").read_text(encoding="utf-8"))
    before = tables.thresholds(report).markdown()
    report["model"] = {**report["model"], "threshold_at_precision_90": 0.123456, "threshold_positives": 1000}
    after = tables.thresholds(report).markdown()
    assert "| siamese model | 0.123 |" in after and "1,000 /" in after and before != after


def test_the_transformed_table_shows_fused_beside_every_scorer_evaluate_judged():
    """fused's figures per transform and pooled, as evaluate writes them; a dash only where it scores no pair."""
    rows = [(t, s, r1, auc) for t in ("mirror", "all") for s, r1, auc in
            (("model", 0.8, 0.9), ("phash", 0.0, 0.35), ("fused", 0.75, None))]
    table = tables.transformed(pd.DataFrame(rows, columns=["transform", "scorer", "recall_at_1", "pair_auc"]))
    assert table.header == ("transform", "siamese model: recall@1 / AUC", "pHash: recall@1 / AUC",
                            "fused (calibrated p of model and pHash): recall@1 / AUC")
    assert table.rows == (("mirror", "0.80 / 0.90", "0.00 / 0.35", "0.75 / —"),
                          ("all", "0.80 / 0.90", "0.00 / 0.35", "0.75 / —"))


def test_missing_figures_print_as_a_dash_and_an_unknown_table_fails():
    assert tables.figure(None) == tables.figure(float("nan")) == "—"
    with pytest.raises(SystemExit, match="unknown table"):
        GEN.table("no_such_table")


@pytest.mark.parametrize("path", sorted((REPO_ROOT / "bench" / "results").glob("*.json")), ids=lambda p: p.stem)
def test_every_bench_result_says_where_it_comes_from(path: Path):
    result = json.loads(path.read_text(encoding="utf-8"))
    for table in (result, *tables.bench_parts(result).values()):
        assert table["source"].strip() and table["columns"] and table["rows"]
        assert all(len(row) == len(table["columns"]) for row in table["rows"])


def test_the_shown_dvc_exp_show_output_carries_the_committed_headline():
    """The exp-show block is the real output of the recipe (docs/gen_tables.py --exp-show); its
    figures must be those of metrics/headline.json (DVC prints 5 significant digits)."""
    text = (REPO_ROOT / "docs" / "pipeline.md").read_text(encoding="utf-8")
    block = GEN.EXP_SHOW_MARKED.search(text).group("body")
    lines = [line for line in block.splitlines() if line.strip() and not set(line.strip()) <= set("─`")]
    header, rows = lines[0].split(), [line.split() for line in lines[1:]]
    headline = json.loads((REPO_ROOT / layout.HEADLINE).read_text(encoding="utf-8"))
    assert max(len(line) for line in block.splitlines()) <= GEN.EXP_SHOW_WIDTH
    assert len(header) >= 6 and rows
    for column, cell in zip(header[1:], rows[0][1:]):
        value = headline
        for part in column.split("."):
            value = value[part]
        assert float(cell) == pytest.approx(value, rel=1e-4), column


def test_the_readme_quotes_no_figure_but_its_generated_tables():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert GEN.MARKED.search(readme), "the README's per-transform tables are generated"
    prose = GEN.MARKED.sub("", readme)
    assert not re.findall(r"(?<![\w.])0\.\d\d+", prose), "a figure typed into README.md: generate it"


def test_a_bench_records_its_table_with_the_command_and_commit_that_made_it(tmp_path, monkeypatch):
    from bench import results

    monkeypatch.setattr(results, "RESULTS", tmp_path)
    monkeypatch.setattr(results.sys, "argv", ["bench/serve.py", "--requests", "10"])
    monkeypatch.setattr(results, "commit", lambda: "abc1234")
    path = results.record("serve", ["what", "p50"], [["POST /compare", "12 ms"]], note="RSS 1 MiB")
    written = json.loads(path.read_text(encoding="utf-8"))
    assert written["source"].startswith("python bench/serve.py --requests 10, at commit abc1234, on ")
    assert written["source"].endswith("; RSS 1 MiB")
    assert tables.bench(written).markdown().splitlines()[-1] == "| POST /compare | 12 ms |"
    # This machine's paths (a scratch folder, a path-valued override) leave the recorded command.
    monkeypatch.setattr(results.sys, "argv", ["bench/scale_retrieval.py", "--n", "500", "--work", "/tmp/scratch",
                                              "--json=/tmp/out.json", "-S", "ingest.source=/data/wikiart", "rel/dir"])
    written = json.loads(results.record("serve", ["what"], [["x"]]).read_text(encoding="utf-8"))
    assert written["source"].startswith("python bench/scale_retrieval.py --n 500 --work PATH --json=PATH "
                                        "-S ingest.source=PATH rel/dir, at commit abc1234")
    with pytest.raises(ValueError, match="2 cells"):
        results.record("serve", ["what", "p50"], [["only one"]])


def test_the_growth_bench_projects_each_stage_and_states_its_gaps(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))
    import growth_fit

    def run(count: int, seconds_of: dict, peak_of: dict) -> dict:
        return {"n": count, "revision": "abc", "load": 1.0,
                "stages": {stage: {"seconds": seconds_of[stage](count), "cpu_seconds": seconds_of[stage](count),
                                   "peak_rss_mib": peak_of[stage](count), "failed": False}
                           for stage in seconds_of}}

    seconds_of = {stage: (lambda n: 0.1 * n) for stage in growth_fit.STAGES}
    seconds_of["evaluate"] = lambda n: 1e-4 * n * n  # quadratic
    peak_of = {stage: (lambda n: 500.0) for stage in growth_fit.STAGES}
    peak_of["score"] = lambda n: 0.5 * n  # grows with N
    rows = [run(n, seconds_of, peak_of) for n in (500, 1000)]
    gpu = {stage: {"seconds": 8 * 3600.0, "basis": "assumed"} for stage in growth_fit.GPU_STAGES}
    summary = growth_fit.summarise(rows, gpu)
    table = tables.growth_projection({"projection": growth_fit.projection(summary, [500, 1000])})

    by_stage = {row[0]: row for row in table.rows}
    assert table.header[3:5] == ("peak MiB at 81,444 (linear unless measured)", "projected at 81,444")
    assert by_stage["ingest"][1:] == ("1.00", "500 (N=1,000)", "500", "2.3 h", "1 CPU core", "met")  # 0.1 s x 81,444
    assert by_stage["evaluate"][1] == "2.00" and "exponent 2.00 > 1.1" in by_stage["evaluate"][6]
    assert by_stage["evaluate"][4] == f"{1e-4 * 1000 ** 2 * (81_444 / 1000) ** 2 / 3600:.1f} h"  # from the fit
    assert "peak RSS not flat, 250 MiB at N=500 to 500 MiB at N=1000" in by_stage["score"][6]
    # 0.5 MiB per original: 40,722 MiB at the study's scale
    assert by_stage["score"][3] == "40722" and "peak RSS 39.8 GB > 4 GB at 81,444" in by_stage["score"][6]
    assert by_stage["siamese"][4:6] == ("1.0 h", "8 GPUs")  # a GPU stage: its GPU time over the node's 8 GPUs
    # a peak a bench measured at the study's size replaces the line, and the goal is judged on it
    measured = growth_fit.with_measured_peaks(summary, {"score": (3000.0, "measured at abc1234")})
    by_stage = {row[0]: row for row in tables.growth_projection(
        {"projection": growth_fit.projection(measured, [500, 1000])}).rows}
    assert by_stage["score"][3] == "3000 (measured at abc1234)" and "GB > 4 GB" not in by_stage["score"][6]
    assert by_stage["total"][-1] == "does not fit in one day"  # evaluate's quadratic alone is ~1,500 h

    seconds_of["evaluate"] = lambda n: 0.01 * n
    summary = growth_fit.summarise([run(n, seconds_of, peak_of) for n in (500, 1000)], gpu)
    linear = tables.growth_projection({"projection": growth_fit.projection(summary, [500, 1000])})
    assert linear.rows[-1][-1] == "fits in one day" and linear.rows[-1][5] == "one 8-GPU node"


def _growth_rows(growth_fit, seconds_of: dict, counts=(500, 1000)) -> list[dict]:
    """Measurements as bench/growth.py keeps them: evaluate's held-out queries 0.6 N, all sampled below the cap."""
    return [{"n": n, "revision": "abc", "load": 1.0, "queries": {"queries": 0.6 * n, "sampled_queries": 0.6 * n},
             "stages": {stage: {"seconds": seconds_of(stage, n), "cpu_seconds": seconds_of(stage, n),
                                "peak_rss_mib": 500.0, "failed": False}
                        for stage in [*growth_fit.STAGES, growth_fit.UNSAMPLED]}} for n in counts]


def test_evaluate_is_projected_in_its_two_parts_the_sampled_queries_capped(monkeypatch):
    """Below the cap every held-out query is sampled, so evaluate's straight line through N=500 and 1,000 would
    count the sampled work (SSIM's ranks, the transformed set) for all 48,866 of the study's queries: it counts it
    for the cap's 2,000, beside the unsampled part's own fit; the unsampled row is shown, not added twice."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))
    import growth_fit

    def seconds_of(stage: str, n: int) -> float:
        return {"evaluate": 0.5 * n, growth_fit.UNSAMPLED: 0.1 * n}.get(stage, 0.01 * n)

    rows = _growth_rows(growth_fit, seconds_of)
    gpu = {stage: {"seconds": 3600.0, "basis": "assumed"} for stage in growth_fit.GPU_STAGES}
    by_stage = {entry["stage"]: entry for entry in growth_fit.summarise(rows, gpu, sampled_cap=2000)}
    per_query = (500 - 100) / (600 - 1)  # the sampled part at N=1,000 over its sampled queries (the second run: 1)
    assert by_stage["evaluate"]["projection_s"] == pytest.approx(0.1 * 81_444 + per_query * 2000)
    assert "x 2,000 sampled of 48,866 queries" in by_stage["evaluate"]["basis"]
    total = growth_fit.projection(list(by_stage.values()), [500, 1000])["total_s"]
    assert total == pytest.approx(sum(e["projection_s"] for s, e in by_stage.items() if s != growth_fit.UNSAMPLED))
    uncapped = {e["stage"]: e for e in growth_fit.summarise(rows, gpu, sampled_cap=None)}
    assert uncapped["evaluate"]["projection_s"] == pytest.approx(0.1 * 81_444 + per_query * 0.6 * 81_444)


def test_growth_measurements_are_read_back_from_the_record_and_merged_with_a_new_run(tmp_path, monkeypatch):
    """A scratch workspace does not outlive its machine: growth.json keeps the measurements (or, written before it
    did, its table), so that a run at other sizes keeps N=4,000's."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))
    import growth
    import growth_fit

    rows = _growth_rows(growth_fit, lambda stage, n: 0.01 * n + 1.25, counts=(500, 4000))
    columns, lines = growth_fit.table(growth_fit.summarise(rows, {}), [500, 4000])
    legacy = tmp_path / "growth.json"
    legacy.write_text(json.dumps({"source": "python bench/growth.py; measured at the commit N=500: f3207fd, "
                                            "N=4000: 5ebb39e; mean 1-minute load average over the stages' starts "
                                            "and ends N=500: 2.7, N=4000: 6.0; gaps: none",
                                  "columns": columns, "rows": lines}))
    read = {row["n"]: row for row in growth.recorded_measurements(legacy)}
    assert (read[4000]["revision"], read[4000]["load"], read[500]["revision"]) == ("5ebb39e", 6.0, "f3207fd")
    assert read[4000]["stages"]["ingest"]["cpu_seconds"] == pytest.approx(41.25, abs=0.05)
    assert growth_fit.UNSAMPLED not in read[4000]["stages"]  # a part, not a stage of the pipeline
    legacy.write_text(json.dumps({"measurements": rows}))
    assert growth.recorded_measurements(legacy) == rows
    new = _growth_rows(growth_fit, lambda stage, n: 0.02 * n, counts=(500, 1000))
    assert [(r["n"], r["stages"]["ingest"]["cpu_seconds"]) for r in growth.merged(rows, new)] == [
        (500, 10.0), (1000, 20.0), (4000, 41.25)]


def test_a_part_of_a_bench_result_is_recorded_beside_its_table_and_neither_run_drops_the_other(tmp_path, monkeypatch):
    """bench/search.py --synthetic and --real record one result in separate runs (hours apart): each keeps the
    other's figures, and the docs show each with the command that measured it."""
    from bench import results

    monkeypatch.setattr(results, "RESULTS", tmp_path / "bench" / "results")
    monkeypatch.setattr(GEN, "ROOT", tmp_path)
    monkeypatch.setattr(results, "commit", lambda: "abc1234")
    results.RESULTS.mkdir(parents=True)

    def run(argv: list[str], *args, **kwargs) -> dict:
        monkeypatch.setattr(results.sys, "argv", argv)
        return json.loads(results.record("search", *args, **kwargs).read_text(encoding="utf-8"))

    synthetic = ["bench/search.py", "--synthetic", "100000:512"]
    run(synthetic, ["originals", "p50 ms"], [["100,000", "6.3"]], extra={"profile_ms": {"100000x512": 1}})
    written = run(["bench/search.py", "--real", "20000"], ["step", "figure"], [["first build", "612 s"]],
                  part="real", extra={"figures": {"n": 20000}})
    assert written["rows"] == [["100,000", "6.3"]] and written["profile_ms"] == {"100000x512": 1}
    assert written["source"].startswith("python bench/search.py --synthetic 100000:512, at commit abc1234")
    assert written["real"]["rows"] == [["first build", "612 s"]] and written["real"]["figures"] == {"n": 20000}
    assert written["real"]["source"].startswith("python bench/search.py --real 20000, at commit abc1234")
    # The synthetic figures measured again: the real part stays, the synthetic extras are the new run's.
    written = run(synthetic, ["originals", "p50 ms"], [["100,000", "5.9"]], extra={"profile_ms": {}})
    assert written["rows"] == [["100,000", "5.9"]] and written["profile_ms"] == {}
    assert written["real"]["rows"] == [["first build", "612 s"]]
    assert set(tables.bench_parts(written)) == {"real"}

    real, synthetic_table = GEN.table("bench/search/real"), GEN.table("bench/search")
    assert "| first build | 612 s |" in real and "5.9" not in real
    assert "`bench/results/search.json`, `real`; measured by: python bench/search.py --real 20000," in real
    assert "| 100,000 | 5.9 |" in synthetic_table and "first build" not in synthetic_table
    assert "measured by: python bench/search.py --synthetic 100000:512," in synthetic_table
    with pytest.raises(SystemExit, match="the parts of bench/search: \\['real'\\]"):
        GEN.table("bench/search/no_such_part")


def test_a_stage_measured_again_is_named_with_the_last_commit_that_measured_it(monkeypatch):
    """growth --from-stage: an earlier remeasure of the same stages (or one cut short) no longer describes them."""
    monkeypatch.syspath_prepend(str(REPO_ROOT / "bench"))
    import growth

    again = growth.revision_note("dc61336, evaluate on at b62dec0, evaluate on at 81ae1f6", "evaluate", "23a928b")
    assert again == "dc61336, evaluate on at 23a928b"
    assert growth.revision_note("dc61336", "siamese", "abc1234") == "dc61336, siamese on at abc1234"
    earlier_stage = growth.revision_note("dc61336, siamese on at abc1234", "evaluate", "def5678")
    assert earlier_stage == "dc61336, siamese on at abc1234, evaluate on at def5678"
    later_stage = growth.revision_note("dc61336, evaluate on at def5678", "siamese", "0a1b2c3")
    assert later_stage == "dc61336, siamese on at 0a1b2c3"
