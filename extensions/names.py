"""Validation of the project's names (``project_slug``, ``package_name``).

Plain Python, exposed to Jinja by :class:`NamesExtension`; ``copier.yml`` uses
``slug_error(project_slug)`` and ``package_error(package_name)`` as validators:
each returns an empty string for a good name, or a message naming the field.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from typing import Any

from jinja2.ext import Extension

# A distribution name as PEP 508 normalises it, restricted to lowercase so the
# slug, the folder and the package index name read the same.
SLUG_RE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
PACKAGE_RE = re.compile(r"^[a-z_][a-z0-9_]*$")

# Import names the generated project uses or may use on some tier; a package
# with one of these names would shadow it and break the project.
DEPENDENCY_MODULES = frozenset(
    {
        "amqp",
        "anyio",
        "apscheduler",
        "billiard",
        "celery",
        "click",
        "email_validator",
        "fakeredis",
        "fastapi",
        "flower",
        "h11",
        "httptools",
        "httpx",
        "kombu",
        "mypy",
        "pydantic",
        "pydantic_core",
        "pydantic_settings",
        "pytest",
        "redbeat",
        "redis",
        "rq",
        "rq_dashboard",
        "ruff",
        "starlette",
        "tests",
        "typing_extensions",
        "uvicorn",
        "uvloop",
        "vine",
        "watchfiles",
        "websockets",
        "dotenv",
        "yaml",
        "app",
        "conftest",
        "docs",
    }
)

# Standard-library modules of every Python the generated project supports
# (3.11 to 3.13). sys.stdlib_module_names covers the running interpreter; the
# extra names were added or removed between those versions.
STDLIB_MODULES = frozenset(sys.stdlib_module_names) | frozenset(
    {
        # added in 3.12 and 3.13
        "_colorize",
        "_pyrepl",
        "_interpreters",
        "_interpqueues",
        "_interpchannels",
        # removed in 3.12
        "asynchat",
        "asyncore",
        "distutils",
        "imp",
        "smtpd",
        # removed in 3.13 (PEP 594 and lib2to3)
        "aifc",
        "audioop",
        "cgi",
        "cgitb",
        "chunk",
        "crypt",
        "imghdr",
        "lib2to3",
        "mailcap",
        "msilib",
        "nis",
        "nntplib",
        "ossaudiodev",
        "pipes",
        "sndhdr",
        "spwd",
        "sunau",
        "telnetlib",
        "uu",
        "xdrlib",
        "test",
    }
)

# Soft keywords of every supported Python (`type` became one in 3.12).
SOFT_KEYWORDS = frozenset(keyword.softkwlist) | {"_", "case", "match", "type"}


#: Line breaks and tabs are fine in free text; other control characters (NUL, ESC, ...)
#: and Unicode non-characters cannot be written to YAML, and mean a paste went wrong.
ALLOWED_CONTROLS = {"\t", "\n", "\r"}


def text_error(question: str, value: Any, required: bool = True) -> str:
    """Why ``value`` is not a good free-text answer to ``question``, or ``""``."""
    text = "" if value is None else str(value)
    if required and not text.strip():
        return f"{question} must not be empty."
    for char in text:
        control = unicodedata.category(char) == "Cc" and char not in ALLOWED_CONTROLS
        if control or char in {"\ufffe", "\uffff"} or unicodedata.category(char) == "Cs":
            return (
                f"{question} must not contain the control character U+{ord(char):04X}; "
                "line breaks and tabs are fine."
            )
    return ""


def slug_error(value: Any) -> str:
    """Why ``value`` is not a good ``project_slug``, or ``""``."""
    if not isinstance(value, str) or not value:
        return "project_slug must not be empty."
    if not SLUG_RE.fullmatch(value):
        return (
            f"project_slug {value!r} must be lowercase letters and digits in words "
            "joined by single hyphens, starting with a letter (for example acme-orders)."
        )
    if len(value) > 64:
        return f"project_slug {value!r} is longer than 64 characters."
    return ""


def package_error(value: Any) -> str:
    """Why ``value`` is not a good ``package_name``, or ``""``."""
    if not isinstance(value, str) or not value:
        return "package_name must not be empty."
    if not value.isidentifier() or not PACKAGE_RE.fullmatch(value):
        return (
            f"package_name {value!r} must be a Python identifier in lowercase: letters, "
            "digits and underscores, not starting with a digit (for example acme_orders)."
        )
    if keyword.iskeyword(value) or value in SOFT_KEYWORDS:
        return f"package_name {value!r} is a Python keyword; pick another name."
    if value in STDLIB_MODULES:
        return (
            f"package_name {value!r} would shadow the standard-library module of the same "
            "name; pick another name (for example add your project's prefix)."
        )
    if value in DEPENDENCY_MODULES:
        return (
            f"package_name {value!r} would shadow a module the generated project uses "
            f"or may use ({value}); pick another name."
        )
    if len(value) > 64:
        return f"package_name {value!r} is longer than 64 characters."
    return ""


def slugify(name: Any) -> str:
    """A default ``project_slug`` from ``project_name``: ``"Acme Orders!"`` -> ``acme-orders``."""
    ascii_name = unicodedata.normalize("NFKD", str(name)).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_name.lower())
    slug = "-".join(words)
    # A slug must start with a letter.
    if not slug[:1].isalpha():
        slug = f"service-{slug}".rstrip("-")
    # At most 64 characters, cut at a hyphen where there is one.
    if len(slug) > 64:
        slug = slug[:64]
        slug = slug.rsplit("-", 1)[0] if "-" in slug else slug
    return slug


def py_string(value: Any) -> str:
    """``value`` as a double-quoted Python string literal that ruff leaves as is.

    The literal is pure ASCII: other characters are written as ``\\u``/``\\U`` escapes, so
    ruff's lint has no ambiguous character to flag (RUF001: Cyrillic letters, line
    separators ...) and its formatter no quote to switch (``"`` is ``\\u0022``).
    """
    body = []
    for char in str(value):
        code = ord(char)
        if char == '"':
            body.append("\\u0022")
        elif char == "\\":
            body.append("\\\\")
        elif 0x20 <= code < 0x7F:
            body.append(char)
        elif char == "\n":
            body.append("\\n")
        elif char == "\t":
            body.append("\\t")
        elif char == "\r":
            body.append("\\r")
        elif code <= 0xFFFF:
            body.append(f"\\u{code:04x}")
        else:
            body.append(f"\\U{code:08x}")
    return '"' + "".join(body) + '"'


def toml_string(value: Any) -> str:
    """``value`` as a TOML basic string: JSON's escapes, which TOML shares, but non-ASCII
    written as is (``tojson`` would write a character beyond U+FFFF as a surrogate pair of
    escapes, which TOML refuses). Control characters are refused earlier by ``text_error``.
    """
    return json.dumps(str(value), ensure_ascii=False)


def one_line(value: Any) -> str:
    """``value`` with its line breaks and runs of spaces folded to single spaces."""
    return " ".join(str(value).split())


class NamesExtension(Extension):
    """Jinja globals ``slug_error``, ``package_error``, ``text_error``; filters ``slugify``,
    ``py_string``, ``toml_string``, ``one_line``."""

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        environment.globals.update(
            slug_error=slug_error, package_error=package_error, text_error=text_error
        )
        environment.filters["slugify"] = slugify
        environment.filters["py_string"] = py_string
        environment.filters["one_line"] = one_line
        environment.filters["toml_string"] = toml_string
