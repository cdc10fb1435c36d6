"""User text made safe to show: clipped to a readable length, invisible and control characters made visible.

Names and values come from input files and may hold anything: a 150 MB cell, terminal escape codes, bidi
overrides, rich markup, HTML or mathtext. Every place that shows user text to a person (terminal summary,
report, figures) passes it through :func:`plain` and then applies its own escaping (``rich.markup.escape``,
``html.escape``, matplotlib's ``parse_math=False``).
"""

from __future__ import annotations

import re

#: longest user text shown (longer text is cut, an ellipsis and its full length are shown)
LIMIT = 200

# C0/C1 control characters, zero-width and bidi controls, byte-order mark, lone surrogates
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ud800-\udfff]")


_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clip(text: str, *, limit: int = LIMIT) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis and the full length when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def visible(text: str) -> str:
    """``text`` with control and invisible characters written as escapes (``\\x1b``, ``\\u202e``)."""
    return _INVISIBLE.sub(_escape, text)


def plain(value: object, *, limit: int = LIMIT) -> str:
    """Any value as short, visible text (:func:`clip` then :func:`visible`)."""
    return visible(clip(str(value), limit=limit))


def names(values: list[object], *, most: int = 20, limit: int = 60) -> str:
    """A comma-separated list of at most ``most`` names (each through :func:`plain`), saying how many more."""
    shown = ", ".join(plain(v, limit=limit) for v in values[:most])
    return shown + (f", … and {len(values) - most:,} more" if len(values) > most else "")
