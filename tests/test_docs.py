"""The words around the code: a short README whose links, and the docs pages' links, lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)\s]*)?\)")


def test_the_readme_is_short_and_names_every_docs_page():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    linked = {m.group(1) for m in LINK.finditer(readme)}
    assert {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")} <= linked


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_leads_to_a_file_and_heading(page):
    text = page.read_text(encoding="utf-8")
    for match in LINK.finditer(text):
        target, anchor = match.group(1), match.group(2)
        if re.match(r"[a-z]+:", target):
            continue  # a web address
        path = (page.parent / target).resolve()
        assert path.exists(), f"{page.name}: link to {target} leads nowhere"
        if anchor and path.suffix == ".md":
            headings = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                        for h in re.findall(r"^#+ (.+)$", path.read_text(encoding="utf-8"), re.M)}
            assert anchor[1:] in headings, f"{page.name}: no heading {anchor} in {target}"
