"""``python -m monitor.docgen [--docs DIR] [--check]``: write the generated regions of the
documentation, or (``--check``) exit 1 naming those that are out of date."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from monitor.docgen.config_reference import config_reference
from monitor.docgen.metrics_reference import metrics_reference
from monitor.docgen.regions import read_region, write_region

#: The checkout's docs/ (this file is monitor/docgen/__main__.py).
DOCS = Path(__file__).resolve().parents[2] / "docs"


def targets(docs: Path) -> list[tuple[Path, str, Callable[[], str]]]:
    """Each generated region: the page, the region's name, what writes its content."""
    return [
        (docs / "configuration.md", "generated:configuration", config_reference),
        (docs / "metrics.md", "generated:metrics", metrics_reference),
    ]


def stale_regions(docs: Path = DOCS) -> list[str]:
    """``page: region`` for every generated region whose committed text is out of date."""
    return [
        f"{page.relative_to(docs)}: {name}"
        for page, name, content in targets(docs)
        if read_region(page.read_text(), name) != content()
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.docgen", description=__doc__)
    parser.add_argument(
        "--docs", type=Path, default=DOCS, help="the docs/ folder (default: %(default)s)"
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if a region is stale"
    )
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_regions(args.docs)
        for item in stale:
            print(f"out of date: {item} (run python -m monitor.docgen)", file=sys.stderr)
        return 1 if stale else 0
    for page, name, content in targets(args.docs):
        if write_region(page, name, content()):
            print(f"wrote {page.relative_to(args.docs)}: {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
