"""Text from outside (a camera, a file, a broker) made safe to show to a person.

A stolen camera chooses the bytes of every string it sends. Shown raw on a terminal,
ESC starts a control sequence (clear the screen, move the cursor, set the window title),
BEL rings, CR returns to the line start so later text overwrites earlier text, and
Unicode bidi overrides reverse what follows: an operator adjudicating alerts could be
shown something other than what is stored. Fields are checked against the protocol's
patterns at receipt (``agent/protocol/fields.py``); this is the second wall, for
everything printed.

``shown(text)`` replaces every character that is not printable (Unicode categories
Cc, Cf, Cs, Co, Cn, Zl, Zp and every space but U+0020) with a visible escape (``\\x1b``,
``\\u202e``), and a backslash with two, so an escape in the output always means a
character that was escaped. Every CLI command writes through ``escaped_output()``
(``agent/cli/common.py``), which applies it to everything on stdout and stderr except
line breaks. The web console escapes HTML with Jinja2's autoescape and uses ``shown``
for anything that is not HTML.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def shown(text: object) -> str:
    """``text`` with every non-printable character (and the backslash) escaped."""
    s = text if isinstance(text, str) else str(text)
    if s.isprintable() and "\\" not in s:
        return s
    return "".join("\\\\" if ch == "\\" else ch if ch.isprintable() else _escape(ch) for ch in s)


def shown_lines(text: str) -> str:
    """``shown`` for each line of ``text``, keeping its line breaks."""
    return "\n".join(shown(line) for line in text.split("\n"))


class EscapingWriter:
    """A text stream that writes ``shown_lines`` of everything to ``raw``.

    Our own terminal control (a progress bar's carriage return) writes to ``raw``."""

    def __init__(self, raw: TextIO) -> None:
        self.raw = raw

    def write(self, text: str) -> int:
        self.raw.write(shown_lines(text))
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        # flush, fileno, isatty, encoding …: those of the stream underneath.
        return getattr(self.raw, name)


def raw_stream(stream: TextIO) -> TextIO:
    """The stream underneath an ``EscapingWriter`` (for the program's own control text)."""
    return stream.raw if isinstance(stream, EscapingWriter) else stream


@contextmanager
def escaped_output() -> Iterator[None]:
    """Escape everything written to stdout and stderr until the block ends."""
    saved = sys.stdout, sys.stderr
    sys.stdout = EscapingWriter(saved[0])
    sys.stderr = EscapingWriter(saved[1])
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
