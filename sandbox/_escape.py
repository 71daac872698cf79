"""Filter-controlled text made safe to encode, log and show on a terminal.

Everything a filter can put into text (exception messages and attributes,
``print`` output) may hold lone surrogates (which UTF-8 and JSON encoders
refuse), terminal control sequences (ESC, BEL, CR) and bidi overrides. The
worker escapes that text before it leaves the process, and the CLI escapes it
again before it reaches a terminal.
"""

from __future__ import annotations

__all__ = ["escape_surrogates", "escape_text"]


def escape_text(text: str, keep: str = "") -> str:
    """``text`` with every non-printable character not in ``keep`` escaped as ``repr`` does.

    C0/C1 controls (ESC, BEL, CR, ...), bidi and other format characters
    (U+202E, ...), separators other than the space, unassigned and private-use
    code points and lone surrogates become ``\\xNN``, ``\\uNNNN`` or
    ``\\UNNNNNNNN`` (``\\r``, ``\\n``, ``\\t`` as ``repr`` spells them);
    printable characters, the backslash included, are kept. The result is
    always encodable as UTF-8. Python's ``str.isprintable`` decides.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def escape_surrogates(text: str) -> str:
    """``text`` with only lone surrogates escaped (``\\ud800``): encodable as UTF-8, otherwise unchanged."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text
