"""Marked regions of a Markdown file: text a program writes between two HTML comments.

A region named ``bench:ingest`` is everything between the lines ``<!-- bench:ingest:begin -->``
and ``<!-- bench:ingest:end -->``; the markers themselves stay. The text around the regions is
written by hand and never touched, so a page mixes prose with tables a script keeps current.

>>> page = "intro\\n<!-- t:begin -->\\nold\\n<!-- t:end -->\\noutro\\n"
>>> replace_region(page, "t", "| a |\\n| - |\\n")
'intro\\n<!-- t:begin -->\\n| a |\\n| - |\\n<!-- t:end -->\\noutro\\n'
>>> read_region(replace_region(page, "t", "new"), "t")
'new\\n'
"""

from __future__ import annotations

import re
from pathlib import Path


class RegionError(ValueError):
    """A region's markers are missing, repeated or out of order."""


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->\n", f"<!-- {name}:end -->\n"


def _span(text: str, name: str) -> tuple[int, int]:
    """Where the region's content starts and ends in ``text``."""
    begin, end = _markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise RegionError(
            f"region {name!r}: need exactly one {begin.strip()} and one {end.strip()}"
        )
    start = text.index(begin) + len(begin)
    stop = text.index(end)
    if stop < start:
        raise RegionError(f"region {name!r}: its end marker comes before its begin marker")
    return start, stop


def _block(content: str) -> str:
    return content if content.endswith("\n") or not content else content + "\n"


def read_region(text: str, name: str) -> str:
    """The content of region ``name`` (ending with a newline unless empty)."""
    start, stop = _span(text, name)
    return text[start:stop]


def replace_region(text: str, name: str, content: str) -> str:
    """``text`` with region ``name`` holding ``content``; everything else unchanged."""
    start, stop = _span(text, name)
    return text[:start] + _block(content) + text[stop:]


def region_names(text: str) -> list[str]:
    """The names of the regions ``text`` opens, in order."""
    return re.findall(r"^<!-- (\S+):begin -->$", text, re.M)


def write_region(path: Path, name: str, content: str) -> bool:
    """Put ``content`` into region ``name`` of the file; whether the file changed."""
    text = path.read_text()
    updated = replace_region(text, name, content)
    if updated != text:
        path.write_text(updated)
    return updated != text
