"""README.md, docs/*.md and docker/README.md: every relative link and ``#anchor`` resolves; the README
stays short.

Markdown is parsed with markdown-it (CommonMark), so links inside code blocks are not links; anchors follow
GitHub's rule for heading ids: the heading's text, lower-cased, punctuation other than ``-`` and ``_``
dropped, each space a ``-``, and ``-1``, ``-2``... after repeats.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from markdown_it import MarkdownIt
from markdown_it.token import Token

REPO = Path(__file__).resolve().parents[1]
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [REPO / "README.md", REPO / "docker" / "README.md", *PAGES]
README_MOST_LINES = 300
PARSER = MarkdownIt("commonmark").enable("table")


def slug(heading: str) -> str:
    """GitHub's id for a heading's text (before repeats are numbered)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _text(inline: Token) -> str:
    return "".join(child.content for child in inline.children or () if child.type in ("text", "code_inline"))


def anchors(document: Path) -> set[str]:
    tokens = PARSER.parse(document.read_text(encoding="utf-8"))
    seen: Counter[str] = Counter()
    found = set()
    for opening, inline in zip(tokens, tokens[1:], strict=False):
        if opening.type != "heading_open":
            continue
        base = slug(_text(inline))
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def links(document: Path) -> list[tuple[int, str]]:
    """``(line, target)`` of every link and image, code excluded."""
    found = []
    for block in PARSER.parse(document.read_text(encoding="utf-8")):
        for child in block.children or ():
            target = child.attrGet("href") if child.type == "link_open" else child.attrGet("src")
            if isinstance(target, str):
                found.append(((block.map or [0])[0] + 1, target))
    return found


def dead_links(document: Path, root: Path = REPO) -> list[str]:
    dead = []
    for line, target in links(document):
        parts = urlsplit(target)
        if parts.scheme or parts.netloc:  # a web address: not this repository's to check
            continue
        path = (document.parent / unquote(parts.path)).resolve() if parts.path else document
        where = f"{document.relative_to(root).as_posix()}:{line}"
        if not path.exists():
            dead.append(f"{where}: {target}: no file {path.name}")
        elif parts.fragment and path.suffix == ".md" and parts.fragment not in anchors(path):
            dead.append(f"{where}: {target}: {path.name} has no heading #{parts.fragment}")
    return dead


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(REPO).as_posix())
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    assert dead_links(document) == []


def test_the_readme_stays_within_300_lines() -> None:
    lines = len((REPO / "README.md").read_text(encoding="utf-8").splitlines())

    assert lines <= README_MOST_LINES, f"README.md has {lines} lines: move detail into a page under docs/"


def test_the_checked_documents_include_every_docs_page_and_link_to_each_other() -> None:
    readme_targets = {target.split("#")[0] for _, target in links(REPO / "README.md")}

    assert len(PAGES) >= 8
    assert {f"docs/{page.name}" for page in PAGES} <= readme_targets  # no page left unlinked


def test_slugs_follow_githubs_rule() -> None:
    assert slug("How a new model gets served") == "how-a-new-model-gets-served"
    assert slug("Recurrent cells: --cell lstm | gru | rnn") == "recurrent-cells---cell-lstm--gru--rnn"
    assert slug("The Open Inference Protocol route against /classify") == (
        "the-open-inference-protocol-route-against-classify"
    )
    assert slug("POST /classify (Chinese)") == "post-classify-chinese"
    assert slug("Training on several processes: torchrun") == "training-on-several-processes-torchrun"


def test_dead_files_dead_anchors_and_repeated_headings_are_told_apart(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    page = tmp_path / "docs" / "page.md"
    page.write_text("# Page\n\n## Errors\n\n## Errors\n\n## `--cell` choices\n")
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Title\n\n"
        "[ok](docs/page.md#errors) [second](docs/page.md#errors-1) [code](docs/page.md#--cell-choices)\n"
        "[self](#title) [web](https://example.com/x#y) ![picture](docs/page.md)\n\n"
        "[gone](docs/missing.md) [no heading](docs/page.md#errors-2) [not here](#nowhere)\n\n"
        "```\n[in code](docs/ignored.md)\n```\n"
    )

    assert dead_links(readme, root=tmp_path) == [
        "README.md:6: docs/missing.md: no file missing.md",
        "README.md:6: docs/page.md#errors-2: page.md has no heading #errors-2",
        "README.md:6: #nowhere: README.md has no heading #nowhere",
    ]
    assert anchors(page) == {"page", "errors", "errors-1", "--cell-choices"}
