"""``wsanalyze explain <cause>``: what a cause means, how it shows, how to fix it."""

from __future__ import annotations

from typing import Annotated

import typer

from ._common import Json, console, fail, print_json, quoted


def explain(
    cause: Annotated[str, typer.Argument(help="A cause code, e.g. consumer_gone.")],
    json_: Json = False,
) -> None:
    """Explain a cause: what it means, how it shows in the evidence, how to fix it."""
    from ..causes import CAUSE_INFO, KNOWN_CAUSES
    from ..render import json as render_json
    from ..render.terminal import explain_view

    info = CAUSE_INFO.get(cause.strip().lower().replace("-", "_"))
    if info is None:
        fail(f"unknown cause {quoted(cause)}; causes: {', '.join(KNOWN_CAUSES)}")
    if json_:
        print_json(render_json.dumps(render_json.explain_json(info)))
    else:
        console().print(explain_view(info))
