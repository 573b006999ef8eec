"""Every code block of docs/worker-sdk.md marked `<!-- from FILE -->` appears in that (tested) file."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"<!-- from (?P<path>\S+) -->\n```python\n(?P<code>.*?)```", re.S)


def stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_doc_snippets_come_from_tested_files() -> None:
    doc = (ROOT / "docs/worker-sdk.md").read_text()
    blocks = list(BLOCK.finditer(doc))
    assert len(blocks) >= 5
    for block in blocks:
        source = stripped_lines((ROOT / block["path"]).read_text())
        snippet = stripped_lines(block["code"])
        starts = [i for i, line in enumerate(source) if line == snippet[0]]
        assert any(source[i : i + len(snippet)] == snippet for i in starts), (
            f"snippet from {block['path']} is not in that file:\n{block['code']}"
        )
