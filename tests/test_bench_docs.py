"""Benchmark tables are written by the benchmark scripts: every script in bench/ that measures
has its marked region in docs/benchmarks.md and writes it with ``--write-docs``
(bench/docs_region.py)."""

from __future__ import annotations

import datetime
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monitor.docgen.regions import read_region, region_names

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PAGE = ROOT / "docs" / "benchmarks.md"

#: bench/ modules that measure nothing themselves: the floor server, the PostgreSQL helpers,
#: the soak's probe and the docs helper.
SUPPORT = {"floor", "postgres", "soak_probe", "docs_region"}


def _regions_written_by(script: Path) -> list[str]:
    return re.findall(
        r"docs_region\.write\(\s*args\.write_docs,\s*\"([a-z-]+)\"", script.read_text()
    )


def _scripts() -> list[Path]:
    return sorted(p for p in BENCH.glob("*.py") if p.stem not in SUPPORT)


def test_every_benchmark_script_writes_its_regions() -> None:
    scripts = _scripts()
    assert {p.stem for p in scripts} >= {"ingest", "drift", "performance", "false_alarms"}
    page = PAGE.read_text()
    written: list[str] = []
    for script in scripts:
        names = _regions_written_by(script)
        assert names, f"{script.name} writes no region of docs/benchmarks.md"
        assert "docs_region.add_option(parser)" in script.read_text(), script.name
        for name in names:
            read_region(page, f"bench:{name}")  # exactly one begin and one end marker
        written += names
    bench_regions = [n.removeprefix("bench:") for n in region_names(page) if n.startswith("bench:")]
    assert sorted(bench_regions) == sorted(written), "a region no script writes, or one twice"


def test_every_region_holds_a_table() -> None:
    page = PAGE.read_text()
    for name in region_names(page):
        assert "\n|" in "\n" + read_region(page, name), name


@pytest.fixture
def docs_region() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("docs_region", BENCH / "docs_region.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_the_helper_round_trips_a_table(docs_region: ModuleType, tmp_path: Path) -> None:
    page = tmp_path / "benchmarks.md"
    page.write_text(PAGE.read_text())
    table = "| a | b |\n|---|---|\n| 1 | 2 |"
    argv = ["bench/ingest.py", "--duration", "2", "--write-docs", str(page), "--batches", "1"]
    docs_region.write(page, "ingest", table, argv=argv)
    written = read_region(page.read_text(), "bench:ingest")
    heading, rest = written.split("\n\n", 1)
    assert heading.startswith(f"Latest run ({datetime.date.today().isoformat()}, ")
    assert "`python bench/ingest.py --duration 2 --batches 1`" in heading
    assert rest == table + "\n"
    # everything outside the region is as it was
    original = PAGE.read_text()
    before = original.split("<!-- bench:ingest:begin -->")[0]
    after = original.split("<!-- bench:ingest:end -->")[1]
    assert page.read_text().startswith(before + "<!-- bench:ingest:begin -->\n" + written)
    assert page.read_text().endswith("<!-- bench:ingest:end -->" + after)
    again = page.read_text()
    docs_region.write(page, "ingest", table, argv=argv)
    assert page.read_text() == again
    docs_region.write(None, "ingest", "ignored", argv=argv)  # without --write-docs
    assert page.read_text() == again


def test_the_heading_leaves_out_the_option(docs_region: ModuleType) -> None:
    day = datetime.date(2026, 1, 2)
    assert "`python bench/x.py --quick`" in docs_region.heading(
        ["/a/bench/x.py", "--write-docs", "--quick"], today=day
    )
    assert "`python bench/x.py --quick`" in docs_region.heading(
        ["x.py", "--quick", "--write-docs=/tmp/p.md"], today=day
    )
    assert docs_region.heading(["x.py"], today=day).startswith("Latest run (2026-01-02, `python")


def test_the_option_defaults_to_the_page(docs_region: ModuleType) -> None:
    import argparse

    parser = argparse.ArgumentParser()
    docs_region.add_option(parser)
    assert parser.parse_args([]).write_docs is None
    assert parser.parse_args(["--write-docs"]).write_docs == PAGE
    assert parser.parse_args(["--write-docs", "p.md"]).write_docs == Path("p.md")
