"""Size limits (issue 10): no module in src/ over 500 lines, no function over 80 outside tests."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
#: Python outside tests/: the package, the rule scripts and the benchmarks.
CODE_DIRS = ("src", "scripts", "benchmarks")


def python_files(*dirs: str) -> list[Path]:
    """Every .py file under the given folders of the repository."""
    return sorted(path for name in dirs for path in (REPO / name).rglob("*.py"))


def long_functions(source: str, *, limit: int) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method over ``limit`` lines, nested
    ones included; the length runs from ``def`` to the last line of the body."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def test_long_functions_counts_def_to_last_line() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(80))
    source = f"def long():\n{body}\nclass C:\n    def short(self):\n        return 1\n"
    assert long_functions(source, limit=80) == [("long", 1, 81)]
    assert long_functions(source, limit=81) == []


def test_no_module_in_src_over_500_lines() -> None:
    files = python_files("src")
    assert files
    over = [f"{path.relative_to(REPO)}: {n} lines" for path in files
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES]
    assert not over, f"modules over {MAX_MODULE_LINES} lines:\n" + "\n".join(over)


def test_no_function_over_80_lines_outside_tests() -> None:
    files = python_files(*CODE_DIRS)
    assert files
    over = [f"{path.relative_to(REPO)}:{line} {name}: {length} lines" for path in files
            for name, line, length in long_functions(path.read_text(), limit=MAX_FUNCTION_LINES)]
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(over)
