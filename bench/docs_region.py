"""Write a benchmark's result tables into its marked region of ``docs/benchmarks.md``.

Every script in bench/ takes ``--write-docs`` (``add_option``) and, after printing its tables,
hands them to ``write``: with the option, they replace the content between
``<!-- bench:NAME:begin -->`` and ``<!-- bench:NAME:end -->``, headed by one line saying when,
by which command and on what machine they were measured. The prose around the regions is
written by hand; nothing else of the page changes.

    .venv/bin/python bench/ingest.py --write-docs                 # docs/benchmarks.md
    .venv/bin/python bench/ingest.py --write-docs /tmp/bench.md   # another copy of the page
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from monitor.docgen.regions import write_region

PAGE = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def add_option(parser: argparse.ArgumentParser) -> None:
    """``--write-docs [PAGE]``: also write the tables into their region of the page."""
    parser.add_argument(
        "--write-docs",
        nargs="?",
        const=PAGE,
        type=Path,
        metavar="PAGE",
        help=f"write the result tables into their region of the page (default: {PAGE})",
    )


def _load_average() -> str:
    try:
        return ", ".join(f"{value:.1f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


def heading(argv: Sequence[str], *, today: datetime.date | None = None) -> str:
    """The line above the tables: date, command (without ``--write-docs``), CPUs and load."""
    args: list[str] = []
    rest = list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg == "--write-docs":
            if rest and not rest[0].startswith("-"):
                rest.pop(0)  # its PAGE
        elif not arg.startswith("--write-docs="):
            args.append(arg)
    command = " ".join(["python", f"bench/{Path(argv[0]).name}", *args])
    day = (today or datetime.date.today()).isoformat()
    return (
        f"Latest run ({day}, `{command}`, {os.cpu_count()} CPUs, load average {_load_average()}"
        " at the end):"
    )


def write(page: Path | None, name: str, *tables: str, argv: Sequence[str] | None = None) -> None:
    """With a page (``--write-docs`` given), put ``tables`` into region ``bench:NAME`` of it."""
    if page is None:
        return
    parts = [heading(sys.argv if argv is None else argv), *(table.strip() for table in tables)]
    write_region(page, f"bench:{name}", "\n\n".join(parts) + "\n")
    print(f"wrote the tables into {page} (region bench:{name})", file=sys.stderr)
