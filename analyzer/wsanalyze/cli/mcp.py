"""``wsanalyze mcp``: the analysis tools for coding agents, as a Model Context Protocol server."""

from __future__ import annotations

from ._common import fail


def mcp() -> None:
    """Serve conversations, conversation, lost, explain and doctor as MCP tools over stdio.

    Add it to an MCP client: {"command": "wsanalyze", "args": ["mcp"]}.
    """
    try:
        from .mcp_server import serve
    except ModuleNotFoundError as exc:
        if exc.name != "mcp" and not (exc.name or "").startswith("mcp."):
            raise
        fail("the MCP server needs the mcp package: pip install 'wstrace[mcp]'")
    serve()
