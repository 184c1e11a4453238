"""The README is the front door: it opens with the two set-up commands (CI runs the second one
verbatim), stays short, and its links lead somewhere. Its first requests, run as written
against the example config, give the answers it shows and a record in the current window.
The reference is in docs/ (tests/test_docs.py)."""

from __future__ import annotations

import json
import math
import re
import subprocess
import time
from pathlib import Path

import httpx

from monitor import timestamps

ROOT = Path(__file__).resolve().parent.parent

#: Past about 12 KB the README is turning back into the reference: that goes to docs/.
MAX_README_BYTES = 12 * 1024


def sh_blocks(path: Path) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", path.read_text(), re.S)


def first_sh_block(path: Path) -> list[str]:
    blocks = sh_blocks(path)
    assert blocks, f"{path.name} must open with a sh code block"
    return [line for line in blocks[0].splitlines() if line and not line.startswith("#")]


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


def test_the_first_requests_send_a_record_of_now(tmp_path: Path) -> None:
    """The quick start's curl commands, run by a shell against ``monitor serve --config
    examples/monitor.yaml``, answer what the README says, and the prediction they send is
    stamped with the current time: it lies in the model's current window (a fixed date falls
    out of every window, and retention deletes it). Getting started has the same commands."""
    from tests.server_process import free_port, start_server

    block = sh_blocks(ROOT / "README.md")[1]
    assert sh_blocks(ROOT / "docs" / "getting-started.md")[1] == block
    assert "curl" in block and "http://127.0.0.1:8000/" in block
    port = free_port()
    server = start_server(
        ROOT / "examples" / "monitor.yaml",
        port,
        tmp_path / "serve.log",
        database_url=f"sqlite:///{tmp_path / 'monitor.db'}",
    )
    try:
        base = f"http://127.0.0.1:{port}"
        before = math.floor(time.time())
        ran = subprocess.run(
            ["bash", "-euc", block.replace("http://127.0.0.1:8000", base)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        after = time.time()
        assert ran.returncode == 0, ran.stderr
        answers, text, decoder = [], ran.stdout, json.JSONDecoder()
        while text.strip():
            answer, end = decoder.raw_decode(text.strip())
            answers.append(answer)
            text = text.strip()[end:]
        shown = [json.loads(line[2:]) for line in block.splitlines() if line.startswith("# {")]
        assert answers[: len(shown)] == shown
        counts = answers[-1]["counts"]
        assert (counts["predictions"], counts["labelled_predictions"]) == (1, 1)
        stamped = timestamps.parse(counts["last_timestamp"])
        assert before <= stamped <= after
        evaluated = httpx.post(f"{base}/v1/models/credit/evaluate", params={"webhooks": "false"})
        assert evaluated.json()["window"]["n"] == 1  # in the window of 1h ending now
    finally:
        server.terminate()
        server.wait(timeout=30)
