"""The repository's documentation stands alone: nothing points at design notes that live outside it.

Whoever clones the project gets docs/domain.md (the rules and reference data), docs/api.md (the fixed public
interface) and docs/ARCHITECTURE.md. The working notes these were written from are not in the repository, so a
mention of them in code, tests, config or docs is a dead end for the reader; this test names each one by file and
line.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Text files that are checked, by suffix.
SUFFIXES = frozenset({".py", ".md", ".toml", ".txt", ".ini", ".cfg", ".yaml", ".yml", ".json"})
#: Never checked: version control, the virtualenv, tool caches.
SKIP_DIRS = frozenset({".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache", "var"})

#: The outside documents (spelled in parts so that this file does not match itself).
_OUTSIDE_NAMES = ("FACTS", "CONTRACT", "DESIGN")
OUTSIDE = re.compile(
    r"\b(?:" + "|".join(_OUTSIDE_NAMES) + r")\.md\b" + "|" + re.escape("..") + "/shared",
    re.IGNORECASE,
)


def _git_files() -> list[str] | None:
    """Tracked files plus new ones not ignored, relative to the root; None when git cannot answer."""
    try:
        result = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return sorted({name for name in result.stdout.decode("utf-8", "surrogateescape").split("\0") if name})


def _walked_files() -> list[str]:
    """Every file under the root outside the skipped directories (a copy without git metadata)."""
    found: list[str] = []
    for directory, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")]
        for name in files:
            found.append((Path(directory) / name).relative_to(ROOT).as_posix())
    return sorted(found)


def text_files() -> list[str]:
    names = _git_files()
    if names is None:
        names = _walked_files()
    return [
        name
        for name in names
        if Path(name).suffix.lower() in SUFFIXES
        and not SKIP_DIRS.intersection(Path(name).parts)
        and (ROOT / name).is_file()
    ]


def outside_references(names: list[str]) -> list[str]:
    """``file:line: text`` for every line that mentions an outside document."""
    hits: list[str] = []
    for name in names:
        try:
            text = (ROOT / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # not text after all (or gone since listing): nothing a reader would follow
        for number, line in enumerate(text.splitlines(), start=1):
            if OUTSIDE.search(line):
                hits.append(f"{name}:{number}: {line.strip()}")
    return hits


def test_the_pattern_catches_what_it_should() -> None:
    for name in _OUTSIDE_NAMES:
        assert OUTSIDE.search(f"see {name}.md §3")
        assert OUTSIDE.search(f"see {name.lower()}.md")
    assert OUTSIDE.search("in " + ".." + "/shared/domain/")
    for fine in ("docs/domain.md", "docs/api.md", "CONTRACT_FIELDS", "the key facts", "a shared secret"):
        assert not OUTSIDE.search(fine), fine


def test_files_are_found() -> None:
    names = text_files()
    assert "README.md" in names and "docs/domain.md" in names and "tests/test_docs.py" in names


def test_no_file_points_outside_the_repository() -> None:
    hits = outside_references(text_files())
    if hits:
        pytest.fail(
            f"{len(hits)} line(s) point at documents that are not in the repository; point them at "
            "docs/domain.md, docs/api.md or docs/ARCHITECTURE.md instead:\n" + "\n".join(hits),
            pytrace=False,
        )
