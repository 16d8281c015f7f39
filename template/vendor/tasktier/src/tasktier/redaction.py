"""Secrets masked in text and in JSON-like values: what the logs and the API show.

A leaf module: it imports nothing of the runtime, so the job model, the logs and the HTTP
routes all use it without importing each other.
"""

from __future__ import annotations

import re
from typing import Any

#: The password in a URL's userinfo (``scheme://user:PASSWORD@host``), as in REDIS_URL.
#: The scheme starts a word and no part is read twice (possessive ``*+``): linear time.
_URL_PASSWORD = re.compile(r"(?<![a-zA-Z0-9+.-])([a-zA-Z][a-zA-Z0-9+.-]*+://[^:/@\s]*+:)[^@/\s]++@")

#: Names that mark a value as a secret, inside a longer name too (``db_password``,
#: ``X-Api-Key``, ``accessToken``), when no letter follows (``auth`` but not ``author``).
SECRET_NAME = re.compile(
    r"(?:password|passwd|pwd|passphrase|secret|token|credentials?|auth|authorization"
    r"|api[_-]?key|access[_-]?key|private[_-]?key)(?![a-z])",
    re.IGNORECASE,
)

#: ``name=value`` or ``name: value`` where the name holds a secret's name: the value, quoted
#: or not, as in JSON (``"password": "x"``), or after an Authorization header's scheme
#: (``Bearer x``). Linear time: a name starts a word and no part is read twice (``++``); an
#: unclosed quote masks the rest of its line.
_SECRET_VALUE = re.compile(
    rf"""
    (?<![\w-])(?=[\w-]*?{SECRET_NAME.pattern})     # a word holding a secret's name
    (?P<name>[\w-]++["']?[ \t]*+[:=][ \t]*+)     # it, its closing quote, ':' or '='
    (?P<value>
        (?:bearer|basic|digest|token)[ \t]++[^\s"',;&]++   # Authorization: Bearer x
      | "(?:[^"\\\n]|\\.)*+"?                  # "x" (JSON escapes kept together)
      | '[^'\n]*+'?                              # 'x'
      | [^\s"',;&]++                              # x: up to a space , ; & or quote
    )
    """,
    re.IGNORECASE | re.VERBOSE,
)


def redact(text: str) -> str:
    """``text`` with its secrets replaced by ``***``: the password of every URL, and the
    value of every ``password=``, ``token: ``, ``"api_key": "..."``, ``Authorization:
    Bearer ...`` and the like (:data:`SECRET_NAME`, any case)."""
    return _SECRET_VALUE.sub(_masked, _URL_PASSWORD.sub(r"\1***@", text))


def _masked(match: re.Match[str]) -> str:
    value = match["value"]
    if value[0] in "\"'":
        return f"{match['name']}{value[0]}***{value[0]}"
    scheme, _, credential = value.partition(" ")
    return f"{match['name']}{scheme} ***" if credential else f"{match['name']}***"


def redact_value(value: Any) -> Any:
    """A JSON-like ``value`` (dict, list, str, number, None) with its secrets masked: every
    string in it redacted (:func:`redact`), and the value of every key that names a secret
    (``password``, ``api_key``, ``accessToken``...) replaced by ``"***"``, whatever it is."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {
            redact(k) if isinstance(k, str) else k: (
                "***" if isinstance(k, str) and SECRET_NAME.search(k) else redact_value(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value
