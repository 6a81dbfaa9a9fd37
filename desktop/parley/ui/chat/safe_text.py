"""Untrusted text made safe to show and to copy: invisible characters and links.

Used by the Markdown renderer (:mod:`parley.ui.chat.markdown`, which re-exports these names),
the chat view and the Sources panel. Pure Python, no Qt.

- Invisible and bidi control characters are *revealed* on screen as ``⟨U+202E⟩`` and
  *stripped* from anything copied (:func:`reveal_invisible`, :func:`strip_invisible`); ZWJ/ZWNJ
  between non-ASCII characters, soft hyphens inside words and emoji tag sequences survive.
- Only ``http``/``https`` URLs with a real host and no credentials may be opened
  (:func:`link_is_openable`); :func:`display_url` is the form a confirmation shows (punycode
  host, invisible characters revealed).
"""

from __future__ import annotations

import re
from types import ModuleType
from urllib.parse import unquote, urlsplit

_idna: ModuleType | None
try:  # UTS #46 as browsers apply it (faß.de stays faß.de); the stdlib codec is IDNA 2003.
    import idna as _idna_module

    _idna = _idna_module
except ImportError:  # pragma: no cover - idna ships with httpx/requests in practice
    _idna = None

# ---------------------------------------------------------------- invisible characters

_TAG_FIRST = 0xE0000
_TAG_CANCEL = 0xE007F
_BLACK_FLAG = "\U0001f3f4"
_ZWNJ = "\u200c"
_ZWJ = "\u200d"
_SOFT_HYPHEN = "\u00ad"

_SUSPECT_CLASS = (
    "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"  # C0/C1 controls except \t \n \r
    "\u00ad"  # soft hyphen
    "\u061c"  # arabic letter mark (bidi)
    "\u200b-\u200f"  # zero width space/non-joiner/joiner, LRM, RLM
    "\u202a-\u202e"  # bidi embeddings and overrides
    "\u2060-\u2064"  # word joiner, invisible operators
    "\u2066-\u2069"  # bidi isolates
    "\ufeff"  # BOM / zero width no-break space
)
_SUSPECT = re.compile(f"(?P<tags>[\U000e0000-\U000e007f]+)|(?P<one>[{_SUSPECT_CLASS}])")
"""One run of tag characters, or one other suspicious invisible character."""

MARK_OPEN = "⟨"
"""Opens a revealed character's marker (``⟨U+202E⟩``)."""
MARK_CLOSE = "⟩"
"""Closes a revealed character's marker."""


def _codepoint_marker(ch: str) -> str:
    return f"{MARK_OPEN}U+{ord(ch):04X}{MARK_CLOSE}"


def _is_emoji_tag_sequence(text: str, start: int, run: str) -> bool:
    """Whether a tag run is a real emoji tag sequence (🏴 + a–z/0–9 tags + CANCEL TAG)."""
    if start == 0 or text[start - 1] != _BLACK_FLAG or len(run) < 2:
        return False
    if ord(run[-1]) != _TAG_CANCEL:
        return False
    return all(0xE0030 <= ord(c) <= 0xE0039 or 0xE0061 <= ord(c) <= 0xE007A for c in run[:-1])


def _visible_joiner_context(text: str, start: int) -> bool:
    """ZWJ/ZWNJ are legitimate between two visible non-ASCII characters (emoji, scripts)."""
    if start == 0 or start + 1 >= len(text):
        return False
    before, after = text[start - 1], text[start + 1]
    for ch in (before, after):
        if ord(ch) < 0x80 or ch.isspace() or _SUSPECT.match(ch):
            return False
    return True


def _process_invisible(text: str, *, code: bool, reveal: bool) -> str:
    if not _SUSPECT.search(text):  # the common case costs one regex scan
        return text
    out: list[str] = []
    last = 0
    for m in _SUSPECT.finditer(text):
        start = m.start()
        run = m.group()
        if m.group("tags") is not None:
            keep = _is_emoji_tag_sequence(text, start, run)
            if keep:
                continue
            out.append(text[last:start])
            if reveal:
                decoded = "".join(
                    chr(ord(c) - _TAG_FIRST) if 0xE0020 <= ord(c) <= 0xE007E else "?" for c in run
                )
                out.append(f'{MARK_OPEN}tags: "{decoded}"{MARK_CLOSE}')
            last = m.end()
            continue
        if run in (_ZWJ, _ZWNJ) and _visible_joiner_context(text, start):
            continue
        if (
            run == _SOFT_HYPHEN
            and not code
            and 0 < start < len(text) - 1
            and text[start - 1].isalpha()
            and text[start + 1].isalpha()
        ):
            continue
        out.append(text[last:start])
        if reveal:
            out.append(_codepoint_marker(run))
        last = m.end()
    out.append(text[last:])
    return "".join(out)


def reveal_invisible(text: str, *, code: bool = False) -> str:
    """Show invisible and bidi control characters as visible markers such as ``⟨U+202E⟩``.

    Runs of Unicode tag characters (used to smuggle hidden ASCII) become
    ``⟨tags: "decoded text"⟩``. Legitimate uses are kept as they are: ZWJ/ZWNJ between two
    visible non-ASCII characters, a soft hyphen between two letters of prose (never in code),
    and emoji tag sequences after 🏴.

    Args:
        text: Untrusted text (model output, a URL, a code block).
        code: True for code, where even an in-word soft hyphen is suspicious.

    Returns:
        The text with each suspicious character replaced by a visible marker.
    """
    return _process_invisible(text, code=code, reveal=True)


def strip_invisible(text: str, *, code: bool = False) -> str:
    """Remove the characters :func:`reveal_invisible` would reveal (used for the clipboard).

    Args:
        text: Untrusted text about to be copied.
        code: True for code, where even an in-word soft hyphen is removed.

    Returns:
        The text without bidi controls, hidden tag text and stray zero-width characters.
    """
    return _process_invisible(text, code=code, reveal=False)


# ---------------------------------------------------------------- links

_OPENABLE_SCHEMES = frozenset({"http", "https"})
_MAX_URL_LENGTH = 8192
_URL_FORBIDDEN = re.compile(r"[\s\\\x00-\x1f\x7f]")
_HOST_ALLOWED = re.compile(r"^[a-z0-9._-]+$")


def _ascii_host(host: str) -> str | None:
    """The IDNA (punycode) form of a host name, or None if it cannot be one."""
    host = host.rstrip(".").lower() if host.endswith(".") and len(host) > 1 else host.lower()
    if not host:
        return None
    if host.isascii():
        return host if _HOST_ALLOWED.match(host) else None
    if _idna is not None:
        try:
            encoded = _idna.encode(host, uts46=True, transitional=False)
            return encoded.decode("ascii")
        except (_idna.IDNAError, UnicodeError, ValueError):
            return None
    try:  # pragma: no cover - fallback when the idna package is missing
        return host.encode("idna").decode("ascii")
    except UnicodeError:  # pragma: no cover
        return None


def _ip_literal(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def link_is_openable(url: str) -> bool:
    r"""Whether a link from model output may be offered for opening in a browser.

    Only absolute ``http``/``https`` URLs with a host are openable. Rejected: every other
    scheme (``javascript:``, ``data:``, ``file:``, custom schemes), scheme-relative and UNC
    paths (``//host/share``, ``\\\\host\\share``), URLs with credentials
    (``https://bank.com@evil.example/``), whitespace, backslashes, control or invisible
    characters (also percent-encoded ones in the host), and hosts that have no valid IDNA form.

    Args:
        url: The link target as it appears in the rendered HTML.

    Returns:
        True if the link may be opened (after the person confirms the full URL).
    """
    if not url or len(url) > _MAX_URL_LENGTH:
        return False
    if _URL_FORBIDDEN.search(url) or _SUSPECT.search(url):
        return False
    if _SUSPECT.search(unquote(url)):  # %E2%80%AE decodes to an override in some viewers
        return False
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError for a bad port
    except ValueError:
        return False
    if parts.scheme.lower() not in _OPENABLE_SCHEMES:
        return False
    if not url[len(parts.scheme) :].startswith("://"):
        return False
    if not parts.netloc or "@" in parts.netloc:
        return False
    host = parts.hostname or ""
    if not host or "%" in host:
        return False
    if port == 0:
        return False
    if _ip_literal(host):
        return True
    return _ascii_host(host) is not None


def display_url(url: str) -> str:
    """The form of a URL to show a person before opening it.

    The host is shown in its IDNA/punycode form (``https://xn--pple-43d.com/`` for a Cyrillic
    look-alike of apple.com), credentials stay visible, and invisible or bidi control
    characters anywhere are revealed as ``⟨U+…⟩`` markers. Input that is not a URL at all is
    returned with its invisible characters revealed.

    Args:
        url: The link target.

    Returns:
        A single-line, spoof-resistant rendering of the URL.
    """
    text = url.replace("\r", " ").replace("\n", " ")
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return reveal_invisible(text, code=True)
    if not parts.scheme or not parts.netloc:
        return reveal_invisible(text, code=True)
    host = parts.hostname or ""
    if _ip_literal(host):
        shown_host = f"[{host}]" if ":" in host else host
    else:
        ascii_host = _ascii_host(host)
        shown_host = ascii_host if ascii_host is not None else reveal_invisible(host, code=True)
    userinfo = ""
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@"
    netloc = f"{userinfo}{shown_host}" + (f":{port}" if port is not None else "")
    rest = parts.path
    if parts.query:
        rest += "?" + parts.query
    if parts.fragment:
        rest += "#" + parts.fragment
    return reveal_invisible(f"{parts.scheme.lower()}://{netloc}{rest}", code=True)
