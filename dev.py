#!/usr/bin/env python3
"""Set up and run Rapidly with nothing but Python >= 3.11.

    python3 dev.py run     # create .venv, install, start the demo (embedded PostgreSQL, demo tenant)
    python3 dev.py test    # create .venv, install, run the whole test suite (extra args go to pytest)
    python3 dev.py lock    # resolve pyproject.toml again into the hashed locks in requirements/ (uv)

.venv gets exactly what requirements/test.txt pins, every file checked against its hashes, then Rapidly and
the example plugins (editable, nothing more from an index). It is (re)installed only when a pyproject.toml or
a lock changed since the last run, and `run`/`test` refuse a lock made from another pyproject.toml.
`lock` keeps every pin that still fits; extra arguments go to uv (`--upgrade`, `--upgrade-package NAME`).
The browser tests drive the system's Chromium; `test` installs Debian's `chromium` package when it
is missing and apt can be used (as root, or through password-less sudo).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".rapidly-installed"
PROJECTS = [ROOT, *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]
LOCKS = ROOT / "requirements"
RUNTIME_LOCK = LOCKS / "runtime.txt"  # the Docker image's: the dependencies, pip and setuptools
TEST_LOCK = LOCKS / "test.txt"  # .venv's (dev.py, CI): the same pins, the test extra and the tools
LOCK_INPUTS = [LOCKS / "build.in", LOCKS / "tools.in"]  # what the locks hold besides pyproject.toml's lists
DIGEST_LINE = "# inputs-sha256: "
PYPI = "https://pypi.org/simple"  # the locks record PyPI's files, whatever index a machine installs from
UV_KEPT = {"UV_CACHE_DIR", "UV_NO_CACHE", "UV_NATIVE_TLS", "UV_HTTP_TIMEOUT", "UV_OFFLINE"}


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under whatever python3 is installed
        sys.exit(f"Rapidly needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not argv or argv[0] not in ("run", "test", "lock"):
        sys.exit(__doc__)
    command, rest = argv[0], argv[1:]
    if command == "lock":
        return lock(rest)
    ensure_environment()
    if command == "run":
        return run([str(BIN / "rapidly"), "demo", *rest])
    ensure_chromium()
    return run([str(PYTHON), "-m", "pytest", *rest])


def run(command: list[str]) -> int:
    """Run the child to its end. Ctrl-C reaches it too and it stops cleanly (the demo stops its
    database), so we wait for that instead of killing it as subprocess.call would. A SIGTERM sent
    to this process alone (a service manager, `timeout`) is passed on, so that the child stops
    cleanly too instead of being orphaned with its database running."""
    with subprocess.Popen(command, cwd=ROOT) as child:
        if hasattr(signal, "SIGTERM"):
            signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue


def ensure_environment() -> None:
    """Install .venv from the lock: every third-party package (pip and setuptools too) exactly as
    requirements/test.txt pins it, each file checked against its hashes, then the project and the
    plugins editable without their dependencies or build isolation, so nothing else comes from an index.
    A lock made from another pyproject.toml is refused."""
    stale = stale_locks()
    if stale:
        sys.exit(
            f"{' and '.join(stale)} were not locked from this pyproject.toml (or requirements/*.in): "
            "run `python3 dev.py lock` and commit requirements/ with it."
        )
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    create_venv()
    print("installing the locked dependencies, Rapidly and its example plugins into .venv ...", flush=True)
    pip_install("--require-hashes", "-r", str(TEST_LOCK))
    pip_install("--no-deps", "--no-build-isolation", *[arg for project in PROJECTS for arg in ("-e", str(project))])
    remove_unlocked()
    check = subprocess.run([str(PYTHON), "-m", "pip", "check"], capture_output=True, text=True)
    if check.returncode:
        sys.exit(f"the packages in .venv do not fit together; is the lock complete?\n{check.stdout}")
    STAMP.write_text(wanted)


def create_venv() -> None:
    if (BIN / "pip").exists() or (BIN / "pip.exe").exists():
        return
    try:
        import ensurepip  # noqa: F401 - Debian ships it separately
    except ImportError:
        sys.exit("Python's venv support is missing: install it first (Debian/Ubuntu: apt install python3-venv).")
    print("creating .venv ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)


def pip_install(*args: str) -> None:
    command = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    if subprocess.call(command):
        sys.exit(f"installing into .venv failed (pip said why, above): {' '.join(command[1:])}")


def remove_unlocked() -> None:
    """Uninstall what the lock does not name (a dependency since dropped, something installed by
    hand), so that .venv holds the lock and nothing else."""
    locked = {canonical(name) for name, _ in pins(TEST_LOCK.read_text())}
    listed = subprocess.run(
        [str(PYTHON), "-m", "pip", "list", "--format=json", "--exclude-editable", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    )
    extra = sorted(item["name"] for item in json.loads(listed.stdout) if canonical(item["name"]) not in locked)
    if extra:
        print(f"removing from .venv what the lock does not name: {', '.join(extra)}", flush=True)
        subprocess.check_call([str(PYTHON), "-m", "pip", "uninstall", "--yes", "--quiet", *extra])


def lock(args: list[str]) -> int:
    """Resolve pyproject.toml (its dependencies, the test extra) and requirements/*.in again with uv:
    universal (every platform and Python >= requires-python, with markers), each pin with the hashes
    of all its files on PyPI. test.txt first; runtime.txt is its runtime part, constrained to the same
    pins. Pins that still fit are kept unless `--upgrade` or `--upgrade-package NAME` says otherwise."""
    create_venv()
    # uv as test.txt pins it (it has no dependencies), also when the rest of the lock is stale
    entry = re.search(r"^uv==.*?(?=^\S)", f"{TEST_LOCK.read_text()}\n.", re.M | re.S) if TEST_LOCK.exists() else None
    if entry:
        with tempfile.TemporaryDirectory() as scratch:
            (Path(scratch) / "uv.txt").write_text(entry[0])
            pip_install("--require-hashes", "--no-deps", "-r", str(Path(scratch) / "uv.txt"))
    else:  # the very first lock: uv from the index, once
        pip_install(*requirement_lines((LOCKS / "tools.in").read_text()))
    uv = BIN / ("uv.exe" if os.name == "nt" else "uv")
    env = {key: value for key, value in os.environ.items() if not key.startswith("UV_") or key in UV_KEPT}
    minimum = re.search(r">=\s*(\d+\.\d+)", str(lock_inputs()["requires-python"]))
    common = [
        *(str(uv), "pip", "compile", "--quiet", "--no-config", "--universal", "--generate-hashes"),
        *("--python-version", minimum[1] if minimum else "3.11", "--default-index", PYPI),
        *("--custom-compile-command", "python3 dev.py lock"),
    ]
    inputs = [path.relative_to(ROOT).as_posix() for path in LOCK_INPUTS]
    test, runtime = (path.relative_to(ROOT).as_posix() for path in (TEST_LOCK, RUNTIME_LOCK))
    steps = {
        TEST_LOCK: [*common, *args, "pyproject.toml", "--extra", "test", *inputs, "-o", test],
        RUNTIME_LOCK: [*common, "pyproject.toml", inputs[0], "--constraint", test, "-o", runtime],
    }
    digest = lock_digest()
    for output, command in steps.items():
        if code := subprocess.call(command, cwd=ROOT, env=env):
            return code
        lines = output.read_text().splitlines(keepends=True)
        header = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        lines[header:header] = [f"{DIGEST_LINE}{digest} (pyproject.toml's lists and requirements/*.in)\n"]
        output.write_text("".join(lines))
    print(f"locked: {test}, {runtime}; commit requirements/ (and pyproject.toml) together", flush=True)
    return 0


def lock_inputs(pyproject: dict | None = None) -> dict[str, object]:
    """What the locks are resolved from; their header records its digest (tests/test_lock.py)."""
    import tomllib  # here, so that Python < 3.11 gets main()'s message

    if pyproject is None:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = pyproject["project"]
    return {
        "requires-python": project.get("requires-python", ""),
        "dependencies": sorted(project.get("dependencies", [])),
        "test": sorted(project.get("optional-dependencies", {}).get("test", [])),
        "build-system": sorted(pyproject.get("build-system", {}).get("requires", [])),
        **{path.relative_to(ROOT).as_posix(): requirement_lines(path.read_text()) for path in LOCK_INPUTS},
    }


def lock_digest(pyproject: dict | None = None) -> str:
    canonical_inputs = json.dumps(lock_inputs(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical_inputs.encode()).hexdigest()


def locked_digest(lock_file: Path) -> str | None:
    """The digest in a lock's header, None when it has none."""
    for line in lock_file.read_text().splitlines():
        if line.startswith(DIGEST_LINE):
            return line[len(DIGEST_LINE) :].split()[0]
    return None


def stale_locks() -> list[str]:
    digest = lock_digest()
    return [
        path.relative_to(ROOT).as_posix()
        for path in (TEST_LOCK, RUNTIME_LOCK)
        if not path.exists() or locked_digest(path) != digest
    ]


def requirement_lines(text: str) -> list[str]:
    """The requirements of a requirements file without its comments (no continuation lines: the .in files)."""
    lines = (line.split(" #")[0].strip() for line in text.splitlines() if not line.lstrip().startswith("#"))
    return [line for line in lines if line]


def pins(text: str) -> list[tuple[str, str]]:
    """(name, version) of each `name==version` line of a lock, as uv writes them."""
    return [(match[1], match[2]) for match in re.finditer(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, re.M)]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ensure_chromium() -> None:
    """Install Debian's chromium for the browser tests if it is missing and apt is at hand.

    Never a browser download: Playwright drives this system binary (tests/conftest.py).
    """
    if os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if not shutil.which("apt-get"):
        print("note: Chromium is missing; the browser tests will fail (install it, or pass -m 'not browser')")
        return
    as_root: list[str] = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if as_root and not shutil.which("sudo"):
        print("note: Chromium is missing and apt needs root: run `apt-get install chromium` first")
        return
    print("installing Debian's chromium for the browser tests ...", flush=True)
    quiet = {"stdout": subprocess.DEVNULL, "env": {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}}
    if subprocess.call([*as_root, "apt-get", "install", "-y", "--no-install-recommends", "chromium"], **quiet):
        subprocess.call([*as_root, "apt-get", "update"], **quiet)
        subprocess.call([*as_root, "apt-get", "install", "-y", "--no-install-recommends", "chromium"], **quiet)


def fingerprint() -> str:
    digest = hashlib.sha256(sys.version.encode())
    for project in PROJECTS:
        digest.update((project / "pyproject.toml").read_bytes())
    for lock_file in (TEST_LOCK, RUNTIME_LOCK):
        digest.update(lock_file.read_bytes() if lock_file.exists() else b"")
    return digest.hexdigest()


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:  # Ctrl-C while .venv is set up: pip has stopped too; the next run sets it up again
        sys.exit("stopped")
