"""docs/cli.md, the command-line reference, generated from harness.py's argparse parser.

    python -m dlbench.clidoc > docs/cli.md

A table per subcommand from the parser's own actions (not argparse's help text, whose layout changes
between Python versions and terminal widths); tests/test_layout.py holds the page to the parser.
"""

from __future__ import annotations

import argparse


def _cell(text: str) -> str:
    return text.replace("%%", "%").replace("|", "\\|").replace("\n", " ")


def _name(a: argparse.Action) -> str:
    if not a.option_strings:
        return f"`{a.metavar or a.dest}`" + (" …" if a.nargs in ("+", "*") else "")
    value = "" if a.nargs == 0 else " " + (a.metavar or a.dest.upper())
    return ", ".join(f"`{o}{value}`" for o in a.option_strings)


def _values(a: argparse.Action) -> str:
    if a.choices:
        return ", ".join(f"`{c}`" for c in a.choices)
    return "required" if a.required else ""


def render(parser: argparse.ArgumentParser) -> str:
    """The page: every subcommand's one-line purpose and its arguments, in the parser's order."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {c.dest: c.help for c in sub._choices_actions}
    out = [
        "# Command-line reference",
        "",
        "Generated from `harness.py`'s parser by `python -m dlbench.clidoc > docs/cli.md`; a test keeps it",
        "current. Every command refuses bad input in one line with exit status 2.",
        "",
    ]
    for name, p in sub.choices.items():
        out += [f"## `harness.py {name}`", "", _cell(helps.get(name) or ""), ""]
        rows = [a for a in p._actions if not isinstance(a, argparse._HelpAction)]
        if rows:
            out += ["| argument | values | meaning |", "|---|---|---|"]
            out += [f"| {_name(a)} | {_values(a)} | {_cell(a.help or '')} |" for a in rows]
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    import harness

    print(render(harness.parser()), end="")
