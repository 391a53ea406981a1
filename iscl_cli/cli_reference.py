"""Renders docs/cli.md from the Typer app, so the reference cannot drift from the code.

Regenerate with ``python -m iscl_cli.cli_reference > docs/cli.md``; a test checks it.
"""

from __future__ import annotations

import typer.main
from typer.core import TyperArgument, TyperOption

from iscl_cli.cli import app


def option_row(parameter: TyperOption) -> str:
    """One table row: the flags, the default and the help line."""
    names = " / ".join(f"`{name}`" for name in [*parameter.opts, *parameter.secondary_opts])
    default = parameter.default
    shown = "" if default is None or default is False or default == [] or callable(default) else f"`{default}`"
    if getattr(parameter, "required", False):
        shown = "required"
    help_text = (getattr(parameter, "help", None) or "").replace("|", "\\|")
    return f"| {names} | {shown} | {help_text} |"


def argument_name(argument: TyperArgument) -> str:
    """``INPUTS...`` for a variadic argument, ``MODEL`` for a single one."""
    return (argument.metavar or argument.name.upper()) + ("..." if argument.nargs == -1 else "")


def render() -> str:
    """The whole reference as Markdown."""
    group = typer.main.get_command(app)
    lines = ["# CLI reference", "", "Generated from the code by `python -m iscl_cli.cli_reference`; "
             "`iscl COMMAND --help` prints the same.", "", f"{group.help}", "", group.epilog, "",
             "Options before the command (`iscl --debug denoise ...`):", "", "| option | meaning |", "|---|---|"]
    lines += [f"| {' / '.join(f'`{name}`' for name in option.opts)} | {option.help} |"
              for option in group.params if isinstance(option, TyperOption) and option.name != "help"]
    lines.append("")
    for name, command in sorted(group.commands.items()):
        arguments = [p for p in command.params if isinstance(p, TyperArgument)]
        usage = " ".join([f"iscl {name}", "[OPTIONS]", *map(argument_name, arguments)])
        lines += [f"## iscl {name}", "", (command.help or "").strip().splitlines()[0], "", f"    {usage}", ""]
        for argument in arguments:
            help_text = getattr(argument, "help", None) or ""
            lines.append(f"- `{argument_name(argument)}`: {help_text}")
        options = [p for p in command.params if isinstance(p, TyperOption) and p.name != "help"]
        if options:
            lines += ["" if arguments else "", "| option | default | meaning |", "|---|---|---|"]
            lines += [option_row(option) for option in options]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
