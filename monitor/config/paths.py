"""Key paths into monitor.yaml (``models[0].thresholds.psi``) and the lines they are written on."""

from __future__ import annotations

#: Mapping keys and sequence indexes from the top of the document down to one value.
PathKey = tuple[str | int, ...]


def line_for(loc: PathKey, lines: dict[PathKey, int]) -> int | None:
    """The line of the key path, or of its nearest written ancestor (for a missing key)."""
    for end in range(len(loc), -1, -1):
        key = tuple(str(p) if not isinstance(p, int) else p for p in loc[:end])
        if key in lines:
            return lines[key]
    return None


def format_path(loc: PathKey) -> str:
    """``("models", 0, "task")`` as ``models[0].task``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
