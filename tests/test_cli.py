"""``monitor check-config``: exit 0 and a summary when valid, exit 1 and every error if not;
every command's ``--help`` is plain text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "examples" / "monitor.yaml"
    assert main(["check-config", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: OK (1 model(s): credit; 1 webhook(s))\n"


def test_check_config_prints_every_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - name: m\n    task: guess\n    features: [{name: x, type: t}]\n")
    assert main(["check-config", str(path)]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"{path}:3: models[0].task: must be 'classification' or 'regression'",
        f"{path}:4: models[0].features[0].type: must be 'numeric' or 'categorical'",
        f"2 error(s) in {path}",
    ]


def _subcommands() -> list[str]:
    """Every subcommand the parser knows, so a new one is checked too."""
    import argparse

    from monitor.cli import build_parser

    (commands,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(commands.choices)


# reStructuredText that a terminal shows as is: ``literal``, :role:`x`, `link`_, a directive
RST_MARKUP = re.compile(r"``|:[a-z]+:`|`_|^\.\. [a-z]+::", re.M)


@pytest.mark.parametrize("command", ["", *_subcommands()])
def test_help_is_plain_text(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"] if command else ["--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith("usage: monitor")
    assert RST_MARKUP.findall(text) == [] and "`" not in text
