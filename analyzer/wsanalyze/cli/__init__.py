"""The `wsanalyze` command line: thin commands over the library API."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="wsanalyze",
    help="Rebuild Django Channels conversations from wstrace traces and container logs.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Rebuild Django Channels conversations from wstrace traces and container logs."""


def main() -> None:
    """Console-script entry point."""
    app()
