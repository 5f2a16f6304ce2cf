"""One shape for every project: the same binaries with the same flags, the input pipeline in data.py, and
configs that open with their header: what each is, what it reproduces (a measured number and the time it
took on this machine), and the command that runs it."""

import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "projects", "*", "configs", "*.gin")))
# A duration: "24.7 minutes", "12-17 s", "2 min 19 s", "about 40 s", "9.4-12.6 minutes".
DURATION = re.compile(r"\d[\d.,]*(?:\s?-\s?\d[\d.,]*)?\s?(?:s|seconds|min|minutes|hours?)\b")


def header(path: str) -> list[str]:
    lines = []
    with open(path) as f:
        for line in f:
            if not line.startswith("#"):
                break
            lines.append(line.rstrip("\n"))
    return lines


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, REPO) for p in CONFIGS])
def test_every_config_opens_with_what_it_reproduces_in_how_long_and_how_to_run_it(path):
    project, name = path.split(os.sep)[-3], os.path.splitext(os.path.basename(path))[0]
    lines = header(path)
    assert lines and lines[0].startswith(f"# {project} / {name}: "), f"first line: '# {project} / {name}: ...'"
    text = "\n".join(lines)
    reproduces = re.search(r"^# Reproduces: (.*?)(?=^# Run)", text, re.M | re.S)
    assert reproduces, "a '# Reproduces: ...' paragraph, then '# Run...:' with the command"
    assert re.search(r"^# Run\b[^\n]*:$", text, re.M) and "python -m projects." in text
    assert re.search(r"\d", reproduces.group(1)), "what it reproduces, as a measured number"
    assert DURATION.search(reproduces.group(1)), "how long it takes on this machine"


PROJECTS = sorted(os.path.basename(os.path.dirname(path))
                  for path in glob.glob(os.path.join(REPO, "projects", "*", "task.py")))
PREDICT = {"transformer": "translate"}  # what README says each project calls its predict binary


def _source(project: str, module: str) -> str:
    with open(os.path.join(REPO, "projects", project, f"{module}.py")) as f:
        return f.read()


@pytest.mark.parametrize("project", PROJECTS)
def test_every_project_has_the_binaries_and_their_common_flags(project):
    for binary in ("prepare", "train", "evaluate", "export", PREDICT.get(project, "predict"), "bench", "data", "model"):
        assert os.path.isfile(os.path.join(REPO, "projects", project, f"{binary}.py")), f"{project}/{binary}.py"
    assert "evaluation.define_flags()" in _source(project, "evaluate"), "evaluate takes --split and --checkpoint"
    assert "export.define_flags()" in _source(project, "export"), "export takes --export_dir, --version, --checkpoint"
    assert "options = export.setup()" in _source(project, "export"), "export builds float32 layers"
    assert "from_model_dir(options.model_dir)" in _source(project, "evaluate")
    train = _source(project, "train")
    assert "trainer.train(" in train and "options=options, config=trainer.TrainConfig()" in train
