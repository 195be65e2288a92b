"""The documentation: the Sphinx site builds with warnings as errors, the guide's own pages are
clean, every public name is in the API reference, and the README's links and example work.

The site is built once per module, in a subprocess (``python -m sphinx -W -n``), into a temporary
folder; the tests read its exit status, its warnings file and its HTML.
"""

from __future__ import annotations

import importlib
import os
import re
import subprocess
import sys
import types
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.secrets_scan import record_output, register_secret

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "flask_dmmail"

#: The modules the API reference documents: users import from these paths.
DOCUMENTED_MODULES = (
    "flask_dmmail",
    "flask_dmmail.errors",
    "flask_dmmail.signals",
    "flask_dmmail.bulk",
    "flask_dmmail.queued",
    "flask_dmmail.mailchimp",
    "flask_dmmail.webhooks",
    "flask_dmmail.testing",
    "flask_dmmail.sandbox",
)


@dataclass(frozen=True)
class Build:
    returncode: int
    output: str
    warnings: list[str]
    html: Path

    def anchors(self) -> set[str]:
        """Every ``id`` of every HTML page: autodoc gives each documented object its full name."""
        found: set[str] = set()
        for page in self.html.rglob("*.html"):
            found.update(re.findall(r'\bid="([^"]+)"', page.read_text(encoding="utf-8")))
        return found


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    out = tmp_path_factory.mktemp("docs")
    warnings_file = out / "warnings.txt"
    # Sphinx 9 finishes the build under -W and only then fails it, so one build gives the exit
    # status, every warning and the HTML.
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "-n",
            "-q",
            "-b",
            "html",
            "-d",
            str(out / "doctrees"),
            "-w",
            str(warnings_file),
            str(DOCS),
            str(out / "html"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    text = warnings_file.read_text(encoding="utf-8") if warnings_file.exists() else ""
    warnings = [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line]
    return Build(process.returncode, process.stdout + process.stderr, warnings, out / "html")


def test_the_docs_build_with_warnings_as_errors(build: Build) -> None:
    assert build.returncode == 0, "\n".join(build.warnings) or build.output


def test_the_guide_pages_and_the_configuration_build_without_warnings(build: Build) -> None:
    # Warnings located in flask_dmmail/ (or in a signature autodoc wrote, "<unknown>") come from
    # docstrings. Everything else is the docs' own: a guide page, an API page that cannot import
    # its module, conf.py.
    ours = [
        line for line in build.warnings if not line.startswith((str(PACKAGE) + os.sep, "<unknown>"))
    ]
    assert build.html.joinpath("index.html").is_file(), build.output
    assert not ours, "\n".join(ours)


def _public_names(module: types.ModuleType) -> Iterator[tuple[str, object]]:
    names: list[str] = module.__all__
    for name in names:
        yield name, getattr(module, name)


def test_every_public_name_is_in_the_api_reference(build: Build) -> None:
    anchors = build.anchors()
    documented: set[int] = set()
    for module_name in DOCUMENTED_MODULES:
        assert f"module-{module_name}" in anchors, f"no API page for {module_name}"
        module = importlib.import_module(module_name)
        for name, value in _public_names(module):
            if f"{module_name}.{name}" in anchors:
                documented.add(id(value))

    missing = []
    for module_name in DOCUMENTED_MODULES:
        module = importlib.import_module(module_name)
        for name, value in _public_names(module):
            if f"{module_name}.{name}" in anchors:
                continue
            if isinstance(value, types.ModuleType) and f"module-{value.__name__}" in anchors:
                continue  # flask_dmmail.errors and .signals, re-exported by the root
            if id(value) in documented:
                continue  # a re-export (flask_dmmail.DMMailError) documented where it lives
            missing.append(f"{module_name}.{name}")
    assert not missing, "not in the API reference: " + ", ".join(missing)


def _relative_links(markdown: str) -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", markdown) + re.findall(r"<([^>\s]+)>", markdown)
    return [
        link.split("#", 1)[0]
        for link in links
        if not re.match(r"[a-z][a-z0-9+.-]*:", link) and not link.startswith("#")
    ]


def test_every_relative_link_in_the_readme_points_to_a_file() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = _relative_links(readme)
    assert links, "the README links into the docs"
    broken = [link for link in links if not (ROOT / link).exists()]
    assert not broken, f"README.md links to files that do not exist: {broken}"
    linked = {(ROOT / link).resolve() for link in links}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"guide pages the README does not link to: {unlinked}"


def test_the_readme_example_sends_an_email_to_the_embedded_sandbox(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README has a Python example"
    example = blocks[0]
    assert len([line for line in example.splitlines() if line.strip()]) <= 10
    # The example's address is in other examples too (the CLI's --help): the run uses one of its
    # own, so that the secrets scan can check the output never shows it.
    address = f"readme-{uuid.uuid4().hex[:12]}@example.gov.uk"
    register_secret(address)
    example = re.sub(r'"[^"\s]+@[^"\s]+"', f'"{address}"', example)
    assert address in example
    script = tmp_path / "example.py"
    script.write_text(example + "\nassert sent is not None\nprint(sent.id)\n", encoding="utf-8")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DM_")}
    env.pop("FLASK_APP", None)
    process = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    record_output("README example", process.stdout + process.stderr)
    assert process.returncode == 0, process.stderr
    uuid.UUID(process.stdout.strip().splitlines()[-1])


# -- the guide's examples run -------------------------------------------------------------------

#: A fenced block, with the HTML comment on the line before it, if any:
#: ``<!-- fragment: why -->`` (a part of something bigger: only compiled) or
#: ``<!-- file: NAME -->`` (a file of an example: written to NAME, for later blocks to use).
_BLOCK = re.compile(
    r"(?:^<!--\s*(?P<marker>fragment|file)\b:?\s*(?P<arg>[^\n]*?)\s*-->\n)?"
    r"^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```$",
    re.S | re.M,
)


@dataclass(frozen=True)
class Snippet:
    page: str
    line: int
    lang: str
    marker: str | None
    arg: str
    code: str


def _snippets(page: Path) -> list[Snippet]:
    text = page.read_text(encoding="utf-8")
    return [
        Snippet(
            page.name,
            text.count("\n", 0, match.start("code")) + 1,
            match["lang"],
            match["marker"],
            match["arg"] or "",
            match["code"],
        )
        for match in _BLOCK.finditer(text)
    ]


GUIDE_PAGES = sorted(DOCS.glob("*.md"))


def test_every_python_block_of_the_guide_is_run_or_marked() -> None:
    """A Python block is a complete example (run below), a file of one (``<!-- file: ... -->``)
    or marked a fragment (``<!-- fragment: ... -->``); every one compiles."""
    blocks = [s for page in GUIDE_PAGES for s in _snippets(page) if s.lang == "python"]
    assert len(blocks) >= 15
    for snippet in blocks:
        compile(snippet.code, f"{snippet.page}:{snippet.line}", "exec")
    marked = {s.marker for s in blocks}
    assert marked == {None, "fragment", "file"}


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DM_", "FLASK_"))}
    env.pop("PYTEST_ADDOPTS", None)
    return env


@pytest.mark.parametrize(
    "page",
    [
        p
        for p in GUIDE_PAGES
        if any(s.marker != "fragment" and s.lang == "python" for s in _snippets(p))
    ],
    ids=lambda p: p.name,
)
def test_the_complete_examples_of_a_page_run(page: Path, tmp_path: Path) -> None:
    """In page order: files are written to a fresh folder, and each other Python block runs
    there as a script (after the files before it). When the page wrote test files, pytest
    runs them there too, as the page says to."""
    ran = 0
    for snippet in _snippets(page):
        where = f"{snippet.page}:{snippet.line}"
        if snippet.marker == "fragment":
            continue
        if snippet.marker == "file":
            (tmp_path / snippet.arg).write_text(snippet.code, encoding="utf-8")
            continue
        if snippet.lang != "python":
            continue
        script = tmp_path / f"example_{snippet.line}.py"
        script.write_text(snippet.code, encoding="utf-8")
        process = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        record_output(f"docs example {where}", process.stdout + process.stderr)
        assert process.returncode == 0, f"{where}:\n{process.stderr}"
        ran += 1
    tests = sorted(tmp_path.glob("test_*.py"))
    if tests:
        process = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
            cwd=tmp_path,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        record_output(f"docs tests {page.name}", process.stdout + process.stderr)
        assert process.returncode == 0, process.stdout + process.stderr
        assert re.search(r"\b[1-9]\d* passed\b", process.stdout), process.stdout
        ran += 1
    assert ran, f"{page.name} has file blocks but nothing runs them"
