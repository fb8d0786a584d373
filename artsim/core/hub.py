"""Telling a model hub id ("owner/name") from a local folder, for keys that take either."""
from __future__ import annotations

import re
from pathlib import Path

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def looks_like_hub_id(name: str | None) -> bool:
    """Whether `name` names a hub repository ("owner/name") rather than a local folder."""
    return bool(name) and not Path(name).exists() and HUB_ID.fullmatch(name) is not None  # type: ignore[arg-type]
