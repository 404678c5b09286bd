"""What reaches an operator's terminal: text from merchants, PSPs and reviewers, made inert."""

from __future__ import annotations

import re

# C0 controls but tab and newline (ESC starts colour, cursor, clipboard and hyperlink sequences),
# DEL, C1 controls (CSI and OSC in one byte), and the marks that reorder what a line shows
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """`text` with every control character shown as its escape (`\\x1b`), never acted on."""
    return _UNPRINTABLE.sub(lambda found: _escaped(found.group()), str(text))


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
