"""Backend `import`: adopt variants generated elsewhere (e.g. the published SDXL-refiner
variants of WikiArt) instead of computing them.

`generate.import_template` maps each original to its variant file(s) under
`generate.import_dir` (e.g. `{style}/{stem}_resize768_generated.jpg`); wildcards may match
several. Strength and model are recorded from params. A variant's key includes the adopted
file's content hash, so replacing a file re-imports it. Originals without a variant are
reported, not fatal.

Metadata is untrusted: every adopted file must resolve inside the import folder (the rule
ingest applies to a source). A row whose values would reach outside it (`..`, an absolute
path, an empty folder name, a symlink out) is refused and reported per original with the
reason (`path_escapes_root`, `empty_path_component`, `link_outside_source`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import pandas as pd

from artsim.core.distributed import Ranks
from artsim.core.images import MAX_FILE_BYTES, ImageFile, ImageRejected, content_hash, load_rgb, read_regular_file
from artsim.core.paths import PathRefused, resolve_inside
from artsim.generate.backends import register
from artsim.generate.backends.base import AdoptedFile, Failure, Output, ParamsProblem, Plan
from artsim.generate.prompts import UnusablePath, check_import_template, import_pattern
from artsim.generate.variants import Variant, variant_key
from artsim.params import GenerateParams

log = logging.getLogger(__name__)

BACKEND = "import"
JPEG_MAGIC = b"\xff\xd8\xff"


def plan_import(
    originals: pd.DataFrame, config: GenerateParams, seed: int
) -> tuple[list[Variant], list[str], list[Failure]]:
    """The variants found for each original, the ids of originals with none, and the refusals."""
    assert config.import_dir is not None  # GenerateParams requires it for this backend
    root = Path(config.import_dir)
    variants: list[Variant] = []
    unmatched: list[str] = []
    refused: list[Failure] = []
    for row in sorted(originals.to_dict("records"), key=lambda r: r["id"]):
        refused_before = len(refused)
        found = [
            variant
            for strength in config.strengths
            for variant in _find(root, config, row, float(strength), seed, refused)
        ]
        variants.extend(found)
        if not found and len(refused) == refused_before:
            unmatched.append(row["id"])
    return variants, unmatched, refused


def _find(
    root: Path, config: GenerateParams, row: Mapping[str, Any], strength: float, seed: int, refused: list[Failure]
) -> list[Variant]:
    """The variants of one original at one strength; what is refused is added to `refused`."""
    try:
        pattern = import_pattern(config.import_template, row, strength)
    except UnusablePath as exc:
        _refuse(refused, Failure("", row["id"], strength, exc.reason, exc.detail))
        return []
    try:
        matches = sorted(p for p in root.glob(pattern) if p.is_file())
    except OSError as exc:  # e.g. a 300-character title: "File name too long"
        _refuse(refused, Failure("", row["id"], strength, "unreadable_path", f"{pattern!r}: {exc.strerror or exc}"))
        return []
    found = []
    for path in matches:
        source = path.relative_to(root).as_posix()
        checked = resolve_inside(root, source)
        if isinstance(checked, PathRefused):  # checked before the file is read (hashed)
            _refuse(refused, Failure("", row["id"], strength, checked.reason, f"{source} {checked.detail}"))
            continue
        try:  # a regular file of a sane size only: never blocks on a FIFO, never reads 3 GB
            source_hash = content_hash(read_regular_file(path, MAX_FILE_BYTES))
        except (ImageRejected, OSError) as exc:
            reason, detail = (
                (exc.reason, exc.detail) if isinstance(exc, ImageRejected) else ("unreadable_path", str(exc))
            )
            _refuse(refused, Failure("", row["id"], strength, reason, f"{source} {detail}"))
            continue
        key = variant_key({
            "backend": BACKEND,
            "model": config.model,
            "original": row["hash"],
            "strength": strength,
            "source": source,
            "content": source_hash,
            "jpeg_quality": config.jpeg_quality,
        })
        found.append(
            Variant(
                key=key,
                original_id=row["id"],
                strength=strength,
                backend=BACKEND,
                model=config.model,
                seed=seed,
                source=source,
                source_hash=source_hash,
            )
        )
    return found


def _refuse(refused: list[Failure], failure: Failure) -> None:
    refused.append(failure)
    log.warning(
        "original %s (strength %g): import refused, %s: %s",
        failure.original_id,
        failure.strength,
        failure.reason,
        failure.detail,
    )


class ImportBackend:
    def __init__(self, import_dir: Path) -> None:
        self.import_dir = Path(import_dir)

    def load(self, variant: Variant) -> tuple[Path, bytes, object]:
        # Checked again: the folder may have changed (a file swapped for a link) since planning.
        path = resolve_inside(self.import_dir, variant.source)
        if isinstance(path, PathRefused):
            raise ImageRejected(path.reason, path.detail)
        data = read_regular_file(path, MAX_FILE_BYTES)  # read once: the bytes stored are the bytes checked
        if content_hash(data) != variant.source_hash:
            raise ImageRejected(
                "changed_since_planning", f"{variant.source} no longer has the content its key was made from"
            )
        return path, data, load_rgb(data)  # an undecodable file is reported like a broken original

    def batch_group(self, variant: Variant) -> Hashable:
        return None

    def render(self, variants: Sequence[Variant], inputs: Sequence[tuple[Path, bytes, object]]) -> list[Output]:
        # A JPEG is kept byte for byte (re-encoding would lose quality), by a link where the
        # store can make one (no second copy); other formats are stored as JPEG from their pixels.
        return [AdoptedFile(path, data) if data.startswith(JPEG_MAGIC) else image for path, data, image in inputs]  # type: ignore[misc]

    def recover(self) -> None:
        pass


class Import:
    """The registry's entry for backend `import`."""

    name = BACKEND

    def check_params(self, config: GenerateParams) -> list[ParamsProblem]:
        problems = []
        if config.import_dir is None or not config.import_dir.is_dir():
            problems.append(
                (
                    "import_dir",
                    f"backend import needs an existing folder of generated images (got {config.import_dir!r})",
                )
            )
        try:
            several_unnamed = (
                "strength" not in check_import_template(config.import_template) and len(config.strengths) > 1
            )
        except ValueError:
            several_unnamed = False  # reported by the template check every backend gets
        if several_unnamed:
            problems.append(
                (
                    "import_template",
                    "with several strengths the template must tell them apart with {strength} "
                    f"(got {config.import_template!r})",
                )
            )
        return problems

    def check_inputs(self, config: GenerateParams, originals: pd.DataFrame) -> None:
        pass  # every original is looked for; one without a file is reported, not fatal

    def open(self, config: GenerateParams, originals: Mapping[str, ImageFile], ranks: Ranks) -> ImportBackend:
        assert config.import_dir is not None  # check_params requires it
        return ImportBackend(config.import_dir)

    def plan(self, config: GenerateParams, originals: pd.DataFrame, seed: int, renderer: object) -> Plan:
        variants, unmatched, refused = plan_import(originals, config, seed)
        return Plan(variants, unmatched=unmatched, unplanned=refused)


register(Import())
