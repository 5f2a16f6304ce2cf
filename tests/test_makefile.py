"""Bare `make` lists every target with one line each, and neither it nor `make help` installs anything."""

import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTS = sorted(name for name in os.listdir(os.path.join(REPO, "projects"))
                  if os.path.isfile(os.path.join(REPO, "projects", name, "__init__.py")))


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, check=False)


def _targets() -> list[str]:
    """The Makefile's named targets (not its file targets, variables or special targets)."""
    with open(os.path.join(REPO, "Makefile")) as f:
        return [m.group(1) for line in f if (m := re.match(r"^([a-z][a-z0-9_-]*):(?!=)", line))]


def test_bare_make_lists_every_target_with_a_description():
    result = _make()
    assert result.returncode == 0, result.stderr
    listed = dict(re.findall(r"^  (\S+) +(\S.*)$", result.stdout, re.M))
    targets = _targets()
    assert {"help", "setup", "demo", "test", "bench", "lint", "clean"} <= set(targets)
    missing = [t for t in targets if t not in listed]
    assert not missing, f"targets without a '## description' in the Makefile: {missing}"
    for family in ("test-<project>", "results-<project>"):
        assert all(p in listed[family] for p in PROJECTS), listed[family]
    assert _make("help").stdout == result.stdout


def test_bare_make_installs_nothing():
    # -n prints the commands the default goal would run, without running them.
    commands = _make("-n").stdout
    for installer in ("apt-get", "pip install", "-m venv"):
        assert installer not in commands
    assert "apt-get" in _make("-n", "-B", "system-packages").stdout  # the check can see an install
