"""The documentation is true as written: README.md and every page of docs/.

* Every ```python block runs as a script: in a fresh namespace (``__name__ == "__main__"``), from
  a scratch working directory, and it prints what it shows. The examples answer from the shipped
  tables, surrogate and data only: no training, no network, no optional extra. The few that
  train or need an extra are fenced ```python no-test and are only compiled here.
* Every relative link (and image) points at a file of the repository, and a link to a heading
  of a markdown page (``page.md#heading``) at a heading that page has.
* Every repository path named in inline code (``nasenv/...``, ``benchmarks/...``, ...) exists.
* Every docs page is linked from the README.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(
    r"^(?P<fence>`{3,})(?P<info>[^`\n]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$",
    re.DOTALL | re.MULTILINE,
)
INLINE_CODE = re.compile(r"(`+)(?P<code>.+?)\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(?P<title>.+?)\s*#*\s*$", re.MULTILINE)
REPO_PATH = re.compile(
    r"(?:\.\./)*(?P<path>(?:nasenv|agents|benchmarks|scripts|tests|docs)/[\w./-]*)"
)
"""A path into the repository's folders, as inline code names it (``../`` from docs pages)."""

NO_TEST = "no-test"
"""Info-string word of a Python example that is compiled but not run (it trains or needs an
optional extra)."""
MAX_NO_TEST = 6
"""At most this many examples go unrun: the others are what the tests check."""


@dataclass(frozen=True)
class Example:
    page: str
    line: int
    flags: tuple[str, ...]
    code: str

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def relative(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def examples() -> list[Example]:
    """Every ```python block of the pages, with the line of its opening fence."""
    found = []
    for page in PAGES:
        text = page.read_text()
        for match in FENCE.finditer(text):
            words = match["info"].split()
            if words[:1] == ["python"]:
                line = text.count("\n", 0, match.start()) + 1
                found.append(Example(relative(page), line, tuple(words[1:]), match["body"]))
    return found


EXAMPLES = examples()
RUN = [e for e in EXAMPLES if NO_TEST not in e.flags]
COMPILE_ONLY = [e for e in EXAMPLES if NO_TEST in e.flags]


def prose(text: str) -> str:
    """``text`` without its code blocks and inline code, where brackets are not links."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    title = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link's text only
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors of a markdown page's headings (a repeated heading gets -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    for match in HEADING.finditer(FENCE.sub("", page.read_text())):
        base = slug(match["title"])
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def test_the_pages_have_examples():
    assert len(PAGES) >= 7, [relative(p) for p in PAGES]
    assert {relative(p) for p in PAGES} >= {
        f"docs/{name}.md"
        for name in ("env", "table", "surrogate", "tasks", "agents", "reproducing")
    }
    assert len(RUN) >= 10


def test_examples_are_fenced_as_python_or_python_no_test():
    unknown = [f"{e.where}: {e.flags}" for e in EXAMPLES if set(e.flags) - {NO_TEST}]
    assert not unknown, f"unknown info-string words (allowed: {NO_TEST!r}): {unknown}"
    assert len(COMPILE_ONLY) <= MAX_NO_TEST, [e.where for e in COMPILE_ONLY]


@pytest.mark.parametrize("example", RUN, ids=[e.where for e in RUN])
def test_example_runs_as_a_script_and_prints(example, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    code = compile(example.code, example.where, "exec")
    exec(code, {"__name__": "__main__"})
    assert capsys.readouterr().out.strip(), f"{example.where} prints nothing"


@pytest.mark.parametrize("example", COMPILE_ONLY, ids=[e.where for e in COMPILE_ONLY])
def test_untested_example_compiles(example):
    compile(example.code, example.where, "exec")


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_relative_links_resolve(page):
    broken = []
    for match in LINK.finditer(prose(page.read_text())):
        target = match["target"]
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not a file
            continue
        path_part, _, fragment = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.exists() or ROOT not in path.parents:
            broken.append(f"{target}: no such file in the repository")
        elif fragment and path.suffix == ".md" and fragment not in anchors(path):
            broken.append(f"{target}: {relative(path)} has no heading #{fragment}")
    assert not broken, f"{relative(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=relative)
def test_named_repository_paths_exist(page):
    text = FENCE.sub("", page.read_text())
    missing = []
    for match in INLINE_CODE.finditer(text):
        code = match["code"].strip()
        found = REPO_PATH.fullmatch(code)
        if found and not (ROOT / found["path"]).exists():
            missing.append(code)
    assert not missing, f"{relative(page)} names paths that do not exist: {missing}"


def test_every_docs_page_is_linked_from_the_readme():
    readme = prose((ROOT / "README.md").read_text())
    linked = {m["target"].partition("#")[0] for m in LINK.finditer(readme)}
    pages = {relative(p) for p in PAGES[1:]}
    assert pages <= linked, f"not linked from README.md: {sorted(pages - linked)}"
