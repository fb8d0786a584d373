"""Templates over a painting's metadata: SDXL prompts and `import` file-name patterns.

Templates use Python's `str.format` syntax. Their fields and format specs are checked when
params are validated, so a typo such as `{titel}` or `{year:04d}` fails before any work
instead of on the first image. A metadata value is only ever inserted, never interpreted:
templates may not nest fields in a format spec or use conversions.
"""
from __future__ import annotations

import glob
import re
import string
from pathlib import PurePosixPath
from typing import Any, Iterable, Mapping

from artsim.core.shards import cell_text

# Metadata fields of the ingested manifest a prompt may use; `caption` is an optional
# column a user may add to a dataset (e.g. BLIP-2 captions).
PROMPT_FIELDS = frozenset({"artist", "title", "style", "genre", "year", "caption"})
OPTIONAL_FIELDS = frozenset({"caption"})
# Fields of an `import` file-name template: the metadata, plus where the original came from.
IMPORT_FIELDS = PROMPT_FIELDS | {"id", "hash", "stem", "source_path", "source_dir", "strength"}


# A format spec is checked against a sample of its field's type: `{year:>4}` and
# `{strength:.2f}` pass, `{year:04d}` (year is text) fails at validation, not on the first image.
NUMBER_FIELDS = frozenset({"strength"})
SPECS_ALLOWED = (
    "text fields take string specs such as {title:.40} or {year:>4}, {strength} number specs such as {strength:.2f}"
)


def check_template(template: str, allowed: Iterable[str]) -> set[str]:
    """The fields `template` uses; ValueError naming the first field, conversion or format spec not allowed.

    No conversion (`!r`) and no field inside a format spec (`{title:{style}}`): either would
    let a metadata value change how another is written.
    """
    allowed = frozenset(allowed)
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"not a valid template ({exc}): {template!r}") from None
    used: set[str] = set()
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in allowed:
            raise ValueError(f"unknown field {{{name}}} in {template!r}; allowed: {', '.join(sorted(allowed))}")
        if conversion:
            raise ValueError(
                f"conversion !{conversion} in {{{name}!{conversion}}} is not allowed; write the field alone: {{{name}}}"
            )
        _check_spec(name, spec)
        used.add(name)
    return used


def _check_spec(name: str, spec: str) -> None:
    if "{" in spec or "}" in spec:
        raise ValueError(f"format spec {{{name}:{spec}}} may not hold fields; {SPECS_ALLOWED}")
    try:
        format(0.5 if name in NUMBER_FIELDS else "text", spec)
    except ValueError as exc:
        raise ValueError(f"format spec {{{name}:{spec}}} does not suit the field ({exc}); {SPECS_ALLOWED}") from None


def check_import_template(template: str) -> set[str]:
    """check_template for `import`, and the template must be a relative path of named components."""
    used = check_template(template, IMPORT_FIELDS)
    sample = template.format(**{name: 0.5 if name in NUMBER_FIELDS else "x" for name in IMPORT_FIELDS})
    problem = _path_problem(sample)
    if problem:
        raise ValueError(
            f"{template!r} must be a relative path whose components are not empty, '.' or '..' "
            f"({problem} with sample values)"
        )
    return used


def missing_columns(
    templates: Iterable[str], columns: Iterable[str], allowed: Iterable[str] = PROMPT_FIELDS
) -> list[str]:
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
    values = {name: cell_text(row.get(name)).strip() for name in PROMPT_FIELDS}
    for name in ("style", "genre"):
        values[name] = values[name].replace("_", " ")
    text = template.format(**values)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,(\s*,)+", ",", text)
    text = re.sub(r"\s+,", ",", text)
    return text.strip(" ,;:")


class UnusablePath(ValueError):
    """A row's values make an import pattern that could name files outside the import folder."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def import_pattern(template: str, row: Mapping[str, Any], strength: float) -> str:
    """A glob pattern, relative to the import folder, for the variants of one original.

    Metadata values are glob-escaped (titles contain brackets); the template's own `*`, `?`
    and `[...]` stay wildcards, so one template can match several variants. A value never
    adds a folder level (its `/`, `\\` and NUL become `_`) and is never `.` or `..`;
    `source_path` and `source_dir` keep their levels but may not climb out. UnusablePath
    when a row breaks these rules or an empty value leaves a path component empty.
    """
    source = PurePosixPath(_PATH_UNSAFE_CHARS.sub("_", cell_text(row.get("source_path")).strip()))
    used = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    if used & {"source_path", "source_dir"} and (source.is_absolute() or ".." in source.parts):
        raise UnusablePath("path_escapes_root", f"source_path {str(source)!r} leaves its folder")
    values: dict[str, Any] = {
        "source_path": glob.escape(str(source)),
        "source_dir": glob.escape(str(source.parent)),  # "." for a file at the source's root: harmless
        "strength": strength,
    }
    # Only the fields the template uses: a "." title must not fail a template without {title}.
    values.update(
        (name, _component(name, source.stem if name == "stem" else row.get(name))) for name in used - values.keys()
    )
    pattern = template.format(**values)
    components = pattern.split("/")
    if "" in components:
        raise UnusablePath("empty_path_component", f"{pattern!r}: an empty field leaves a path component empty")
    if ".." in components:  # unreachable by the rules above; kept as the last line of defence
        raise UnusablePath("path_escapes_root", f"{pattern!r}: '..' cannot be a path component")
    return pattern


# What a value may not bring into a file-name pattern: separators (POSIX and Windows) and NUL.
_UNSAFE_CHARS = re.compile(r"[/\\\0]")
_PATH_UNSAFE_CHARS = re.compile(r"[\\\0]")  # source_path keeps its "/"


def _component(name: str, value: Any) -> str:
    text = _UNSAFE_CHARS.sub("_", cell_text(value).strip())
    if text in (".", ".."):
        reason = "path_escapes_root" if text == ".." else "empty_path_component"
        raise UnusablePath(reason, f"{name} is {text!r}, which cannot be a path component")
    return glob.escape(text)


def _path_problem(pattern: str) -> str | None:
    """What is wrong with a path pattern that has an empty, `.` or `..` component (a leading `/` is an empty one)."""
    for component in pattern.split("/"):
        if component in ("", ".", ".."):
            return f"{pattern!r} has the path component {component!r}"
    return None
