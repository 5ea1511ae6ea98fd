"""The documentation is correct: the site builds without a warning, the API reference documents
every public name, and every code block of the README and the docs pages runs.

Code blocks: each ```python block of a page is executed, the blocks of one page in order and in one
namespace, in a temporary directory (a page may write ``runs/...``). A block preceded by a line
``<!-- not-run: reason -->`` is an excerpt and is skipped; the README may have none. In ```bash
blocks, every ``sdegen ...`` line must parse with the real argument parser and every ``make X``
must name a target of the Makefile.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts)]

_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_NOT_RUN = re.compile(r"<!-- not-run: \S.*-->\s*$")


class Block(NamedTuple):
    path: Path
    line: int  # 1-based line of the first line of code
    language: str
    code: str
    run: bool


def code_blocks(path: Path) -> list[Block]:
    text = path.read_text()
    blocks = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        line = text.count("\n", 0, m.start(2)) + 1
        blocks.append(Block(path, line, m.group(1), m.group(2), not _NOT_RUN.search(before)))
    return blocks


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


PYTHON_PAGES = [p for p in PAGES if any(b.language == "python" for b in code_blocks(p))]
BASH_PAGES = [p for p in PAGES if any(b.language == "bash" for b in code_blocks(p))]


# -- the site ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once by ``mkdocs build --strict`` (what ``make docs`` runs)."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{log}"
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "mkdocs warned:\n" + "\n".join(warnings)
    return out


def test_site_builds_without_warnings(site: Path) -> None:
    assert (site / "index.html").is_file()
    for page in ("getting-started", "guides/sampling", "guides/likelihood", "guides/cli", "benchmarks"):
        assert (site / page / "index.html").is_file(), page


def _hooks():
    """docs/_ext/hooks.py, the build's own list of API modules and its path helpers."""
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        return importlib.import_module("hooks")
    finally:
        sys.path.remove(str(DOCS / "_ext"))


def public_names() -> dict[str, object]:
    """Every public name of sdegen: ``module.name`` for each name in the ``__all__`` of a public module.

    A module is public when no component of its dotted path starts with ``_``. The CLI's modules
    are the implementation of a command, documented by the CLI reference, not a Python API.
    """
    import pkgutil

    import sdegen

    names = {}
    for info in pkgutil.walk_packages(sdegen.__path__, "sdegen."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts) or parts[1] in NOT_IN_API:
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            names[f"{info.name}.{name}"] = getattr(module, name)
    return names


def test_api_reference_documents_every_public_name(site: Path) -> None:
    """Every name in the ``__all__`` of a public module has an entry on the site: under the
    subpackage that re-exports it, or in its own module's section."""
    hooks = _hooks()
    anchors = set()
    for html in (site / "api").rglob("index.html"):
        anchors |= set(re.findall(r'id="(sdegen\.[\w.]+)"', html.read_text()))
    documented_as: dict[int, set[str]] = {}
    for module_name in hooks.API_MODULES:
        module = importlib.import_module(f"sdegen.{module_name}")
        for name in module.__all__:
            documented_as.setdefault(id(getattr(module, name)), set()).add(f"sdegen.{module_name}.{name}")
    missing = []
    for path, obj in public_names().items():
        candidates = {path} | documented_as.get(id(obj), set())
        if hasattr(obj, "__qualname__") and hasattr(obj, "__module__"):
            candidates.add(hooks.canonical_path(obj))
        if not candidates & anchors:
            missing.append(path)
    assert not missing, f"the API reference lacks: {missing}"


def test_api_index_has_no_raw_roles(site: Path) -> None:
    """Sphinx roles in docstrings become links; a raw ``:func:`` on a page means one was missed."""
    for html in (site / "api").rglob("index.html"):
        text = re.sub(r"<[^>]+>", "", html.read_text())
        raw = re.findall(r":(?:func|class|meth|mod|attr|data):`?[\w~.]+", text)
        assert not raw, f"{html.relative_to(site)} shows raw roles {raw[:3]}"


#: Public modules of sdegen without an API page, and where they are documented instead.
NOT_IN_API = {
    "cli": "the CLI reference in docs/guides/cli.md, generated from its parser",
}


def test_every_public_module_has_an_api_page() -> None:
    import pkgutil

    import sdegen

    hooks = _hooks()
    public = {m.name for m in pkgutil.iter_modules(sdegen.__path__) if not m.name.startswith("_")}
    missing = public - set(hooks.API_MODULES) - set(NOT_IN_API)
    assert not missing, (
        f"sdegen.{{{', '.join(sorted(missing))}}} has no API page: add a page docs/api/<name>.md with "
        f"'::: sdegen.<name>', list it in the nav of mkdocs.yml and in API_MODULES of docs/_ext/hooks.py"
    )


def test_cli_reference_lists_every_option(site: Path) -> None:
    from sdegen.cli import build_parser

    html = (site / "guides" / "cli" / "index.html").read_text()
    parser = build_parser()
    (commands,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    for name, sub in commands.choices.items():
        assert f"sdegen {name}" in html
        for action in sub._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in html, f"sdegen {name} {flag} is missing from the CLI reference"


# -- code blocks ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PYTHON_PAGES, ids=_rel)
def test_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [b for b in code_blocks(path) if b.language == "python"]
    if path.name == "README.md":
        assert all(b.run for b in blocks), "every README code block must run: remove <!-- not-run -->"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    for block in blocks:
        if block.run:
            # Pad with blank lines so that a traceback names the line of the Markdown file.
            code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
            exec(code, namespace)


def _bash_commands(code: str) -> list[list[str]]:
    commands = []
    for line in code.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            commands.append(shlex.split(line))
    return commands


@pytest.mark.parametrize("path", BASH_PAGES, ids=_rel)
def test_shell_commands_exist(path: Path) -> None:
    from sdegen.cli import build_parser

    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    extras = set(re.findall(r"^(\w+) = \[", (ROOT / "pyproject.toml").read_text(), re.MULTILINE))
    for block in (b for b in code_blocks(path) if b.language == "bash"):
        for argv in _bash_commands(block.code):
            where = f"{_rel(path)}:{block.line}: {shlex.join(argv)}"
            if argv[0] == "sdegen":
                build_parser().parse_args(argv[1:])  # raises UsageError naming the bad argument
            elif argv[0] == "make":
                assert set(argv[1:]) <= targets, f"{where}: no such make target"
            elif argv[:2] == ["pip", "install"]:
                for spec in argv[2:]:
                    named = re.findall(r"\[([\w,]+)\]", spec)
                    assert not named or set(named[0].split(",")) <= extras, f"{where}: no such extra"


def test_readme_links_resolve() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    assert targets, "the README links into the docs"
    missing = [t for t in targets if "://" not in t and not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
