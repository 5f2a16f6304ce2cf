"""Each project README's "Your own data" section names bindings that exist, with the defaults the configs
set: a renamed parameter or a changed default fails here instead of misleading a user."""

import glob
import importlib
import os
import re

import gin
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECTS = sorted(os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(REPO, "projects", "*",
                                                                                         "README.md")))
# The modules that register each project's configurables (importing a binary would define its flags).
MODULES = {"cnn_vision": ["task"], "word2vec_lstm": ["task", "word2vec_task"], "transformer": ["task"],
           "bert_similarity": ["task"], "wide_deep": ["task", "table", "model"]}


def own_data_rows(project):
    """(bindings, defaults, config file or None) per table row of the README's "## Your own data" section;
    a default cell may name the config that sets it, e.g. "`145`, `29` (word2vec.gin)"."""
    text = open(os.path.join(REPO, "projects", project, "README.md"), encoding="utf-8").read()
    section = re.search(r"^## Your own data\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, f"projects/{project}/README.md has no '## Your own data' section"
    rows = []
    for line in section.group(1).splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) == 3 and not set(cells[0]) <= {"-"} and cells[0] != "binding or flag" and cells[0] != "binding":
            named = re.search(r"\((\w+\.gin)\)", cells[1])
            rows.append((re.findall(r"`([^`]+)`", cells[0]), re.findall(r"`([^`]+)`", cells[1]),
                         named.group(1) if named else None))
    assert rows, f"projects/{project}/README.md: the section has no table of bindings"
    return rows


def configured_value(project, binding, config=None):
    """The value `binding = ...` has in `config`, or else in the project's configs (default.gin first), or None."""
    first = config or "default.gin"
    paths = sorted(glob.glob(os.path.join(REPO, "projects", project, "configs", "*.gin")),
                   key=lambda p: (os.path.basename(p) != first, p))
    for path in paths:
        match = re.search(rf"^{re.escape(binding)}\s*=\s*(.+?)\s*(?:#.*)?$", open(path).read(), re.M)
        if match:
            return match.group(1)
    return None


@pytest.mark.parametrize("project", PROJECTS)
def test_own_data_bindings_exist_with_the_defaults_the_configs_set(project):
    for module in MODULES[project]:
        # An earlier test in this process may have parsed a config, which locks gin against new configurables.
        with gin.unlock_config():
            importlib.import_module(f"projects.{project}.{module}")
    checked = 0
    for bindings, defaults, config in own_data_rows(project):
        for i, binding in enumerate(bindings):
            if binding.startswith("--"):
                continue
            if "." in binding:  # Configurable.parameter: gin refuses an unknown one
                gin.clear_config()
                with gin.unlock_config():
                    gin.bind_parameter(binding, None)
                gin.clear_config()
            value = configured_value(project, binding, config)
            if "." not in binding:
                assert value is not None, f"{binding}: no such macro in projects/{project}/configs"
            if value is not None and len(defaults) == len(bindings):
                assert defaults[i].strip("'\"") == value.strip("'\""), f"{project}: {binding}"
                checked += 1
    assert checked, f"{project}: no default checked"
