"""What every command shares: exit codes (DESIGN.md), error output, the data directory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import typer
from rich.console import Console
from rich.text import Text

EXIT_USAGE: Final = 2
EXIT_REFUSED: Final = 3  # refused before touching the vehicle (voltage, P-Data mismatch, ...)
EXIT_FAILED: Final = 4  # failed while programming; the journal is kept
EXIT_UNREACHABLE: Final = 5  # vehicle, interface or server not reachable

# Messages carry SGBM-IDs, paths and TOML like ``[[units]]``: never read them as markup.
console = Console(markup=False)
errors = Console(stderr=True, markup=False)


def print_error(message: str) -> None:
    """Print ``message`` on stderr after a red ``error:``, exactly as given."""
    errors.print(Text.assemble(("error:", "red"), " ", message), highlight=False)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` as an error and return the exit to raise."""
    print_error(message)
    return typer.Exit(code)


def home(ctx: typer.Context) -> Path:
    """The data directory: ``--home``, else ``$ECUWORKS_HOME``, else the user's app dir."""
    chosen = (ctx.find_root().obj or {}).get("home")
    if chosen is None and "ECUWORKS_HOME" in os.environ:
        chosen = os.environ["ECUWORKS_HOME"]
    return Path(chosen) if chosen is not None else Path(typer.get_app_dir("ecuworks"))
