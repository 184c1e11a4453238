"""The README is the front door: it opens with the two set-up commands (CI runs the second one
verbatim), stays short, and its links lead somewhere. The reference is in docs/
(tests/test_docs.py)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Past about 12 KB the README is turning back into the reference: that goes to docs/.
MAX_README_BYTES = 12 * 1024


def first_sh_block(path: Path) -> list[str]:
    block = re.search(r"```sh\n(.*?)```", path.read_text(), re.S)
    assert block is not None, f"{path.name} must open with a sh code block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def setup_commands() -> list[str]:
    return first_sh_block(ROOT / "README.md")


def test_readme_opens_with_install_and_test_commands() -> None:
    install, test = setup_commands()
    assert "monitor serve --config examples/monitor.yaml" in install
    assert "pytest" in test


def test_ci_runs_the_readme_test_command() -> None:
    _, test = setup_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test in ci


def test_getting_started_gives_the_same_commands() -> None:
    assert first_sh_block(ROOT / "docs" / "getting-started.md") == setup_commands()


def test_readme_stays_a_front_door() -> None:
    size = len((ROOT / "README.md").read_bytes())
    assert size <= MAX_README_BYTES, f"README is {size} bytes: move reference text to docs/"


def test_readme_links_lead_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    local = [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and t[0] != "#"]
    assert len(local) > 10
    missing = sorted({t for t in local if not (ROOT / t).exists()})
    assert missing == []
