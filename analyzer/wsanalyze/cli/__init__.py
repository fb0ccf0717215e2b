"""The `wsanalyze` command line: thin commands over the library API.

One module per command; each parses its options, makes one library call and
renders the result. Register a new command with one line below.
"""

from __future__ import annotations

import typer

from . import (
    connections,
    conversation,
    conversations,
    demo,
    doctor,
    explain,
    ingest,
    lost,
    mcp,
    watch,
)

app = typer.Typer(
    name="wsanalyze",
    help="Rebuild Django Channels conversations from wstrace traces and container logs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Rebuild Django Channels conversations from wstrace traces and container logs."""


app.command()(conversation.conversation)
app.command()(conversations.conversations)
app.command()(connections.connections)
app.command()(lost.lost)
app.command()(watch.watch)
app.command()(explain.explain)
app.command()(ingest.ingest)
app.command()(demo.demo)
app.command()(doctor.doctor)
app.command()(mcp.mcp)


def main() -> None:
    """Console-script entry point: a bug of ours is one line on stderr, never a traceback."""
    import os
    import sys

    try:
        app()
    except BrokenPipeError:  # `wsanalyze conversations | head`: the reader left, not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        if os.environ.get("WSANALYZE_DEBUG"):
            raise
        from ..render.safe_text import shown

        first = shown(str(exc).splitlines()[0]) if str(exc) else ""  # it may quote the data
        sys.stderr.write(
            f"error: {type(exc).__name__}: {first} (WSANALYZE_DEBUG=1 shows the traceback)\n"
        )
        sys.exit(70)
