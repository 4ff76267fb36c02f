"""Meta-tests: every hook is in the contract, documented under its exact signature, and tested."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

from rapidly.plugins import (
    HOOK_NAMES,
    TEMPLATE_VARIABLES,
    Channel,
    FieldKind,
    FieldRole,
    MessageEvent,
    hookspecs,
)

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugin_hooks.md"
TESTS = Path(__file__).resolve().parent

CONTRACT = {"contact_fields", "message_template", "key_provider"}


def hookspec_functions() -> list:
    return [getattr(hookspecs, name) for name in HOOK_NAMES]


def signature_line(fn) -> str:
    """`def name(arg: Type, ...) -> Return:` as written in hookspecs.py (annotations are strings there)."""
    sig = inspect.signature(fn)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
    return f"def {fn.__name__}({params}) -> {sig.return_annotation}:"


def heading(fn) -> str:
    return f"### {fn.__name__}({', '.join(inspect.signature(fn).parameters)})"


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC.read_text(encoding="utf-8")


def test_the_hookspecs_are_exactly_the_contract():
    # given every function marked as a hookspec in hookspecs.py
    marked = {name for name, fn in vars(hookspecs).items() if hasattr(fn, "rapidly_spec")}

    # then they are the contract hooks of DESIGN.md §4, each firstresult
    assert marked == CONTRACT == set(HOOK_NAMES)
    assert all(getattr(hookspecs, name).rapidly_spec["firstresult"] for name in CONTRACT)
    assert signature_line(hookspecs.contact_fields) == (
        "def contact_fields(tenant: TenantInfo) -> list[FieldSpec] | None:"
    )
    assert signature_line(hookspecs.message_template) == (
        "def message_template(tenant: TenantInfo, event: str, channel: str, locale: str) -> MessageTemplate | None:"
    )
    assert signature_line(hookspecs.key_provider) == "def key_provider(settings: Settings) -> KeyProvider | None:"


@pytest.mark.parametrize("fn", hookspec_functions(), ids=HOOK_NAMES)
def test_every_hookspec_has_a_one_line_docstring(fn):
    # when
    doc = inspect.getdoc(fn)

    # then
    assert doc and "\n" not in doc.strip()


@pytest.mark.parametrize("fn", hookspec_functions(), ids=HOOK_NAMES)
def test_every_hook_is_documented_under_its_exact_signature(doc, fn):
    # given the doc's headings and the lines of its python code blocks
    headings = re.findall(r"^### .+$", doc, flags=re.MULTILINE)
    code_lines = {
        line.strip() for block in re.findall(r"```python\n(.*?)```", doc, flags=re.S) for line in block.splitlines()
    }

    # then the hook has its own heading, followed by its exact def line, and its docstring is quoted
    assert heading(fn) in headings
    section = doc.split(heading(fn), 1)[1].split("\n### ", 1)[0]
    assert signature_line(fn) in code_lines
    assert signature_line(fn) in section
    assert inspect.getdoc(fn).replace("None", "`None`") in section


@pytest.mark.parametrize("name", HOOK_NAMES)
def test_every_hook_has_tests(name):
    # given every test function under tests/plugins
    test_names = set()
    for path in TESTS.glob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        test_names |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}

    # then some test is named for the hook, and the hook is called on a registry in the tests
    assert any(t.startswith(f"test_hook_{name}") for t in test_names), f"no test_hook_{name}* test"
    called = re.compile(rf"registry\.{name}\(")
    assert any(called.search(path.read_text(encoding="utf-8")) for path in TESTS.glob("test_*.py"))


@pytest.mark.parametrize(
    "name",
    [m.name for m in FieldKind]
    + [m.name for m in FieldRole]
    + [m.name for m in MessageEvent]
    + [m.name for m in Channel]
    + list(TEMPLATE_VARIABLES),
)
def test_every_kind_role_event_channel_and_variable_is_documented(doc, name):
    # then
    assert f"`{name}`" in doc


def test_every_type_has_a_section(doc):
    # given
    types = [
        "TenantInfo",
        "FieldSpec",
        "FieldKind",
        "FieldRole",
        "Choice",
        "FieldLimits",
        "MessageTemplate",
        "PluginError",
    ]

    # then
    for name in types:
        assert re.search(rf"^### {name}\b", doc, flags=re.MULTILINE), name


def test_python_examples_in_the_doc_are_valid_python(doc):
    # given
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)

    # then every block parses (the hook signature lines are completed with a body)
    assert len(blocks) >= 5
    for block in blocks:
        source = block if not block.rstrip().endswith(":") else block + "    ...\n"
        ast.parse(source)
