"""A self-contained HTML report: inline CSS, inline SVG swimlanes, no network fetches.

The swimlane picture has one lane per service (plus the client), a dot per span
in causal order, an arrow wherever a hop crosses from one lane to another, and
a red ✗ where a message was lost.
"""

from __future__ import annotations

from html import escape

from wstrace import conventions as c

from ..report import ConversationReport, TimelineEntry
from .json import iso

_COLORS = {"delivered": "#1a7f37", "rejected": "#cf222e", "lost": "#cf222e", "in_flight": "#9a6700"}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1f2328}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.verdict{padding:12px 16px;border-radius:6px;border:2px solid var(--c);margin:8px 0 16px}
.verdict b{color:var(--c);text-transform:uppercase}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{color:#cf222e} .o-delivered{color:#1a7f37} .o-lost,.o-rejected{color:#cf222e}
.o-in_flight{color:#9a6700} .hint{background:#ddf4ff;padding:6px 10px;border-radius:4px}
.msg{border:1px solid #d0d7de;border-radius:6px;padding:8px 12px;margin:8px 0}
svg text{font:11px system-ui,sans-serif} .lane{fill:#f6f8fa} .lanelabel{font-weight:600}
.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace}
tr.dim td{opacity:.35}
"""
_SCRIPT = """
(function(){
  var rows=document.querySelectorAll('#timeline tbody tr');
  document.querySelectorAll('[data-message]').forEach(function(el){
    el.addEventListener('click',function(){
      var m=el.getAttribute('data-message');
      rows.forEach(function(r){r.classList.toggle('dim',!!m&&r.getAttribute('data-message')!==m);});
    });
  });
  document.body.setAttribute('data-ready','1');
})();
"""

_LANE_H = 64
_LEFT = 110
_STEP = 34
_CLIENT = "client"


def _lane_of(e: TimelineEntry) -> str:
    return e.service or "?"


def swimlanes(report: ConversationReport) -> str:
    """The SVG picture."""
    entries = [e for e in report.timeline if e.source == "trace" or e.hop]
    lanes: list[str] = [_CLIENT]
    for e in entries:
        if _lane_of(e) not in lanes:
            lanes.append(_lane_of(e))
    width = _LEFT + _STEP * (len(entries) + 2) + 40
    height = _LANE_H * len(lanes) + 30
    y = {lane: 20 + i * _LANE_H + _LANE_H // 2 for i, lane in enumerate(lanes)}
    pos: dict[str, tuple[float, float]] = {}
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="swimlanes" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="swimlane timeline">',
        "<defs>"
        '<marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#57606a"/></marker>'
        '<marker id="arrbad" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#cf222e"/>'
        "</marker></defs>",
    ]
    for i, lane in enumerate(lanes):
        top = 20 + i * _LANE_H
        out.append(
            f'<rect class="lane" x="0" y="{top + 3}" width="{width}" height="{_LANE_H - 6}" rx="4"/>'
            f'<text class="lanelabel" x="8" y="{top + _LANE_H // 2 + 4}">{escape(lane)}</text>'
        )
    for i, e in enumerate(entries):
        x = _LEFT + _STEP * (i + 1)
        lane_y = y[_lane_of(e)]
        if e.span_id:
            pos[e.span_id] = (x, lane_y)
        parent = pos.get(e.parent_span_id or "")
        bad = e.failed
        colour = "#cf222e" if bad else "#57606a"
        marker = "arrbad" if bad else "arr"
        if e.hop == c.HOP_RECEIVE or (e.hop == c.HOP_CONNECT and e.parent_span_id is None):
            out.append(_arrow(x - _STEP * 0.6, y[_CLIENT], x, lane_y, colour, marker, "hop-arrow"))
        elif parent and parent[1] != lane_y:
            out.append(_arrow(parent[0], parent[1], x, lane_y, colour, marker, "hop-arrow"))
        if e.hop == c.HOP_SEND:
            out.append(_arrow(x, lane_y, x + _STEP * 0.6, y[_CLIENT], colour, marker, "hop-arrow"))
        title = escape(
            f"+{e.offset_ms:.1f} ms {e.service} {e.hop or ''} {e.event or ''} {e.detail}"
        )
        attrs = f'data-message="{escape(e.message_id or "")}"'
        out.append(
            f'<circle class="ev{" bad" if bad else ""}" cx="{x}" cy="{lane_y}" r="5" '
            f'fill="{colour}" {attrs}><title>{title}</title></circle>'
        )
        if e.hop or e.event:
            label_y = lane_y - 9 if i % 2 == 0 else lane_y + 17  # alternate so labels never collide
            out.append(
                f'<text x="{x}" y="{label_y}" text-anchor="middle" fill="{colour}">'
                f"{escape((e.event or e.hop or '')[:12])}</text>"
            )
    out.extend(_lost_marks(report, entries, pos, y, lanes))
    out.append("</svg>")
    return "".join(out)


def _arrow(x1, y1, x2, y2, colour, marker, cls) -> str:
    return (
        f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{colour}" stroke-width="1.5" marker-end="url(#{marker})"/>'
    )


def _lost_marks(report, entries, pos, y, lanes) -> list[str]:
    """A red ✗ after the last span of each lost message, on the lane where it should have gone."""
    marks = []
    web = next((_lane_of(e) for e in entries if e.hop == c.HOP_RECEIVE), lanes[-1])
    worker = next((_lane_of(e) for e in entries if e.hop == c.HOP_TASK), web)
    lane_for = {
        c.HOP_RECEIVE: web,
        c.HOP_ENQUEUE: web,
        c.HOP_TASK: worker,
        c.HOP_PUBLISH: worker,
        c.HOP_DELIVER: web,
        c.HOP_SEND: _CLIENT,
        c.HOP_AUTH: web,
        c.HOP_CONNECT: web,
    }
    for m in report.messages:
        if m.outcome not in ("lost", "in_flight"):
            continue
        idx = [i for i, e in enumerate(entries) if e.message_id == m.message_id]
        last = (idx[-1] + 1) if idx else len(entries)
        x = _LEFT + _STEP * (last + 1) - _STEP / 2
        ly = y.get(lane_for.get(m.hop or "", web), y[lanes[-1]])
        colour = _COLORS.get(m.outcome, "#cf222e")
        label = "lost" if m.outcome == "lost" else "in flight"
        marks.append(
            f'<g class="lost-mark" data-message="{escape(m.message_id)}">'
            f'<text x="{x:.1f}" y="{ly + 6}" text-anchor="middle" font-size="18" '
            f'fill="{colour}">✗</text>'
            f'<text x="{x:.1f}" y="{ly + 29}" text-anchor="middle" fill="{colour}">'
            f"{label}: {escape(m.cause)}</text></g>"
        )
    return marks


def _row(cells: list[str], cls: str = "", attrs: str = "") -> str:
    return f'<tr class="{cls}" {attrs}>' + "".join(cells) + "</tr>"


def to_html(report: ConversationReport) -> str:
    """The whole page."""
    v = report.verdict
    colour = _COLORS.get(v.outcome, "#57606a")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>wsanalyze — {escape(report.conversation_id)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Conversation <span class=mono>{escape(report.conversation_id)}</span></h1>",
        f'<div class="verdict" id="verdict" style="--c:{colour}" data-outcome="{escape(v.outcome)}" '
        f'data-hop="{escape(v.hop or "")}" data-cause="{escape(v.cause)}" '
        f'data-confidence="{escape(v.confidence or "")}">'
        f"<b>{escape(v.outcome)}</b> · hop <b>{escape(v.hop or '-')}</b> · cause "
        f"<b>{escape(v.cause)}</b>"
        + (
            f" · confidence <b>{escape(v.confidence)}</b>"
            if v.confidence not in (None, "exact")
            else ""
        )
        + f"<br>{escape(v.summary)}</div>",
        "<h2>Swimlanes</h2>",
        f'<div style="overflow-x:auto">{swimlanes(report)}</div>',
    ]
    if report.connections:
        parts.append("<h2>Connections</h2><table id=connections><thead><tr>")
        parts.append(
            "".join(
                f"<th>{h}</th>"
                for h in ("connection", "opened", "closed", "code", "by", "outcome", "cause")
            )
        )
        parts.append("</tr></thead><tbody>")
        for k in report.connections:
            parts.append(
                _row(
                    [
                        f"<td class=mono>{escape(k.connection_id)}</td>",
                        f"<td>{escape(iso(k.opened) or '-')}</td>",
                        f"<td>{escape(iso(k.closed) or '-')}</td>",
                        f"<td class=n>{'' if k.close_code is None else k.close_code}</td>",
                        f"<td>{escape(k.closed_by or '-')}</td>",
                        f'<td class="o-{escape(k.outcome)}">{escape(k.outcome)}</td>',
                        f"<td>{escape(k.cause)}</td>",
                    ]
                )
            )
        parts.append("</tbody></table>")
    if report.messages:
        parts.append("<h2>Messages</h2><table id=messages><thead><tr>")
        heads = ("message", "outcome", "hop", "cause", "published", "delivered", "sent")
        parts.append("".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>")
        for m in report.messages:
            parts.append(
                _row(
                    [
                        f"<td class=mono>{escape(m.message_id)}</td>",
                        f'<td class="o-{escape(m.outcome)}">{escape(m.outcome)}</td>',
                        f"<td>{escape(m.hop or '-')}</td>",
                        f"<td>{escape(m.cause)}</td>",
                        f"<td class=n>{m.chunks.published}</td>",
                        f"<td class=n>{m.chunks.delivered}</td>",
                        f"<td class=n>{m.chunks.sent}</td>",
                    ],
                    attrs=f'data-message="{escape(m.message_id)}" data-outcome="{escape(m.outcome)}"',
                )
            )
        parts.append("</tbody></table>")
        for m in report.messages:
            items = "".join(f"<li>{escape(line)}</li>" for line in m.evidence)
            parts.append(
                f'<div class="msg" data-message="{escape(m.message_id)}"><b class=mono>'
                f'{escape(m.message_id)}</b> — <span class="o-{escape(m.outcome)}">'
                f"{escape(m.summary)}</span><ul>{items}</ul>"
                f'<div class="hint"><b>Fix:</b> {escape(m.hint)}</div></div>'
            )
    parts.append("<h2>Timeline</h2><table id=timeline><thead><tr>")
    heads = ("+ms", "service", "hop", "event", "message", "seq", "detail")
    parts.append("".join(f"<th>{h}</th>" for h in heads) + "</tr></thead><tbody>")
    for e in report.timeline:
        parts.append(
            _row(
                [
                    f"<td class=n>{e.offset_ms:.1f}</td>",
                    f"<td>{escape(e.service or '-')}</td>",
                    f"<td>{escape(e.hop or '-')}</td>",
                    f"<td>{escape(e.event or '-')}</td>",
                    f"<td class=mono>{escape(e.message_id or '')}</td>",
                    f"<td class=n>{'' if e.seq is None else e.seq}</td>",
                    f"<td>{escape(e.detail)}</td>",
                ],
                cls="failed" if e.failed else "",
                attrs=f'data-message="{escape(e.message_id or "")}"',
            )
        )
    parts.append("</tbody></table>")
    if report.problems:
        items = "".join(f"<li>{escape(p)}</li>" for p in report.problems)
        parts.append(f"<h2>Input problems</h2><ul>{items}</ul>")
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "".join(parts)
