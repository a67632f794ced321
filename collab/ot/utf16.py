"""String helpers that count and cut in UTF-16 code units, as JavaScript does.

Python strings are sequences of code points; the browser's are sequences of
UTF-16 code units, and every length and offset in a delta is in code units.
A character outside the Basic Multilingual Plane (an emoji, say) is one code
point but two code units.  Cutting such a character in half, as JavaScript's
``substr`` may, leaves lone surrogates; :func:`join` glues halves back into
the real character so that Python strings stay equal to what JSON decoding of
the JavaScript result gives.
"""

_ENC = "utf-16-le"
_PASS = "surrogatepass"


def utf16_len(s: str) -> int:
    """Length of ``s`` in UTF-16 code units (JavaScript's ``s.length``)."""
    # isascii() is a flag check in CPython; encoding is the fastest exact count otherwise.
    if s.isascii():
        return len(s)
    return len(s.encode(_ENC, _PASS)) >> 1


def substr(s: str, start: int, length: int) -> str:
    """JavaScript's ``s.substr(start, length)`` with offsets in code units."""
    if s.isascii():
        return s[start : start + length]
    data = s.encode(_ENC, _PASS)
    if len(data) == len(s) << 1:
        # No character needs two code units, so code units are code points.
        return s[start : start + length]
    return data[start << 1 : (start + length) << 1].decode(_ENC, _PASS)


def splits_pair(s: str, offset: int) -> bool:
    """True if code-unit ``offset`` falls between the two halves of a surrogate pair."""
    if s.isascii() or offset <= 0:
        return False
    data = s.encode(_ENC, _PASS)
    if offset << 1 >= len(data):
        return False
    i = offset << 1
    low = data[i] | data[i + 1] << 8
    high = data[i - 2] | data[i - 1] << 8
    return 0xDC00 <= low <= 0xDFFF and 0xD800 <= high <= 0xDBFF


def join(a: str, b: str) -> str:
    """Concatenate, merging a trailing high surrogate with a leading low surrogate."""
    if a and b and "\ud800" <= a[-1] <= "\udbff" and "\udc00" <= b[0] <= "\udfff":
        pair = 0x10000 + ((ord(a[-1]) - 0xD800) << 10) + (ord(b[0]) - 0xDC00)
        return a[:-1] + chr(pair) + b[1:]
    return a + b


def has_lone_surrogate(s: str) -> bool:
    """True if ``s`` holds a surrogate code point, which no well-formed text does."""
    if s.isascii():
        return False
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
