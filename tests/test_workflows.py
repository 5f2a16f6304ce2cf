"""Every project, serving/, examples/ and core have a CI workflow that runs their `make test-<part>`, and
triggers on every folder that part's tests import or read, on its own file and on the pinned environment,
with a pip cache keyed on the requirement files. A copied project is reminded here to add one."""

import fnmatch
import glob
import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOWS = os.path.join(REPO, ".github", "workflows")
PROJECTS = sorted(os.path.basename(os.path.dirname(p))
                  for p in glob.glob(os.path.join(REPO, "projects", "*", "task.py")))
ENVIRONMENT = {"requirements*.txt", "constraints.txt", "Makefile", "pyproject.toml", "conftest.py"}
# Folders a part's tests read by path, not through imports: `make test-core` runs tests/, the tests of core/,
# whose checks walk every project, the docs and the examples; the topic map's test reads docs/ and checks
# pointers into every folder.
READ_BY_PATH = {"core": {"core/**", "projects/**", "docs/**", "examples/**"},
                "examples": {"docs/**", "tests/test_topics.py", "core/**", "projects/**", "serving/**"}}
PARTS = {**{p: f"projects/{p}" for p in PROJECTS}, "core": "tests", "serving": "serving", "examples": "examples"}


def _imported_folders(folder: str) -> set[str]:
    """The repository folders the Python files under `folder` import (core, serving, examples, a project)."""
    found = set()
    for path in glob.glob(os.path.join(REPO, folder, "**", "*.py"), recursive=True):
        with open(path) as f:
            for m in re.finditer(r"^\s*(?:from|import) (core|serving|examples|projects\.\w+)\b", f.read(), re.M):
                found.add(m.group(1).replace(".", "/") + "/**")
    return found


def _workflow(name: str) -> dict:
    path = os.path.join(WORKFLOWS, f"{name}.yml")
    assert os.path.isfile(path), f"no workflow .github/workflows/{name}.yml: add one that runs `make test-{name}`"
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize("part", sorted(PARTS))
def test_every_part_has_a_workflow_that_runs_its_tests_when_what_they_read_changes(part):
    workflow = _workflow(part)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` key as True
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    assert f"make test-{part}" in [step.get("run") for step in steps]
    needed = ({f"{PARTS[part]}/**"} | _imported_folders(PARTS[part]) | READ_BY_PATH.get(part, set())
              | ENVIRONMENT | {f".github/workflows/{part}.yml"})
    for event in ("push", "pull_request"):
        paths = triggers[event]["paths"]
        missing = sorted(n for n in needed if not any(fnmatch.fnmatch(n, p) for p in paths))
        assert not missing, f"{part}.yml's {event} paths miss {missing}, which its tests import or read"
    setup_python = [step for step in steps if step.get("uses", "").startswith("actions/setup-python")]
    assert setup_python, "actions/setup-python with a pip cache"
    options = setup_python[0]["with"]
    assert options["cache"] == "pip"
    assert set(options["cache-dependency-path"].split()) == {"requirements*.txt", "constraints.txt"}


def test_the_import_scan_finds_what_a_project_test_imports():
    # The rule above is only as good as this scan: wide_deep's binaries' tests serve through serving/.
    assert {"core/**", "serving/**", "projects/wide_deep/**"} <= _imported_folders("projects/wide_deep")
