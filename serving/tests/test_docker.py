"""The Docker files, checked without a Docker engine: the compose file serves every project once, on the
image that can run its ops; images install what requirements.txt pins and copy what their entrypoint
imports; and `serving.config --core_ops_only` tells a tensorflow_text export from a core-TF one."""

import ast
import importlib.metadata
import os
import re
import shlex
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
import yaml

from serving import config, processes

REPO = processes.REPO
DOCKER = os.path.join(REPO, "serving", "docker")
COMPOSE = os.path.join(DOCKER, "docker-compose.yml")
DOCKERFILES = sorted(os.path.join(DOCKER, n) for n in os.listdir(DOCKER) if n.startswith("Dockerfile"))
TEXT_OP_PROJECTS = {"transformer", "bert_similarity"}  # their exports tokenize with tensorflow_text ops


def _compose():
    with open(COMPOSE) as f:
        return yaml.safe_load(f)


def _pins(path):
    """{normalized name: version} of the `name==version` lines of a requirements file."""
    pins = {}
    for line in open(path):
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==")
            pins[re.sub(r"[-_.]+", "-", name.lower())] = version
    return pins


def _instructions(dockerfile):
    """(instruction, argument text) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n", " ", open(dockerfile).read())
    return [tuple(line.split(None, 1)) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _served_models(service):
    """The models a compose service serves: its --model_config_file, read through its volume mounts."""
    spec = _compose()["services"][service]
    arguments = spec.get("command", [])
    [path] = [a.split("=", 1)[1] for a in arguments if a.startswith("--model_config_file=")]
    host = config.host_path(path, config.compose_mounts(COMPOSE, service))
    assert os.path.isfile(host), f"{service}: {path} is not mounted from a file of the repo"
    return {c.name: c for c in config.read_model_configs(host, resolve_relative=False)}


def test_compose_serves_every_project_with_an_export_once_on_an_image_that_runs_its_ops():
    projects = {name for name in os.listdir(os.path.join(REPO, "projects"))
                if os.path.isfile(os.path.join(REPO, "projects", name, "export.py"))}
    stock, embedded = _served_models("tensorflow-serving"), _served_models("embedded-server")
    assert set(stock) | set(embedded) == projects and not set(stock) & set(embedded)
    assert set(embedded) == TEXT_OP_PROJECTS
    mounts = config.compose_mounts(COMPOSE, "embedded-server")
    for model in embedded.values():  # where `make demo` writes each export, as in the stock config
        assert config.host_path(model.base_path, mounts) == os.path.join(REPO, "runs", model.name, "default", "export")
    assert _compose()["services"]["tensorflow-serving"]["image"].startswith("tensorflow/serving:")


def test_compose_ports_and_builds_are_consistent():
    services = _compose()["services"]
    host_ports = [p.split(":")[0] for s in services.values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), host_ports
    for name, spec in services.items():
        if "build" in spec:
            dockerfile = os.path.normpath(os.path.join(DOCKER, spec["build"]["context"], spec["build"]["dockerfile"]))
            assert dockerfile in DOCKERFILES, f"{name}: {dockerfile}"
            exposed = [a for k, a in _instructions(dockerfile) if k == "EXPOSE"]
            assert [p.split(":")[1] for p in spec["ports"]] == exposed, name
    # The embedded server's flags in the compose file and its image are flags it defines.
    defined = set(re.findall(r'DEFINE_\w+\("(\w+)"', open(os.path.join(REPO, "serving", "server.py")).read()))
    server_file = os.path.join(DOCKER, "Dockerfile.server")
    entrypoint = [a for k, a in _instructions(server_file) if k in ("ENTRYPOINT", "CMD")]
    given = [*services["embedded-server"]["command"], *(x for a in entrypoint for x in ast.literal_eval(a))]
    assert {a.split("=")[0][2:] for a in given if a.startswith("--")} <= defined


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.basename)
def test_images_install_the_versions_requirements_pin(dockerfile):
    pins = _pins(os.path.join(REPO, "requirements.txt"))
    installed = [word for kind, argument in _instructions(dockerfile) if kind == "RUN" and "pip install" in argument
                 for word in shlex.split(argument) if "==" in word]
    assert installed, f"{dockerfile}: no pinned pip install"
    for requirement in installed:
        name, version = requirement.split("==")
        assert pins.get(re.sub(r"[-_.]+", "-", name.lower())) == version, f"{dockerfile}: {requirement}"


def _local_imports(module_path):
    """The serving/ modules a module imports (`from . import x`, `from .x import y`, `from serving import x`)."""
    tree = ast.parse(open(module_path).read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or node.module == "serving"):
            if node.module and node.level == 1:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def _third_party_imports(module_path):
    """The packages a module imports at its top (imports inside functions serve checks, not the server) that are
    neither the standard library nor serving/."""
    found = set()
    for node in ast.parse(open(module_path).read()).body:
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
        found.update(n.split(".")[0] for n in names)
    for node in ast.walk(ast.parse(open(module_path).read())):  # uvicorn loads its event loop and parser by name
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "Config":
            found.update(k.value.value for k in node.keywords if k.arg in ("loop", "http")
                         and isinstance(k.value, ast.Constant))
    return found - set(sys.stdlib_module_names) - {"serving", "__future__"}


def _normalized(name):
    return re.sub(r"[-_.]+", "-", name.lower())


def _with_dependencies(distributions):
    """The distributions and everything they require (markers and extras ignored: a superset is fine here)."""
    found, todo = set(), [_normalized(d) for d in distributions]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [_normalized(re.split(r"[ ;<>=!~\[(]", r, maxsplit=1)[0]) for r in requires if "extra ==" not in r]
    return found


def _entrypoint_closure(instructions):
    """The serving/ modules the image's entrypoint imports, itself included."""
    [entrypoint] = [ast.literal_eval(a) for k, a in instructions if k == "ENTRYPOINT"]
    module = entrypoint[entrypoint.index("-m") + 1].split(".")[1]
    needed, todo = {"__init__"}, [module]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += _local_imports(os.path.join(REPO, "serving", f"{name}.py"))
    return needed


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.basename)
def test_images_copy_every_module_their_entrypoint_imports(dockerfile):
    instructions = _instructions(dockerfile)
    copied = {os.path.basename(p)[:-3] for k, a in instructions if k == "COPY" for p in a.split()[:-1]
              if p.startswith("serving/")}
    needed = _entrypoint_closure(instructions)
    assert needed <= copied, f"{dockerfile} does not copy {sorted(needed - copied)}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=os.path.basename)
def test_images_install_every_package_their_modules_import(dockerfile):
    instructions = _instructions(dockerfile)
    installed = _with_dependencies(word.split("==")[0] for kind, argument in instructions
                                   if kind == "RUN" and "pip install" in argument
                                   for word in shlex.split(argument) if "==" in word)
    owners = importlib.metadata.packages_distributions()
    for module in sorted(_entrypoint_closure(instructions) - {"__init__"}):
        for package in _third_party_imports(os.path.join(REPO, "serving", f"{module}.py")):
            distributions = {_normalized(d) for d in owners.get(package, [package])}
            assert distributions & installed, f"{dockerfile}: serving/{module}.py imports {package}, which the " \
                                              f"image does not install ({sorted(distributions)})"


def test_core_ops_check_tells_a_tensorflow_text_export_from_a_core_one(tmp_path):
    import tensorflow_text as text

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, words):
            return {"length": tf.strings.length(words)}

    class Folded(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, words):
            return {"folded": text.case_fold_utf8(words)}

    for name, module in (("plain", Plain()), ("folded", Folded())):
        tf.saved_model.save(module, str(tmp_path / name / "1"), signatures={"serving_default": module.serve})
    models = tmp_path / "models.config"
    models.write_text(textwrap.dedent(f"""\
        model_config_list {{
          config {{ name: "plain" base_path: "{tmp_path / 'plain'}" model_platform: "tensorflow" }}
          config {{ name: "folded" base_path: "{tmp_path / 'folded'}" model_platform: "tensorflow" }}
        }}"""))
    # A fresh process: this one has loaded tensorflow_text's ops, so they look registered here.
    check = subprocess.run([sys.executable, "-m", "serving.config", str(models), "--core_ops_only"],
                           capture_output=True, text=True, cwd=REPO, timeout=120)
    assert check.returncode == 1, check.stderr
    [problem] = [line for line in check.stderr.splitlines() if line.startswith("error:")]
    assert "model 'folded'" in problem and "CaseFoldUTF8" in problem and "Dockerfile.server" in problem
