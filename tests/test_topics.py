"""docs/TOPICS.md cannot rot: every file and definition it points at must exist.

A pointer is a link whose text is `path:Definition` (or just `path`) and whose target is that path,
e.g. [`core/loops.py:run_custom_loop`](../core/loops.py). A definition is a module-level function,
class or assignment, or `Class.method`, found by parsing the file (nothing is imported or run).
"""

from __future__ import annotations

import ast
import functools
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOPICS = os.path.join(ROOT, "docs", "TOPICS.md")
POINTER = re.compile(r"\[`([^`:\]]+)(?::([\w.]+))?`\]\(([^)]+)\)")
LINK = re.compile(r"\]\(([^)#]+)(?:#[^)]*)?\)")

# The topics issue #9 lists as the least the map must cover, as they are spelled on the page.
REQUIRED_TOPICS = (
    "tensors and basic operations", "autograph", "retrac", "input_signature", "`tf.Module` vs `keras.layers.Layer`",
    "Sequential", "Functional", "subclassed", "`__init__`, `build`, `call`, `get_config`", "add_weight",
    "initializers", "function factory", "`update_state`, `result`, `reset_state`", "GradientTape",
    "`model.evaluate` or metric objects", "`model.predict` or calling the model", ".weights.h5",
    "tf.train.Checkpoint", ".keras", "signatures", "saved_model_cli", "Callbacks", "TensorBoard", "tf.summary",
    "from_tensor_slices", "TFRecordWriter", "TextLineDataset", "crop_to_bounding_box", "tf.stack", "tf.unstack",
    "tf.name_scope", "CNN", "word2vec", "Transformer", "tf.distribute", "TF Hub", "TF Serving",
)


def _text() -> str:
    with open(TOPICS, encoding="utf-8") as f:
        return f.read()


def _pointers() -> list[tuple[str, str, str]]:
    return POINTER.findall(_text())


@functools.cache  # many pointers name the same file: parse each once
def _python_definitions(path: str) -> set[str]:
    """Module-level names a file defines, and `Class.member` for the members of its classes."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename=path)
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names.update(f"{node.name}.{member.name}" for member in node.body
                         if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)))
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_the_map_has_pointers():
    assert len(_pointers()) > 100, "docs/TOPICS.md lost most of its pointers; did the pointer syntax change?"


@pytest.mark.parametrize("path,name,target", sorted(set(_pointers())), ids=lambda p: p or "")
def test_every_pointer_resolves(path, name, target):
    assert os.path.normpath(os.path.join("docs", target)) == os.path.normpath(path), (
        f"docs/TOPICS.md: the link to {path} points at {target}")
    full = os.path.join(ROOT, path)
    assert os.path.exists(full), f"docs/TOPICS.md points at {path}, which does not exist"
    if not name:  # a file or folder pointer
        return
    assert path.endswith(".py"), f"docs/TOPICS.md: {path}:{name}: only a Python file can name a definition"
    assert name in _python_definitions(full), f"docs/TOPICS.md points at {name} in {path}, which does not define it"


def test_every_link_on_the_page_resolves():
    missing = [t for t in LINK.findall(_text()) if not t.startswith("http")
               and not os.path.exists(os.path.normpath(os.path.join(ROOT, "docs", t)))]
    assert not missing, f"docs/TOPICS.md links to missing files: {missing}"


def test_every_section_points_at_code():
    sections = re.split(r"^#{2,3} ", _text(), flags=re.M)[1:]
    # A heading with nothing under it but subheadings ("## Notes 1") needs no pointer of its own.
    empty = [s.splitlines()[0] for s in sections if not POINTER.search(s) and "".join(s.splitlines()[1:]).strip()]
    assert not empty, f"docs/TOPICS.md sections without a pointer: {empty}"


def test_the_topics_the_issue_asks_for_are_covered():
    text = _text()
    missing = [topic for topic in REQUIRED_TOPICS if topic not in text]
    assert not missing, f"docs/TOPICS.md no longer mentions: {missing}"


def test_every_example_is_on_the_map():
    examples = sorted(f for f in os.listdir(os.path.join(ROOT, "examples")) if f.endswith(".py") and f != "__init__.py")
    assert examples, "examples/ has no scripts"
    pointed = {path for path, _, _ in _pointers()}
    missing = [f for f in examples if f"examples/{f}" not in pointed]
    assert not missing, f"examples not on docs/TOPICS.md: {missing}"


def test_readme_links_the_map_near_the_top():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        head = "".join(f.readlines()[:12])
    assert "(docs/TOPICS.md)" in head
