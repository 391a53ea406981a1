from pathlib import Path

from iscl_cli.cli_reference import render

DOCS_CLI = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def test_docs_cli_md_is_current():
    assert DOCS_CLI.read_text() == render(), "regenerate: python -m iscl_cli.cli_reference > docs/cli.md"


def test_every_command_and_option_is_documented():
    text = render()
    for flag in ("## iscl train", "## iscl denoise", "`--noisy`", "`--tile-size`", "`--write-noise`", "`--resume`"):
        assert flag in text
