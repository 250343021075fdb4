"""The import rules of DESIGN.md, checked on the source: `bots -> engine -> storage`, and no
platform SDK (nor `resend`, nor a web framework) in `engine/` or `storage/`.

Read with the standard library's `ast`, so every import counts: top-level, inside a function
(a lazy import is still a dependency), `from x import y`, and `importlib.import_module("x")`
with a literal name. The engine also reads no environment variables itself: Settings does.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SDKS = frozenset(
    {
        "telegram",  # python-telegram-bot
        "slack_bolt",
        "slack_sdk",
        "resend",
        "aiohttp",  # web servers and HTTP clients belong to the adapters
        "httpx",
        "requests",
    }
)
FORBIDDEN: dict[str, frozenset[str]] = {
    "engine": SDKS | {"bots"},
    "storage": SDKS | {"bots", "engine"},
}


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level module) of every import in a module, wherever it is written."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]
        elif (
            isinstance(node, ast.Call)
            and _called_name(node.func) in {"import_module", "__import__"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value.split(".")[0]


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def reads_environment(tree: ast.AST) -> Iterator[int]:
    """Lines using `os.environ` or `os.getenv` (or `from os import environ/getenv`)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in {"environ", "getenv"}
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ):
            yield node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in {"environ", "getenv"} for alias in node.names):
                yield node.lineno


def sources(package: str) -> list[Path]:
    found = sorted((ROOT / package).rglob("*.py"))
    assert found, f"no Python files under {package}/"
    return found


def parse(path: Path) -> ast.AST:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_no_platform_sdk_and_nothing_above_it(package: str) -> None:
    broken = [
        f"{path.relative_to(ROOT)}:{line} imports {module}"
        for path in sources(package)
        for line, module in imported_modules(parse(path))
        if module in FORBIDDEN[package]
    ]
    assert broken == [], "import rules (bots -> engine -> storage, no SDKs below bots):\n" + (
        "\n".join(broken)
    )


def test_the_engine_reads_its_configuration_through_settings_only() -> None:
    broken = [
        f"{path.relative_to(ROOT)}:{line} reads the environment"
        for path in sources("engine")
        for line in reads_environment(parse(path))
    ]
    assert broken == []


@pytest.mark.parametrize(
    "code",
    [
        "import telegram",
        "import telegram.helpers as h",
        "from telegram.ext import Application",
        "def later():\n    from resend import Emails",
        "import importlib\nimportlib.import_module('slack_sdk.web')",
        "from bots.telegram import render",
    ],
)
def test_the_checker_sees_every_way_of_importing(code: str) -> None:
    found = {module for _, module in imported_modules(ast.parse(code))}
    assert found & FORBIDDEN["engine"]


def test_the_checker_ignores_relative_and_allowed_imports() -> None:
    code = "from . import slots\nfrom engine.settings import Settings\nimport sqlalchemy"
    assert {module for _, module in imported_modules(ast.parse(code))} == {
        "engine",
        "sqlalchemy",
    }
    assert list(reads_environment(ast.parse("import os\nos.environ['X']"))) == [2]
