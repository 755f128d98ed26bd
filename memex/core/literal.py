"""How stored text is shown to people: literally, with control characters as escapes.

Stored text is untrusted: a memory may hold terminal control sequences or bidirectional
overrides copied from a chat or a web page. Every interface that shows memories to
people (the command line, the terminal inspector) shows control characters as visible
escapes (``\\x1b``) by these rules, so nothing stored can restyle, retitle or rewrite
the terminal.
"""

from __future__ import annotations

import re

# DEL and the C1 controls, and the bidirectional embeddings, overrides and isolates
# that can make text read differently than it is: shown as escapes everywhere, JSON too
# (which escapes the C0 controls itself).
_UNSAFE = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[\x00-\x08\x0b-\x1f{_UNSAFE}]")  # tab and line feed kept
_CONTROL_OR_BREAK = re.compile(f"[\x00-\x1f{_UNSAFE}\u2028\u2029]")
_JSON_RAW = re.compile(f"[{_UNSAFE}]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """``text`` with control and bidirectional-override characters shown as escapes;
    tabs and line breaks are kept."""
    return _CONTROL.sub(_escape, text)


def json_safe(text: str) -> str:
    """JSON text with the controls JSON leaves raw written as ``\\uXXXX`` (same value)."""
    return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def one_line(text: str) -> str:
    """``text`` on one line: whitespace runs folded to a space, controls escaped."""
    return _CONTROL_OR_BREAK.sub(_escape, " ".join(text.split()))
