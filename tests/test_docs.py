"""docs/guarantees.md names, for each promise, the test that proves it: every test it
names must exist, so the table cannot drift from the suite when a test is renamed."""

from __future__ import annotations

import re
import subprocess
import sys

from helpers import REPO_ROOT

GUARANTEES = REPO_ROOT / "docs" / "guarantees.md"

#: `tests/test_x.py::test_name[param]`, or `::test_name` for the file named just before.
REFERENCE = re.compile(r"`(tests/test_\w+\.py)?::(test_\w+)(\[[^\]`]+\])?`")


def referenced() -> list[str]:
    """Every test the page names, as a pytest node id (the file carried over for `::x`)."""
    ids, current = [], None
    for line in GUARANTEES.read_text().splitlines():
        for match in REFERENCE.finditer(line):
            current = match.group(1) or current
            assert current, f"`::{match.group(2)}` names no file before it: {line}"
            ids.append(f"{current}::{match.group(2)}{match.group(3) or ''}")
    return ids


def test_every_test_named_in_the_guarantees_exists() -> None:
    ids = referenced()
    assert len(ids) > 40, f"too few test references found in {GUARANTEES.name}: {ids}"
    files = sorted({node.split("::")[0] for node in ids})
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:xdist", *files],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    missing = [
        node for node in ids if not any(c == node or c.startswith(node + "[") for c in collected)
    ]
    assert not missing, f"{GUARANTEES.name} names tests that do not exist: {missing}"
