"""Host-supplied text made visible: the one rule every report format shares.

A banner, a command line or a host name can carry control, format (bidi) and
surrogate characters. Emitted raw they break formats (XML 1.0 forbids most C0
controls, UTF-8 cannot encode a lone surrogate) or disguise what the text says
(a right-to-left override). Every format therefore shows them as visible
escapes such as ``\\x1b`` or ``\\u202e`` instead of emitting them.
"""

from __future__ import annotations

import unicodedata

# Control, format (bidi, zero-width), surrogate, unassigned (includes the XML-forbidden
# noncharacters U+FFFE/U+FFFF), and line/paragraph separators.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Cn", "Zl", "Zp"})


def is_invisible(ch: str) -> bool:
    return unicodedata.category(ch) in INVISIBLE_CATEGORIES


def visible_escape(ch: str) -> str:
    """The escape a reader sees in place of one invisible character."""
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(value: str, keep: str = "") -> str:
    """`value` with every invisible character except those in `keep` shown as an escape."""
    if value.isprintable():
        return value
    rest = value
    for ch in keep:
        rest = rest.replace(ch, "")
    if rest.isprintable():  # a multi-line text: checked at C speed, not a character at a time
        return value
    return "".join(
        visible_escape(ch) if ch not in keep and is_invisible(ch) else ch for ch in value
    )
