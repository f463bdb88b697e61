"""Read one string field of a JSON object while the object is still arriving in pieces.

A streamed function call reaches membot as fragments of its arguments' JSON text (``{"mess`` ``age": "Hel``
``lo\\u00e9"…``), cut anywhere: inside a key, an escape or a ``\\uXXXX`` sequence. :class:`StringFieldReader` is fed
those fragments and keeps the decoded value of one top-level string field so far, tolerantly: nested values are
skipped, an escape cut in two waits for its second half, and text that is not JSON never raises (the reader just
stops finding the field). The final arguments are still parsed by ``json.loads``; this is only for showing a reply
as it grows.
"""

from __future__ import annotations

__all__ = ["StringFieldReader"]

_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")

# where the reader is in the top-level object
_START, _KEY_OR_END, _KEY, _COLON, _VALUE, _FIELD, _SKIP, _AFTER_VALUE, _DONE = range(9)


class StringFieldReader:
    """The value of the top-level string field ``key`` of a JSON object fed in fragments (see the module doc).

    ``value`` is None until the field's string has begun, then the text decoded so far (a later occurrence of the
    key starts over: the last one wins, as with ``json.loads``). ``complete``: its closing quote arrived.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.complete = False
        self._started = False
        self._state = _START
        self._parts: list[str] = []
        self._token: list[str] = []  # the key being read
        self._escape: str | None = None  # an escape begun but not finished ("\\", "\\u12" ...)
        self._high: str | None = None  # a high surrogate waiting for its low half
        self._depth = 0  # nesting inside a skipped value
        self._in_string = False  # inside a string of a skipped value
        self._skip_escape = False

    @property
    def value(self) -> str | None:
        if not self._started:
            return None
        if len(self._parts) != 1:
            self._parts = ["".join(self._parts)]
        return self._parts[0]

    def feed(self, fragment: str) -> bool:
        """Take the next piece of JSON text; True when ``value`` changed."""
        before = self.value
        for char in fragment:
            if self._state == _DONE:
                break
            self._step(char)
        return self.value != before

    def _step(self, char: str) -> None:
        state = self._state
        if state == _FIELD:
            self._string_char(char)
        elif state == _SKIP:
            self._skip_char(char)
        elif state == _KEY:
            if self._escape is not None or char == "\\":
                self._key_escape(char)
            elif char == '"':
                self._state = _COLON
            else:
                self._token.append(char)
        elif char in " \t\r\n":
            return
        elif state == _START:
            self._state = _KEY_OR_END if char == "{" else _DONE
        elif state == _KEY_OR_END:
            if char == '"':
                self._token = []
                self._state = _KEY
            elif char != ",":
                self._state = _DONE  # "}" or not JSON: nothing more to find
        elif state == _COLON:
            self._state = _VALUE if char == ":" else _DONE
        elif state == _VALUE:
            if char == '"' and "".join(self._token) == self.key:
                self._parts, self._started, self.complete = [""], True, False
                self._high = None
                self._state = _FIELD
            else:
                self._depth, self._in_string, self._skip_escape = 0, False, False
                self._state = _SKIP
                self._skip_char(char)
        elif state == _AFTER_VALUE:
            self._state = _KEY_OR_END if char == "," else _DONE

    def _key_escape(self, char: str) -> None:
        """Keys rarely hold escapes; they are kept verbatim, which never equals a plain key name."""
        self._token.append(char)
        self._escape = None if self._escape is not None else char

    def _string_char(self, char: str) -> None:
        escape = self._escape
        if escape is None:
            if char == "\\":
                self._escape = "\\"
            elif char == '"':
                self._flush_high()
                self.complete = True
                self._state = _AFTER_VALUE
            else:
                self._emit(char)
            return
        if escape == "\\":
            if char == "u":
                self._escape = "\\u"
                return
            self._escape = None
            self._emit(_SIMPLE_ESCAPES.get(char, char))  # an unknown escape keeps its character (tolerant)
            return
        if char not in _HEX:  # a broken \u escape: keep what came, as text
            self._escape = None
            self._emit(escape + char)
            return
        escape += char
        if len(escape) < 6:
            self._escape = escape
            return
        self._escape = None
        self._emit(chr(int(escape[2:], 16)))

    def _emit(self, text: str) -> None:
        """Add decoded text; a high surrogate is held until its low half decides the character."""
        if len(text) == 1 and 0xD800 <= ord(text) <= 0xDBFF:
            self._flush_high()
            self._high = text
            return
        if self._high is not None:
            high, self._high = self._high, None
            if len(text) == 1 and 0xDC00 <= ord(text) <= 0xDFFF:
                text = chr(0x10000 + ((ord(high) - 0xD800) << 10) + (ord(text) - 0xDC00))
            else:
                self._parts.append(high)  # a lone surrogate, as json.loads keeps it
        self._parts.append(text)

    def _flush_high(self) -> None:
        if self._high is not None:
            self._parts.append(self._high)
            self._high = None

    def _skip_char(self, char: str) -> None:
        """Walk over a value that is not the field: strings, numbers, literals, nested objects and arrays."""
        if self._in_string:
            if self._skip_escape:
                self._skip_escape = False
            elif char == "\\":
                self._skip_escape = True
            elif char == '"':
                self._in_string = False
                if self._depth == 0:
                    self._state = _AFTER_VALUE
            return
        if char == '"':
            self._in_string = True
        elif char in "{[":
            self._depth += 1
        elif char in "}]":
            if self._depth == 0:
                self._state = _DONE  # the object ended right after a number or literal
                return
            self._depth -= 1
            if self._depth == 0:
                self._state = _AFTER_VALUE
        elif char == "," and self._depth == 0:
            self._state = _KEY_OR_END
