"""Text from traces and logs, made safe for a terminal.

Span attributes, log lines, file names and exception messages are written by
whoever sends a frame or names a file: an id like ``[/]`` would be rich markup,
``\\x1b[2J`` would clear the operator's screen, U+202E would reverse what follows.
Every renderer routes such text through ``shown`` (or ``plain``/``ident``, built on
it) and hands rich a ``Text``, which is never parsed as markup.
"""

from __future__ import annotations

import hashlib
import re

from rich.text import Text

# Every code point of the categories Cc, Cf, Cs, Zl and Zp: controls, invisible format
# characters (bidi overrides and isolates, zero-width ones, tags), lone surrogates and
# the line/paragraph separators. Listed rather than computed from unicodedata, which
# would walk 1.1M code points at import; tests/cli/test_safe_output.py checks that the
# list is complete for the running Python's Unicode tables.
_UNSAFE = re.compile(
    "["
    "\x00-\x1f\x7f-\x9f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ud800-\udfff\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
    "]"
)

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
ID_LIMIT = 40  # ids longer than this are shown as a prefix and a hash
_ID_KEEP = 24
_HASH_HEX = 8


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(value: object) -> str:
    """``value`` as a string with every control or invisible format character as an escape.

    ESC becomes the four characters ``\\x1b``, U+202E ``\\u202e``, a newline ``\\n``:
    one value stays on one line and cannot move the cursor or reorder the text around it.
    """
    text = value if isinstance(value, str) else str(value)
    if _UNSAFE.search(text) is None:  # the common case: nothing to replace, no copy
        return text
    return _UNSAFE.sub(_visible, text)


def plain(value: object, style: str = "") -> Text:
    """``shown(value)`` as rich ``Text``: printed as is, never read as markup."""
    return Text(shown(value), style=style)


def ident(value: str | None, placeholder: str = "-") -> str:
    """An id for a table: shown in full up to ``ID_LIMIT`` characters.

    A longer one is its first characters, ``…`` and 8 hex digits of the SHA-256 of the
    whole id, so two long ids with the same prefix still differ on screen and the row
    can be matched with the full id of ``--json``.
    """
    if not value:
        return placeholder
    if len(value) <= ID_LIMIT:
        return shown(value)
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{shown(value[:_ID_KEEP])}…{digest[:_HASH_HEX]}"
