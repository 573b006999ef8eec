"""Every cookbook snippet that names a file (`# blueprints/x.py` as its first line) is a verbatim excerpt of it."""

from __future__ import annotations

import re

import pytest

from tests.services import ROOT

PAGES = ["docs/cookbook.md"]
BLOCK = re.compile(r"```python\n# (?P<path>[\w/.-]+\.py)\n(?P<body>.*?)```", re.S)


def snippets() -> list[tuple[str, str, str]]:
    found = []
    for page in PAGES:
        for match in BLOCK.finditer((ROOT / page).read_text()):
            found.append((page, match["path"], match["body"]))
    return found


def test_the_cookbook_has_snippets():
    assert len(snippets()) >= 8


@pytest.mark.parametrize("page", PAGES)
def test_every_python_snippet_names_its_file(page):
    text = (ROOT / page).read_text()
    assert text.count("```python\n") == len(BLOCK.findall(text)), f"{page}: a python block does not name its file"


def test_the_cookbook_has_a_worker_task_recipe():
    paths = {path for _, path, _ in snippets()}
    assert "blueprints/demo_worker.py" in paths


@pytest.mark.parametrize(
    ("page", "path", "body"), snippets(), ids=lambda v: v if isinstance(v, str) and v.endswith(".py") else ""
)
def test_snippet_matches_the_file_it_names(page, path, body):
    source = (ROOT / path).read_text()
    # an elided part (a line "# ...") splits a snippet into pieces that must each appear, in order
    pieces = [p.strip("\n") for p in re.split(r"^# \.\.\.\n", body, flags=re.M) if p.strip()]
    position = 0
    for piece in pieces:
        index = source.find(piece, position)
        assert index >= 0, f"{page}: a snippet of {path} is not in the file:\n{piece}"
        position = index + len(piece)
