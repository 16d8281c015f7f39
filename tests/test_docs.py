"""docs/guarantees.md names, for each promise, the test that proves it: every test it
names must exist, so the table cannot drift from the suite when a test is renamed."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

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


# --- One source per promise -----------------------------------------------------------

PROMISES = REPO_ROOT / "promises"
#: The tier page of the template's docs that includes each tier's promises.
TIER_PAGES = {
    "background_tasks": "background-tasks.md",
    "rq": "rq.md",
    "celery": "celery.md",
}


def test_each_tier_has_one_source_of_promises_for_readme_and_docs(copie: Any) -> None:
    """promises/<tier>.md is the one text of a tier's guarantees: the generated README
    includes it whole, and so does the tier's page of the docs; neither restates it."""
    assert sorted(p.stem for p in PROMISES.glob("*.md")) == sorted(TIER_PAGES)
    readme = (REPO_ROOT / "template" / "README.md.jinja").read_text()
    for tier, page in TIER_PAGES.items():
        text = (PROMISES / f"{tier}.md").read_text()
        assert "{{" not in text and "{%" not in text, f"promises/{tier}.md must be plain Markdown"
        assert readme.count(f"{{% include 'promises/{tier}.md' %}}") == 1
        docs = (REPO_ROOT / "docs" / "tiers" / page).read_text()
        assert docs.count(f'--8<-- "promises/{tier}.md"') == 1, page
        result = copie.copy(extra_answers={"task_backend": tier})
        assert result.exit_code == 0, result.exception
        rendered = (result.project_dir / "README.md").read_text()
        assert text.strip() in rendered, f"the {tier} README does not hold promises/{tier}.md"
        # The README's own text around it states no promise of the list again: no bullet
        # of the list appears twice.
        for line in text.splitlines():
            if line.startswith("- **"):
                assert rendered.count(line) == 1, line
