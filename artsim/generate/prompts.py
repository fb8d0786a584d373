"""Templates over a painting's metadata: SDXL prompts and `import` file-name patterns.

Templates use Python's `str.format` syntax. Their fields are checked when params are
validated, so a typo such as `{titel}` fails before any work instead of on the first image.
"""
from __future__ import annotations

import glob
import re
import string
from pathlib import PurePosixPath
from typing import Any, Iterable, Mapping

import pandas as pd

# Metadata fields of the ingested manifest a prompt may use; `caption` is an optional
# column a user may add to a dataset (e.g. BLIP-2 captions).
PROMPT_FIELDS = frozenset({"artist", "title", "style", "genre", "year", "caption"})
OPTIONAL_FIELDS = frozenset({"caption"})
# Fields of an `import` file-name template: the metadata, plus where the original came from.
IMPORT_FIELDS = PROMPT_FIELDS | {"id", "hash", "stem", "source_path", "source_dir", "strength"}


def check_template(template: str, allowed: Iterable[str]) -> set[str]:
    """The fields `template` uses; ValueError naming the first field not in `allowed`."""
    allowed = frozenset(allowed)
    used: set[str] = set()
    pending = [template]
    while pending:
        try:
            parsed = list(string.Formatter().parse(pending.pop()))
        except ValueError as exc:
            raise ValueError(f"not a valid template ({exc}): {template!r}") from None
        for _, name, spec, _ in parsed:
            if name is None:
                continue
            if name not in allowed:
                raise ValueError(f"unknown field {{{name}}} in {template!r}; allowed: {', '.join(sorted(allowed))}")
            used.add(name)
            if spec:
                pending.append(spec)  # a format spec may itself hold fields: {year:>{width}}
    return used


def missing_columns(templates: Iterable[str], columns: Iterable[str], allowed: Iterable[str] = PROMPT_FIELDS) -> list[str]:
    """Optional metadata columns the templates use that the manifest lacks."""
    have = set(columns)
    used = set().union(*(check_template(t, allowed) for t in templates))
    return sorted((used & OPTIONAL_FIELDS) - have)


def render_prompt(template: str, row: Mapping[str, Any]) -> str:
    """The prompt for one painting.

    WikiArt labels are slugs (`Northern_Renaissance`, `genre_painting`): they read as words
    in a prompt. An empty field leaves no dangling separator (`..., , 1876` -> `..., 1876`).
    """
    if not template:
        return ""
    values = {name: _text(row.get(name)) for name in PROMPT_FIELDS}
    for name in ("style", "genre"):
        values[name] = values[name].replace("_", " ")
    text = template.format(**values)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r"\s+,", ",", text)
    return text.strip(" ,;:")


def import_pattern(template: str, row: Mapping[str, Any], strength: float) -> str:
    """A glob pattern, relative to the import folder, for the variants of one original.

    Metadata values are glob-escaped (titles contain brackets); the template's own `*`, `?`
    and `[...]` stay wildcards, so one template can match several variants.
    """
    source = PurePosixPath(str(row.get("source_path") or ""))
    values: dict[str, Any] = {name: glob.escape(_text(row.get(name))) for name in PROMPT_FIELDS | {"id", "hash"}}
    values.update(
        stem=glob.escape(source.stem),
        source_path=glob.escape(str(source)),
        source_dir=glob.escape(str(source.parent)),
        strength=strength,
    )
    return template.format(**values)


def _text(value: Any) -> str:
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return ""
    return str(value).strip()
