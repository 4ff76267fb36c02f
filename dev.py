#!/usr/bin/env python3
"""Set up and run Rapidly with nothing but Python >= 3.11.

    python3 dev.py run     # create .venv, install, start the demo (embedded PostgreSQL, demo tenant)
    python3 dev.py test    # create .venv, install, run the whole test suite (extra args go to pytest)

The virtual environment is (re)installed only when a pyproject.toml changed since the last run.
The browser tests drive the system's Chromium; `test` installs Debian's `chromium` package when it
is missing and apt can be used (as root, or through password-less sudo).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".rapidly-installed"
PROJECTS = [ROOT, *sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))]


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs under whatever python3 is installed
        sys.exit(f"Rapidly needs Python 3.11 or newer; this is {sys.version.split()[0]}.")
    if not argv or argv[0] not in ("run", "test"):
        sys.exit(__doc__)
    command, rest = argv[0], argv[1:]
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
    wanted = fingerprint()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "pip").exists() and not (BIN / "pip.exe").exists():
        try:
            import ensurepip  # noqa: F401 - Debian ships it separately
        except ImportError:
            sys.exit("Python's venv support is missing: install it first (Debian/Ubuntu: apt install python3-venv).")
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    print("installing Rapidly and its example plugins into .venv ...", flush=True)
    pip = [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.check_call([*pip, "--upgrade", "pip"])
    editable = [arg for project in PROJECTS[1:] for arg in ("-e", str(project))]
    subprocess.check_call([*pip, "-e", f"{ROOT}[test]", *editable])
    STAMP.write_text(wanted)


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
    return digest.hexdigest()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
