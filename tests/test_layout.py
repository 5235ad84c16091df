"""The repository's layout: the installed packages (``nasenv``, ``agents``), the benchmarks
(the ``benchmarks`` package, run as ``python -m benchmarks.<name>`` from the root), the scripts
(``python scripts/<name>.py``) and the tests import each other only the allowed ways, and none
of them edits ``sys.path``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("nasenv", "agents", "benchmarks", "scripts", "tests")
FORBIDDEN = {
    "nasenv": ("tests", "benchmarks"),
    "agents": ("tests", "benchmarks"),
    "scripts": ("tests", "benchmarks"),
    "benchmarks": ("tests",),
    "tests": ("benchmarks",),
}
"""Folder -> the top-level packages its files must not import. What both the tests and the
benchmarks need (the tiny space, the synthetic dataset, the sample tables' settings) is in
``nasenv.testing``."""
PATH_EDIT = re.compile(
    r"\bsys\s*\.\s*path\s*(\.\s*(insert|append|extend)\b|\+=|=(?!=)|\[[^\]]*\]\s*=(?!=))"
)


def sources(folder: str) -> list[Path]:
    paths = sorted((ROOT / folder).rglob("*.py"))
    assert paths, folder
    return paths


def imported(text: str) -> set[str]:
    """Top-level packages imported by a module: its import statements, ``importlib`` calls on
    literal names or files, and import lines inside string literals (code for child processes
    run with ``python -c``)."""
    tree = ast.parse(text)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"import_module", "__import__", "spec_from_file_location"}:
                for const in ast.walk(node):
                    if isinstance(const, ast.Constant) and isinstance(const.value, str):
                        names.add(re.split(r"[./]", const.value)[0])
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for line in node.value.splitlines():
                found = re.match(r"\s*(?:from|import)\s+([A-Za-z_]\w*)", line)
                if found:
                    names.add(found.group(1))
    return names


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_file_edits_sys_path(folder):
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sources(folder)
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PATH_EDIT.search(line)
    ]
    assert not offenders, "sys.path edited (run modules from the root with python -m):\n" + (
        "\n".join(offenders)
    )


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_imports_between_tests_and_benchmarks_nor_from_the_packages_into_them(folder):
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported(path.read_text()) & set(FORBIDDEN[folder]))
        for path in sources(folder)
    }
    assert not {path: names for path, names in offenders.items() if names}


def test_the_import_check_sees_every_kind_of_import():
    code = (  # upper case here, so that this file's own strings hold no import line
        "IMPORT benchmarks.run_agents\n"
        "FROM tests.conftest IMPORT TINY_SPACE\n"
        "importlib.import_module('scripts.x')\n"
        "importlib.util.spec_from_file_location('x', ROOT / 'agents' / 'x.py')\n"
        "SCRIPT = '''\nIMPORT os\nFROM nasenv.space IMPORT CORE\n'''\n"
        "FROM . IMPORT sibling\n"
    )
    code = code.replace("IMPORT", "import").replace("FROM", "from")
    assert imported(code) == {"benchmarks", "tests", "scripts", "x", "agents", "os", "nasenv"}
    edits = ["SYS.path.insert(0, ROOT)", "SYS.path[:0] = [x]", "SYS.path += [x]"]
    edits += ["SYS.path.append(x)", "SYS.path = [x]"]
    assert all(PATH_EDIT.search(line.replace("SYS", "sys")) for line in edits)
    reads = ["the first ``SYS.path`` entry", "SYS.path == x", "print(SYS.path[0])"]
    assert not any(PATH_EDIT.search(line.replace("SYS", "sys")) for line in reads)


def test_the_benchmarks_package_lists_every_benchmark():
    docstring = ast.get_docstring(ast.parse((ROOT / "benchmarks" / "__init__.py").read_text()))
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"__init__", "common"}
    listed = set(re.findall(r"^\* ``(\w+)``", docstring or "", re.M))
    assert listed == scripts


def test_the_smoke_run_module_imports_no_torch():
    probe = "import sys, nasenv.testing; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_every_public_name_has_one_import_path():
    """A module's ``__all__`` lists what it defines, never what it imports from another module."""
    import importlib

    for module in ("nasenv.train", "nasenv.evaluators", "nasenv.table", "nasenv.surrogate"):
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", ()):
            defined = getattr(getattr(mod, name), "__module__", module)
            assert defined == module, f"{module}.__all__ re-exports {name} from {defined}"
