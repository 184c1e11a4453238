"""The documentation site (docs/, mkdocs.yml): it builds strictly, every page is reachable, and
its generated parts (configuration keys, metrics) match the code they describe; every runbook is
linked from the runbooks' index."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

from monitor.docgen.__main__ import stale_regions
from monitor.docgen.config_reference import (
    Section,
    UndocumentedKey,
    config_reference,
    documented_keys,
    section_table,
)
from monitor.docgen.metrics_reference import exported_families
from monitor.docgen.regions import (
    RegionError,
    read_region,
    region_names,
    replace_region,
    write_region,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _nav_pages(items: list[object]) -> list[str]:
    pages: list[str] = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages += _nav_pages(value)
        else:
            pages.append(str(value))
    return pages


# -- the site ---------------------------------------------------------------------------------


def test_every_page_is_in_the_navigation_or_a_runbook() -> None:
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert sorted(set(nav)) == sorted(nav), "a page listed twice"
    assert [p for p in nav if p not in pages] == [], "nav lists a page that does not exist"
    assert [p for p in pages if p not in nav and not p.startswith("runbooks/")] == []


def test_the_issue_surfaces_each_have_a_page() -> None:
    nav = _nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    for page in [
        "architecture.md",
        "production.md",
        "api.md",
        "configuration.md",
        "metrics.md",
        "alerts.md",
        "cloudevents.md",
        "client.md",
        "replay.md",
        "deployment.md",
        "runbooks/index.md",
        "benchmarks.md",
    ]:
        assert page in nav


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("material") is None,
    reason="mkdocs and mkdocs-material are not installed (pip install -e '.[docs]'; the test "
    "extra has them, so CI runs this)",
)
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """Strict: a broken link or anchor, a page outside the navigation or a bad config fails."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "configuration" / "index.html").is_file()
    assert (tmp_path / "runbooks" / "index.html").is_file()


# -- generated regions ------------------------------------------------------------------------


def test_generated_regions_are_current() -> None:
    """Run `python -m monitor.docgen` after changing the config schema or the metrics, and
    commit what it writes."""
    assert stale_regions(DOCS) == []


def test_every_config_key_is_in_the_configuration_reference() -> None:
    page = read_region((DOCS / "configuration.md").read_text(), "generated:configuration")
    keys = documented_keys()
    assert {"server.port", "models[].alerts.for", "webhooks[].secret"} <= set(keys)
    assert "models[].thresholds.<statistic>.overrides.<feature>.warning" in keys
    for key in keys:
        section, _, name = key.rpartition(".")
        heading = f"### `{section}`" if section else "### Top level"
        assert heading in page, key
        table = page.split(heading, 1)[1].split("\n### ", 1)[0]
        assert f"| `{name}` |" in table, key


def test_every_exported_metric_is_in_the_metrics_reference(tmp_path: Path) -> None:
    """A regression model, as a second service beside the generator's classification one."""
    from prometheus_client import CollectorRegistry

    from monitor.config import parse_config
    from monitor.service import Service
    from monitor.storage import create_database_engine

    config = parse_config(
        "models:\n  - {name: m, task: regression, min_samples: 1,\n"
        "     features: [{name: x, type: numeric}, {name: c, type: categorical}]}\n"
    )
    engine = create_database_engine(f"sqlite:///{tmp_path / 'm.db'}")
    service = Service(config, engine=engine, registry=CollectorRegistry())
    service.start(run_jobs=False)
    service.store_reference("m", [{"features": {"x": 1.0, "c": "a"}}], source="test")
    service.store_predictions(
        "m", [{"id": "1", "features": {"x": 2.0, "c": "b"}, "prediction": 1.0}]
    )
    service.evaluate("m")
    names = {family.name for family in service.registry.collect()}
    service.stop()
    table = read_region((DOCS / "metrics.md").read_text(), "generated:metrics")
    documented = set(re.findall(r"^\| `([a-z0-9_:]+)` \|", table, re.M))
    assert len(names) > 20
    scraped = {n for n in documented} | {n.removesuffix("_total") for n in documented}
    scraped |= {n.removesuffix("_info") for n in documented}
    assert sorted(names - scraped) == []


def test_the_metrics_reference_has_every_family_with_its_labels() -> None:
    families = {family.name: family for family in exported_families()}
    assert families["drift_monitor_records_rejected_total"].labels == ("model", "reason")
    assert families["drift_monitor_records_rejected_total"].type == "counter"
    # no series yet (no request was made), its labels still documented
    assert families["drift_monitor_http_request_duration_seconds"].labels == (
        "route",
        "method",
        "code",
    )
    assert families["drift_monitor_feature_psi"].labels == ("model", "feature")
    assert families["drift_monitor_build_info"].labels == ("version",)
    assert all(family.help for family in families.values())


def test_the_runbook_index_links_every_runbook() -> None:
    index = (DOCS / "runbooks" / "index.md").read_text()
    for page in (DOCS / "runbooks").glob("*.md"):
        if page.name != "index.md":
            assert f"]({page.name})" in index, page.name


# -- how the configuration reference reads a model --------------------------------------------


class _Inner(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)
    level: float | Literal["auto"] | None = None
    """A level."""


class _Example(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)
    port: int = Field(8000, ge=1, le=65535)
    """Where to listen."""
    wait: timedelta = timedelta(seconds=90)
    """How long."""
    mode: Literal["a", "b"] = "a"
    """Which."""
    name: str
    """Required."""
    inner: _Inner = _Inner()
    """A section."""
    items: list[_Inner] = []
    """Sections."""


def test_a_section_table_gives_type_bounds_default_and_description() -> None:
    sections = [Section("", _Example), Section("inner", _Inner)]
    table = section_table(sections[0], sections)
    assert "| `port` | integer, 1 to 65,535 | `8000` | Where to listen. |" in table
    assert "| `wait` | duration | `90s` | How long. |" in table
    assert "| `mode` | `a` \\| `b` | `a` | Which. |" in table
    assert "| `name` | string | required | Required. |" in table
    assert "| `inner` | [`inner`](#config-inner) | its defaults | A section. |" in table
    assert "| `items` | list of [`inner`](#config-inner) | `[]` | Sections. |" in table
    inner = section_table(sections[1], sections)
    assert "| `level` | number or `auto` | unset | A level. |" in inner


def test_a_key_without_a_description_fails() -> None:
    class Bare(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)
        documented: int = 1
        """Yes."""
        undocumented: int = 2

    bare = Section("bare", Bare)
    with pytest.raises(UndocumentedKey, match=r"bare\.undocumented"):
        section_table(bare, [bare])


def test_the_reference_covers_the_real_schema() -> None:
    text = config_reference()
    assert "### `models[].thresholds.<statistic>` {#config-models-thresholds-statistic}" in text
    assert "| `max_body_bytes` | integer, at least 1,024 | `10485760` |" in text
    assert "| `for` | integer, at least 1 | `1` |" in text  # the alias, not for_


# -- regions ----------------------------------------------------------------------------------


def test_a_region_round_trips_and_leaves_the_rest_alone(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    text = (
        "# T\n\n<!-- a:begin -->\nold\n<!-- a:end -->\n\nmiddle\n<!-- b:begin -->\n<!-- b:end -->\n"
    )
    page.write_text(text)
    assert write_region(page, "b", "| x |\n| - |") is True
    assert read_region(page.read_text(), "b") == "| x |\n| - |\n"
    assert read_region(page.read_text(), "a") == "old\n"
    assert write_region(page, "b", "| x |\n| - |\n") is False
    assert page.read_text().replace("| x |\n| - |\n", "") == text
    assert region_names(page.read_text()) == ["a", "b"]


@pytest.mark.parametrize(
    "text",
    [
        "no markers\n",
        "<!-- a:begin -->\n",
        "<!-- a:begin -->\n<!-- a:end -->\n<!-- a:begin -->\n<!-- a:end -->\n",
        "<!-- a:end -->\n<!-- a:begin -->\n",
    ],
)
def test_a_bad_region_is_refused(text: str) -> None:
    with pytest.raises(RegionError, match="region 'a'"):
        replace_region(text, "a", "x")
