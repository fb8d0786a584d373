"""The dataset card (README.md): a YAML header the Hub and `datasets` read (configs with their
data files, features, splits with their sizes) and a body for people: counts, how the variants
were made, the params of the run, licences per source, what was left out, how to load and cite.
Every figure in it comes from the export itself; nothing depends on the date or the machine."""
from __future__ import annotations

from collections import Counter
from typing import Any

import yaml

from artsim import __version__
from artsim.export.exported import Exported, ExportReport
from artsim.export.features import card_features
from artsim.export.tables import SPLITS

CARD = "README.md"
# The Hub's size_categories, by the number of images (originals and variants).
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"))


def dataset_card(report: ExportReport) -> str:
    header = yaml.safe_dump(_header(report), sort_keys=False, allow_unicode=True, width=1000)
    return f"---\n{header}---\n\n" + "\n\n".join(part(report) for part in BODY) + "\n"


def _header(report: ExportReport) -> dict[str, Any]:
    images = sum(report.configs[name].count() for name in ("originals", "variants"))
    present = _present(report)
    return {
        "pretty_name": "artsim: paintings and their generated variants",
        "license": "other",
        "license_name": "per-source",
        "license_details": "Each original carries its own licence and source (columns license, source); see Licences.",
        "tags": ["art", "image-similarity", "image-to-image", "artsim"],
        "task_categories": ["image-to-image", "image-classification"],
        "size_categories": [next((label for limit, label in SIZE_CATEGORIES if images < limit), "10M<n<100M")],
        # Only splits with rows: `datasets` cannot load an empty one (the Contents table shows the zeros).
        "configs": [{"config_name": name, **({"default": True} if name == next(iter(present)) else {}),
                     "data_files": [{"split": split, "path": f"{name}/{split}-*.parquet"} for split in splits]}
                    for name, splits in present.items()],
        "dataset_info": [_info(name, report.configs[name], splits) for name, splits in present.items()],
    }


def _present(report: ExportReport) -> dict[str, list[str]]:
    """Config -> its splits that hold rows, for the configs that hold any."""
    present = {name: [split for split in SPLITS if exported.count(split)] for name, exported in report.configs.items()}
    return {name: splits for name, splits in present.items() if splits}


def _info(name: str, exported: Exported, splits: list[str]) -> dict[str, Any]:
    size = sum(exported.splits[split].bytes for split in splits)
    return {
        "config_name": name,
        "features": card_features(exported.table.columns),
        "splits": [{"name": split, "num_bytes": exported.splits[split].bytes,
                    "num_examples": exported.splits[split].rows} for split in splits],
        "download_size": size,
        "dataset_size": size,
    }


def _counts(report: ExportReport) -> str:
    rows = [f"| {name} | " + " | ".join(str(exported.count(split)) for split in SPLITS) + f" | {exported.count()} |"
            for name, exported in report.configs.items()]
    return "\n".join(["## Contents", "",
                      "Originals are the ingested paintings; variants are images generated from them; pairs join",
                      "an original and a variant (its own: `positive`, or another painting's) with their similarity",
                      "scores. A split without rows has no files and is not listed in the header's `configs`",
                      "(`datasets` loads no empty split).", "",
                      "| config | " + " | ".join(SPLITS) + " | total |", "|---|" + "---:|" * (len(SPLITS) + 1), *rows])


def _generation(report: ExportReport) -> str:
    variants = report.configs["variants"].rows
    made = Counter(zip(variants["backend"], variants["model"]))
    lines = ["## How the variants were made", ""]
    if not made:
        return "\n".join(lines + ["This workspace has no generated variants."])
    lines += ["| backend | model | revision | variants |", "|---|---|---|---:|"]
    for (backend, model), count in sorted(made.items()):
        name, _, revision = model.partition("@")  # the pipeline records a hub model as id@revision
        lines.append(f"| {backend} | {name} | {revision or '-'} | {count} |")
    strengths = sorted(set(variants["strength"]))
    lines += ["", f"Strengths: {', '.join(f'{s:g}' for s in strengths)}. "
              "Each variant's seed and prompt are in its row."]
    return "\n".join(lines)


def _params(report: ExportReport) -> str:
    lines = ["## Parameters of the run", ""]
    params = report.provenance.params
    if not params:
        return "\n".join(lines + ["Unknown: the workspace has no dvc.lock recording the run."])
    lines.append("As `dvc.lock` recorded them for the stages that made this data:")
    recorded = {key: value for values in params.values() for key, value in values.items()}  # keys name their stage
    lines += ["", "```yaml", yaml.safe_dump(recorded, sort_keys=True, allow_unicode=True, width=1000).rstrip(), "```"]
    if report.provenance.outputs:
        outputs = sorted(report.provenance.outputs.items())
        lines += ["", "Outputs (DVC md5): " + ", ".join(f"`{path}` {md5}" for path, md5 in outputs)]
    return "\n".join(lines)


def _licences(report: ExportReport) -> str:
    originals = report.configs["originals"].rows
    found = Counter(zip(originals["source"], originals["license"]))
    lines = ["## Licences", "", "Per source of the originals (columns `source` and `license` of each row):", "",
             "| source | licence | originals |", "|---|---|---:|"]
    lines += [f"| {source or 'not recorded'} | {licence or 'not recorded'} | {count} |"
              for (source, licence), count in sorted(found.items())]
    lines += ["", "A variant is derived from its original (and, for style transfer, from the painting whose style it",
              "takes: `style_source_id`): its use is bound by theirs and by the terms of the model that made it."]
    return "\n".join(lines)


def _left_out(report: ExportReport) -> str:
    reasons = Counter((skipped.table, skipped.reason) for skipped in report.skipped)
    lines = ["## Left out", ""]
    if not reasons:
        return "\n".join(lines + ["Nothing: every image and pair of the workspace is in the export."])
    lines += ["| config | reason | rows |", "|---|---|---:|"]
    lines += [f"| {table} | {reason} | {count} |" for (table, reason), count in sorted(reasons.items())]
    return "\n".join(lines)


def _usage(report: ExportReport) -> str:
    return "\n".join(["## Loading", "", "```python", "from datasets import load_dataset", "",
                      'originals = load_dataset("path/to/this/folder", "originals")  # or "variants", "pairs"',
                      'variants = load_dataset("parquet", data_files={"train": "variants/train-*.parquet"},',
                      '                        split="train", streaming=True)  # shard by shard',
                      "```", "",
                      "Pairs name their images by id: `original_id` is an original's `id`, `generated_id` a",
                      "variant's."])


def _citation(report: ExportReport) -> str:
    return "\n".join(["## Citation", "",
                      f"Exported by artsim {__version__} (`artsim export dataset`). Cite the sources of the originals",
                      "and the model that made the variants as their authors ask, and this export as:", "", "```bibtex",
                      "@misc{artsim_export,", "  title = {artsim: paintings and their generated variants},",
                      f"  note = {{Exported with artsim {__version__}}},", "}", "```"])


def _title(report: ExportReport) -> str:
    return ("# artsim: paintings and their generated variants\n\n"
            "Paintings, image-to-image variants made from them, and pairs scored for similarity, exported from an "
            "artsim workspace.")


BODY = (_title, _counts, _generation, _params, _licences, _left_out, _usage, _citation)
