"""Text for people on the sample: every line of compare, search, index and info at most TEXT_WIDTH columns
(a lone path longer than that excepted), no figure with more than 3 significant digits; `info --json` keeps
every figure at full precision (a small untrained model, seconds)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from artsim.app.cli import main
from artsim.app.render import TEXT_WIDTH, figure
from artsim.core import layout
from tests.support.helpers import SAMPLE_DIR

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DECIMAL = re.compile(r"(?<![\w.])-?(\d*\.\d+)(?:e[-+]?\d+)?")
# What the pipeline writes, at full float precision (as metrics/*.json hold them).
FINETUNE = {"best_epoch": 7, "test_accuracy": 0.42857142857142855, "test_macro_f1": 0.19999999999999998,
            "test_majority_accuracy": 0.2857142857142857, "test_top5_accuracy": None, "train_loss": 0.9788892269134521}
SIAMESE = {"best_epoch": 7, "train_mse": 0.0005695465643999769, "val_baseline_mse": 0.07779189572233679,
           "val_mse": 0.020558303594589232}
EVALUATE = {"mse": 0.02294148038655009, "r2": 0.7174960084900903, "spearman": 0.8773195040920508,
            "baseline_mse": 0.08192312354309828, "n_test_pairs": 42,
            "model": {"mrr": 0.8981481481481481, "pair_auc": 0.9863945578231292, "recall_at_1": 0.8571428571428571}}


def significant_digits(number: str) -> int:
    return len(number.replace(".", "").lstrip("0"))


def assert_for_people(text: str) -> None:
    for line in text.splitlines():
        assert len(line) <= TEXT_WIDTH or (" " not in line and Path(line).suffix), line
        assert all(significant_digits(m) <= 3 for m in DECIMAL.findall(line)), line



@pytest.fixture()
def at_sample(monkeypatch, tmp_path) -> Path:
    """Run where the sample is, naming its images as a user there would (relative paths)."""
    monkeypatch.setenv("ARTSIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(SAMPLE_DIR)
    return SAMPLE_DIR


def run_cli(capsys, *args: str) -> tuple[int, str]:
    status = main(list(args))
    return status, capsys.readouterr().out


def test_compare_search_and_index_text_fit_100_columns_and_3_digits(capsys, at_sample, model_dir, tmp_path):
    images = sorted(str(p.relative_to(at_sample)) for p in at_sample.rglob("*.jpg"))
    status, out = run_cli(capsys, "compare", images[0], images[-1], "--model", str(model_dir))
    assert status == 0 and "descriptor score" in out
    assert_for_people(out)
    longest = max(images, key=len)  # its path alone is over 100 columns: on a line of its own
    status, out = run_cli(capsys, "search", images[0], longest, "--originals", ".", "--model", str(model_dir),
                          "--top-k", "29")
    assert status == 0 and out.count("\nquery") == 1 and f"query\n{longest}\n" in out
    assert_for_people(out)
    status, out = run_cli(capsys, "index", ".", "--out", str(tmp_path / "index"), "--model", str(model_dir))
    assert status == 0 and "embedded" in out
    assert_for_people(out)


def sample_workspace(folder: Path) -> Path:
    """What `artsim info` reads of a workspace after `dvc repro` on the sample (no model trained here)."""
    metadata = pd.read_csv(SAMPLE_DIR / "metadata.csv")
    (folder / layout.INGESTED).mkdir(parents=True)
    metadata.assign(split=["train", "val", "test"] * (len(metadata) // 3) + ["train"] * (len(metadata) % 3)).to_parquet(
        folder / layout.INGESTED / layout.MANIFEST)
    for name, metrics in (("finetune", FINETUNE), ("siamese", SIAMESE), ("evaluate", EVALUATE)):
        (folder / layout.metrics_json(name)).parent.mkdir(exist_ok=True)
        (folder / layout.metrics_json(name)).write_text(json.dumps(metrics))
    for name in layout.MODELS.values():
        (folder / name).mkdir(parents=True)
        (folder / name / "model.safetensors").write_bytes(b"")
    return folder


def test_info_is_a_short_summary_and_its_json_keeps_every_figure(capsys, tmp_path):
    workspace = sample_workspace(tmp_path / "workspace")
    status, text = run_cli(capsys, "info", "--workspace", str(workspace), "--no-status")
    assert status == 0 and len(text.splitlines()) <= 12
    assert_for_people(text)
    assert f"val_mse {figure(SIAMESE['val_mse'])}" in text and "test_accuracy 0.429" in text
    status, out = run_cli(capsys, "info", "--workspace", str(workspace), "--no-status", "--json")
    info = json.loads(out)
    assert info["models"]["siamese"]["metrics"] == SIAMESE and info["models"]["finetune"]["metrics"] == FINETUNE
    assert info["models"]["siamese"]["test_metrics"]["model"] == EVALUATE["model"]


@pytest.mark.parametrize(("value", "shown"), [(0.42857142857142855, "0.429"), (0.0005695465643999769, "0.00057"),
                                              (0.9999, "1"), (123.456, "123"), (12345.6, "12300"), (42, "42"),
                                              (None, "None"), (float("nan"), "nan")])
def test_a_figure_has_3_significant_digits(value, shown):
    assert figure(value) == shown
