"""The public API is typed for the people who call it from other projects: mypy passes on the package's
face, its contracts and a typed user's code, and catches the mistakes a user's code makes with it (which
it could not if the contracts said ``Any``)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TYPING = REPO / "tests" / "fixtures" / "typing"

pytestmark = [pytest.mark.slow,  # a type check of the API: CI, not between edits
              pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="mypy is not installed (dev extra)")]


def mypy(*paths: Path, cache: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(cache), *map(str, paths)],
                          cwd=REPO, capture_output=True, text=True)


def test_the_package_ships_its_types():
    assert (REPO / "genframe" / "py.typed").is_file()


def test_mypy_passes_on_the_public_api_and_a_typed_user(tmp_path):
    done = mypy(REPO / "genframe" / "__init__.py", REPO / "genframe" / "contracts", REPO / "examples" / "api.py",
                TYPING / "good_user.py", cache=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_catches_a_users_mistakes_with_the_api(tmp_path):
    done = mypy(TYPING / "bad_user.py", cache=tmp_path)
    flagged = {int(m.group(1)) for m in re.finditer(r"bad_user\.py:(\d+): error", done.stdout)}
    expected = {n for n, line in enumerate((TYPING / "bad_user.py").read_text().splitlines(), 1) if "# error" in line}
    assert flagged == expected, done.stdout
