"""``python -m iscl_cli``: the same command line as ``iscl`` (what torchrun and benchmarks start)."""

from iscl_cli.cli import app

app(prog_name="iscl")
