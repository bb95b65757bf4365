"""Reading model configs back from their dict form (checkpoints, YAML): the one check both
:class:`pycodec.models.MDVDConfig` and :class:`pycodec.models.KeyframesConfig` make."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def checked_mapping(cls: type, d: Any, what: str) -> dict[str, Any]:
    """A copy of ``d`` after checking it is a mapping whose keys are fields of the dataclass ``cls``
    (missing keys take the defaults; an unknown key is an error naming the known ones)."""
    if not isinstance(d, dict):
        raise ValueError(f"the {what} config must be a mapping, got {type(d).__name__}")  # noqa: TRY004
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {what} config keys {unknown}; known keys: {sorted(known)}")
    return dict(d)
