"""Hostile values for structure-aware fuzzing, and a JSON writer that can put them in a file.

Real producers never write most of these; an attacker who can drop a file where
wsanalyze reads (or a broken exporter) can. ``Raw`` marks text written verbatim
(nesting too deep for ``json.dumps``, ``NaN``, numbers past a double), so a
generated document may be anything a file can hold, not only what Python encodes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from hypothesis import strategies as st


@dataclass(frozen=True)
class Raw:
    """JSON text written as is where this value sits."""

    text: str


def encode(value: object) -> str:
    """JSON text of ``value`` with every ``Raw`` written verbatim (lone surrogates escaped)."""
    raws: list[str] = []

    def mark(obj: object) -> object:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\0raw{len(raws) - 1}\0"
        if isinstance(obj, dict):
            return {k if isinstance(k, str) else str(k): mark(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [mark(v) for v in obj]
        return obj

    text = json.dumps(mark(value))  # ensure_ascii: lone surrogates become \udXXX escapes
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\0raw{i}\0"), raw, 1)
    return text


def nested(depth: int, kind: str = "list") -> Raw:
    """A value nested ``depth`` levels deep (deeper than any recursive reader goes)."""
    if kind == "list":
        return Raw("[" * depth + "1" + "]" * depth)
    return Raw('{"a":' * depth + "1" + "}" * depth)


HUGE_INTS = (
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    2**70,
    10**30,
    -(2**63) - 1,
    -1,
    0,
    253_402_300_800 * 10**9,  # 10000-01-01 in nanoseconds
    1_700_000_000_000_000_000,
)
ints = st.sampled_from(HUGE_INTS) | st.integers()
floats = st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e300, -0.0, 0.5, 1.7e308])
raw_numbers = st.sampled_from(
    [
        Raw("NaN"),
        Raw("Infinity"),
        Raw("-Infinity"),
        Raw("1e400"),
        Raw("-1e400"),
        Raw("1" * 400),
        Raw("-" + "9" * 5000),
    ]
)
# Strings meant to be read as numbers, that are not quite.
numeric_text = st.sampled_from(
    ["", " ", "NaN", "inf", "-5", "1e30", "1.5", "0x10", "1_000", " 12 ", "٣", "9" * 400, "true"]
) | ints.map(str)

ANSI = (
    "\x1b[31mred\x1b[0m",
    "\x1b[2J\x1b[H",
    "\x1b]8;;http://evil.example\x07link\x1b]8;;\x07",
    "\x1b]0;title\x07",
    "\x9b31m",
)
MARKUP = ("[/]", "[bold red]x[/]", "[link=http://evil.example]x[/link]", "[", "]", "[/", "\\[/]")
ODD = (
    "\ud800",
    "a\udc00b",
    "\x00",
    "a\nb",
    "\r\n",
    "\u202e",
    "\ufeff",
    "\u2028",
    "../../etc/passwd",
    "%s%n%x",
    "${jndi:ldap://x}",
    "'\"`",
    "\\",
    '"',
    "{}",
    "💥",
)
nasty_text = (
    st.sampled_from(ANSI + MARKUP + ODD)
    | st.text(max_size=40)
    | st.text(st.characters(categories=["Cc", "Cs", "Co", "Zl", "Zp"]), max_size=8)
)


@st.composite
def enormous_text(draw: st.DrawFn) -> str:
    """One string of tens of kilobytes to a few megabytes."""
    unit = draw(st.sampled_from(["a", "é", "💥", "[/]", "\x1b[31m", "\\", "/"]))
    # ASCII up to a megabyte; others escape to 6-12 bytes each in JSON: ten times fewer
    sizes = [10_000, 100_000, 1_000_000] if unit.isascii() else [10_000, 100_000]
    return unit * (draw(st.sampled_from(sizes)) // len(unit))


texts = nasty_text | numeric_text | enormous_text()
leaves = st.none() | st.booleans() | ints | floats | raw_numbers | texts
# Any JSON value a field could hold instead of the one it should.
anything = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
) | st.builds(nested, st.sampled_from([64, 300, 2_000, 20_000]), st.sampled_from(["list", "dict"]))


# --- byte-level mutation ---------------------------------------------------------------------

_INTERESTING = (b'"', b"{", b"}", b"[", b"]", b",", b":", b"=", b"|", b"\\", b"\x00", b"\xff",
                b"\xc3", b"\x1b", b"9", b"-", b"e", b" ")  # fmt: skip


def mutate(data: bytes, rng: random.Random, steps: int, newlines: bool = True) -> bytes:
    """``data`` after ``steps`` random byte edits; without ``newlines`` no line is added or cut."""
    out = bytearray(data)
    for _ in range(steps):
        if not out:
            out += b"{"
        pos = rng.randrange(len(out))
        op = rng.randrange(6)
        if op == 0:
            out[pos] ^= 1 << rng.randrange(8)
        elif op == 1:
            out[pos : pos + 1] = rng.choice(_INTERESTING)
        elif op == 2:
            del out[pos : pos + rng.randint(1, 16)]
        elif op == 3:
            out[pos:pos] = rng.choice(_INTERESTING) * rng.randint(1, 4)
        elif op == 4:  # a copy of another stretch: duplicated keys, glued documents
            start = rng.randrange(len(out))
            out[pos:pos] = out[start : start + rng.randint(1, 64)]
        else:
            out[pos:pos] = rng.randbytes(rng.randint(1, 8))
    if not newlines:
        out = bytearray(out.replace(b"\n", b" ").replace(b"\r", b" "))
    return bytes(out)
