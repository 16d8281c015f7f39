"""tasktier.redaction: every kind of secret masked, ordinary text left alone, linear time
on hostile input, and JSON-like values masked at every depth."""

import json
import subprocess
import sys

import pytest
from tasktier.redaction import redact, redact_value

PW = "S3cretPw"

#: Text holding a secret, and what redact() makes of it: every form it masks.
MASKED = [
    ("postgresql://app:S3cretPw@db:5432/orders", "postgresql://app:***@db:5432/orders"),
    ("password=S3cretPw user=app", "password=*** user=app"),
    ("PASSWORD: S3cretPw", "PASSWORD: ***"),
    ("passwd='S3cretPw'", "passwd='***'"),
    ('pwd = "S3cret Pw"', 'pwd = "***"'),
    ("db_password=S3cretPw", "db_password=***"),
    ("passphrase:S3cretPw", "passphrase:***"),
    ("token=S3cretPw&page=2", "token=***&page=2"),
    ("access_token: S3cretPw", "access_token: ***"),
    ("refreshToken=S3cretPw", "refreshToken=***"),
    ("Secret=S3cretPw", "Secret=***"),
    ("client_secret=S3cretPw; scope=all", "client_secret=***; scope=all"),
    ("api_key=S3cretPw", "api_key=***"),
    ("apikey=S3cretPw", "apikey=***"),
    ("API-KEY: S3cretPw", "API-KEY: ***"),
    ("X-Api-Key: S3cretPw", "X-Api-Key: ***"),
    ("access_key=S3cretPw", "access_key=***"),
    ("aws_secret_access_key = S3cretPw", "aws_secret_access_key = ***"),
    ("private_key='S3cretPw'", "private_key='***'"),
    ("credentials=S3cretPw", "credentials=***"),
    ("auth=S3cretPw", "auth=***"),
    ("Authorization: Bearer S3cretPw", "Authorization: Bearer ***"),
    ("authorization: Basic S3cretPw", "authorization: Basic ***"),
    ("Proxy-Authorization=Digest S3cretPw", "Proxy-Authorization=Digest ***"),
    ('{"password": "S3c\\"retPw", "user": "app"}', '{"password": "***", "user": "app"}'),
    ("{'api_key': 'S3cretPw', 'n': 1}", "{'api_key': '***', 'n': 1}"),
    ('"token":"S3cretPw"', '"token":"***"'),
    ('password="S3cretPw, and the rest of its line', 'password="***"'),
]


@pytest.mark.parametrize(("text", "masked"), MASKED)
def test_redact_masks_each_kind_of_secret(text: str, masked: str) -> None:
    assert redact(text) == masked
    assert "S3c" not in redact(text)


def test_redact_masks_every_secret_of_a_task_error() -> None:
    error = f"OperationalError: postgresql://app:{PW}@db.internal:5432/orders; api_key=k-{PW}"
    assert redact(error) == (
        "OperationalError: postgresql://app:***@db.internal:5432/orders; api_key=***"
    )


@pytest.mark.parametrize(
    "text",
    [
        "token bucket full",
        "the password was rejected",
        "password reset sent to ada@example.com",
        "max_tokens=512",
        "author: Ada Lovelace",
        "secretary=Jane",
        "authentication failed for user app",
        "Error 111 connecting to localhost:6379. Connection refused.",
        "redis://redis:6379/0",
        "http://127.0.0.1:8000/health@ready",
        "job 42 failed: ValueError: bad input (attempt=2, queue=default)",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "hostile",
    [
        "a" * 100_000,  # one long word, scheme-like
        "x1" * 50_000,
        "token_" * 17_000,  # secret names, never a separator
        'password="' * 10_000,  # quotes never closed
        "password=" * 11_000,
        '"token": ' * 11_000,
        "a://:" * 20_000,
        "a://u:" + "p" * 100_000,  # a password never followed by @
        "Authorization: Bearer " * 4_500,
    ],
)
def test_redact_takes_linear_time_on_hostile_text(hostile: str) -> None:
    """Milliseconds each; a regex that backtracks takes seconds to hours on 100 kB. Run in a
    child process, so that such a regex fails the test at a generous bound, not hangs it."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys; from {redact.__module__} import redact; redact(sys.stdin.read())",
        ],
        input=hostile,
        text=True,
        timeout=10,
        check=True,
    )


def test_redact_value_masks_strings_and_secret_keys_at_every_depth() -> None:
    result = {
        "user": "app",
        "password": PW,
        "apiKey": {"id": 7, "value": PW},
        "steps": [
            {"client_secret": None, "dsn": f"postgresql://app:{PW}@db/orders"},
            f"token={PW}",
            3,
            1.5,
            True,
            None,
        ],
        "max_tokens": 512,
        "author": "Ada",
        f"redis://:{PW}@redis:6379/0": "a key",
    }
    before = json.dumps(result)
    assert redact_value(result) == {
        "user": "app",
        "password": "***",
        "apiKey": "***",
        "steps": [
            {"client_secret": "***", "dsn": "postgresql://app:***@db/orders"},
            "token=***",
            3,
            1.5,
            True,
            None,
        ],
        "max_tokens": 512,
        "author": "Ada",
        "redis://:***@redis:6379/0": "a key",
    }
    assert json.dumps(result) == before  # the value given is left as it was


def test_redact_value_of_a_plain_value() -> None:
    assert redact_value(f"password={PW}") == "password=***"
    assert redact_value(["a", (f"secret: {PW}", 2)]) == ["a", ["secret: ***", 2]]
    for plain in (None, 0, 2.5, False, "ok"):
        assert redact_value(plain) == plain
