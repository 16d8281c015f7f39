"""Unit tests of the name validators and the slug default (extensions/names.py)."""

from __future__ import annotations

import ast
import importlib.util
import keyword
import sys
from pathlib import Path

import pytest
from jinja2 import Environment

import names

EXTENSIONS = Path(__file__).resolve().parent.parent / "extensions"

# --- project_slug -----------------------------------------------------------

GOOD_SLUGS = [
    "acme-orders",
    "my-service",
    "a",
    "svc2",
    "a1-b2-c3",
    "orders-v2",
    "x" * 64,
    "-".join(["ab"] * 21) + "-a",  # 64 characters with hyphens
]

BAD_SLUGS = [
    "",
    "Acme-Orders",
    "acmeOrders",
    "1abc",
    "2-fast",
    "acme--orders",
    "acme-",
    "-acme",
    "acme orders",
    " acme",
    "acme\n",
    "acme_orders",
    "acme.orders",
    "acme/orders",
    "café",
    "x" * 65,
    "-".join(["ab"] * 22),  # 65 characters
]


@pytest.mark.parametrize("slug", GOOD_SLUGS)
def test_good_slugs_accepted(slug: str) -> None:
    assert names.slug_error(slug) == ""


@pytest.mark.parametrize("slug", BAD_SLUGS, ids=[repr(s)[:30] for s in BAD_SLUGS])
def test_bad_slugs_refused_naming_the_field(slug: str) -> None:
    message = names.slug_error(slug)
    assert message.strip()
    assert "project_slug" in message


@pytest.mark.parametrize("value", [None, 3, ["acme"]])
def test_non_string_slug_refused(value: object) -> None:
    assert "project_slug" in names.slug_error(value)


# --- package_name -----------------------------------------------------------

GOOD_PACKAGES = ["acme_orders", "my_service", "svc2", "orders_v2", "a", "x" * 64]

NOT_IDENTIFIERS = [
    "",
    "Acme",
    "acmeOrders",
    "1abc",
    "2_fast",
    "acme-orders",
    "acme orders",
    "acme.orders",
    "acme\n",
    "café",
    "x" * 65,
]
KEYWORDS = ["class", "def", "import", "async", "await", "lambda", "pass", "yield"]
SOFT_KEYWORDS = ["match", "case", "_"]
STDLIB = ["queue", "logging", "json", "test", "asyncio", "os", "sys", "typing", "email", "http"]
DEPENDENCIES = [
    "celery",
    "rq",
    "redis",
    "fastapi",
    "pydantic",
    "starlette",
    "uvicorn",
    "kombu",
    "httpx",
    "pydantic_settings",
]


@pytest.mark.parametrize("package", GOOD_PACKAGES)
def test_good_packages_accepted(package: str) -> None:
    assert names.package_error(package) == ""


@pytest.mark.parametrize(
    "package",
    NOT_IDENTIFIERS + KEYWORDS + SOFT_KEYWORDS + STDLIB + DEPENDENCIES,
    ids=lambda s: repr(s)[:30],
)
def test_bad_packages_refused_naming_the_field(package: str) -> None:
    message = names.package_error(package)
    assert message.strip()
    assert "package_name" in message


def test_keyword_lists_cover_the_running_interpreter() -> None:
    for word in keyword.kwlist:
        if word.islower():
            assert "package_name" in names.package_error(word), word
    for word in keyword.softkwlist:
        assert "package_name" in names.package_error(word), word


def test_soft_keyword_type_refused_on_every_supported_python() -> None:
    # `type` is a soft keyword from Python 3.12 (PEP 695). The generated project
    # supports 3.11 to 3.13, so the answer must not depend on the Python running copier.
    assert "package_name" in names.package_error("type")


@pytest.mark.parametrize("value", [None, 3, ["acme"]])
def test_non_string_package_refused(value: object) -> None:
    assert "package_name" in names.package_error(value)


@pytest.mark.parametrize("package", STDLIB[:5])
def test_stdlib_refusal_says_why(package: str) -> None:
    assert "standard" in names.package_error(package).lower()


@pytest.mark.parametrize("package", DEPENDENCIES[:7])
def test_dependency_refusal_names_the_module(package: str) -> None:
    message = names.package_error(package)
    assert "shadow" in message
    assert package in message


# Present in the standard library of Python 3.11 and 3.12, removed in 3.13
# (PEP 594 and lib2to3). A package with one of these names still shadows the
# stdlib module on 3.11/3.12, which the generated project supports.
REMOVED_IN_313 = [
    "aifc",
    "audioop",
    "cgi",
    "cgitb",
    "chunk",
    "crypt",
    "imghdr",
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
    "lib2to3",
]


def test_stdlib_refusal_does_not_depend_on_the_running_python(monkeypatch) -> None:
    # Simulate copier running on Python 3.13: its sys.stdlib_module_names no
    # longer lists the modules removed in 3.13; load a fresh copy of names.py.
    monkeypatch.setattr(
        sys, "stdlib_module_names", frozenset(sys.stdlib_module_names) - set(REMOVED_IN_313)
    )
    spec = importlib.util.spec_from_file_location("names_on_313", EXTENSIONS / "names.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    accepted = [name for name in REMOVED_IN_313 if module.package_error(name) == ""]
    assert accepted == [], f"accepted on 3.13 but stdlib on 3.11/3.12: {accepted}"


# --- slugify ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Acme Orders", "acme-orders"),
        ("Acme Orders!", "acme-orders"),
        ("  acme   orders  ", "acme-orders"),
        ("Café Ünïcode", "cafe-unicode"),
        ("Crème Brûlée API", "creme-brulee-api"),
        ("My_Service", "my-service"),
        ("acme--orders", "acme-orders"),
        ("My Service", "my-service"),
        ("Orders v2", "orders-v2"),
    ],
)
def test_slugify_examples(name: str, slug: str) -> None:
    assert names.slugify(name) == slug


@pytest.mark.parametrize("name", ["123 Orders", "2024", "3d-printing", "0"])
def test_slugify_leading_digits_start_with_a_letter(name: str) -> None:
    slug = names.slugify(name)
    assert slug[0].isalpha()
    assert names.slug_error(slug) == ""
    # The digits are kept, not thrown away.
    assert "".join(c for c in name if c.isdigit()) in slug.replace("-", "")


@pytest.mark.parametrize("name", ["", "!!!", "---", "   ", "💥💥", "東京"])
def test_slugify_all_symbols_still_gives_a_slug(name: str) -> None:
    slug = names.slugify(name)
    assert slug
    assert names.slug_error(slug) == ""


HOSTILE = [
    'it\'s "quoted"',
    "'; DROP TABLE users; --",
    "line one\nline two",
    "tab\tseparated\r\n",
    "{{ jinja }}",
    "{% raw %}{{ x }}{% endraw %}",
    "${HOME} $(rm -rf /)",
    "🚀 Rocket Service 🚀",
    "東京サービス",
    "Служба заказов",
    "ß Straße",
    "Ⅻ Legion",
    "../../etc/passwd",
    "a" * 200,
    "The Very Long Descriptive Name Of Our Internal Order Processing Service For Acme Corp",
    " ".join(["w"] * 40),
    "-leading and trailing-",
    "UPPER CASE",
    "123",
    "_",
    "\x00\x1f control",
    None,
    42,
]


@pytest.mark.parametrize("name", HOSTILE, ids=[repr(s)[:24] for s in HOSTILE])
def test_slugify_output_always_passes_slug_error(name: object) -> None:
    slug = names.slugify(name)
    assert names.slug_error(slug) == "", (name, slug)


# --- the Jinja extension ----------------------------------------------------


def test_extension_exposes_validators_and_filter() -> None:
    env = Environment(extensions=[names.NamesExtension])
    assert env.from_string("{{ 'Café Orders' | slugify }}").render() == "cafe-orders"
    assert env.from_string("{{ slug_error(s) }}").render(s="acme-orders") == ""
    assert "project_slug" in env.from_string("{{ slug_error(s) }}").render(s="Acme")
    assert env.from_string("{{ package_error(p) }}").render(p="acme_orders") == ""
    assert "package_name" in env.from_string("{{ package_error(p) }}").render(p="celery")


# --- text filters -------------------------------------------------------------


@pytest.mark.parametrize("text", HOSTILE, ids=[repr(s)[:24] for s in HOSTILE])
def test_py_string_is_a_python_literal_of_the_same_text(text: object) -> None:
    literal = names.py_string(text)
    assert literal.startswith('"') and literal.endswith('"')
    # Quotes inside are \u0022 escapes, so ruff format has no reason to switch quotes.
    assert '"' not in literal[1:-1], literal
    # ASCII only: ruff's RUF001 has no ambiguous character (Cyrillic, U+2028 ...) to flag.
    assert literal.isascii(), literal
    assert ast.literal_eval(literal) == str(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Acme Orders", "Acme Orders"),
        ("Line one\nLine two", "Line one Line two"),
        ("  tabs\tand\r\nbreaks  ", "tabs and breaks"),
    ],
)
def test_one_line_folds_line_breaks(text: str, expected: str) -> None:
    assert names.one_line(text) == expected
