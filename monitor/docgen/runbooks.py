"""The index of the runbook pages: one link per ``docs/runbooks/*.md`` page but the index, titled
by the page's first heading, so a new page is listed as soon as it exists."""

from __future__ import annotations

from pathlib import Path


def _title(page: Path) -> str:
    for line in page.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return page.stem


def runbook_index(directory: Path) -> str:
    """A Markdown list linking every runbook page in ``directory``, by file name."""
    pages = sorted(p for p in directory.glob("*.md") if p.name != "index.md")
    if not pages:
        return "No runbook pages yet.\n"
    return "".join(f"- [{_title(page)}]({page.name})\n" for page in pages)
