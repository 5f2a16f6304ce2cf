import os

import gin
import pytest

from core import config


@gin.configurable
def _configured(value: int = 0, name: str = "x"):
    return value, name


def test_files_then_bindings_override(tmp_path):
    path = tmp_path / "a.gin"
    path.write_text("_configured.value = 3\n_configured.name = 'file'\n")
    config.parse_gin([str(path)], ["_configured.name = 'binding'"])
    assert _configured() == (3, "binding")


def test_include_resolves_next_to_the_including_file(tmp_path):
    (tmp_path / "base.gin").write_text("_configured.value = 7\n")
    (tmp_path / "child.gin").write_text("include 'base.gin'\n_configured.name = 'child'\n")
    cwd = os.getcwd()
    os.chdir("/")
    try:
        config.parse_gin([str(tmp_path / "child.gin")], [])
    finally:
        os.chdir(cwd)
    assert _configured() == (7, "child")


def test_include_inside_an_included_file_resolves_next_to_that_file(tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "base.gin").write_text("_configured.value = 9\n")
    (tmp_path / "project" / "smoke.gin").write_text("include 'base.gin'\n")
    (tmp_path / "user.gin").write_text(f"include '{tmp_path / 'project' / 'smoke.gin'}'\n_configured.name = 'u'\n")
    config.parse_gin([str(tmp_path / "user.gin")], [])
    assert _configured() == (9, "u")


def test_unquoted_string_binding_suggests_quotes():
    with pytest.raises(config.ConfigError, match="string values need quotes"):
        config.parse_gin([], ["_configured.name = text"])


def test_unknown_parameter_names_file_and_line(tmp_path):
    path = tmp_path / "bad.gin"
    path.write_text("_configured.value = 1\n_configured.vaule = 2\n")
    with pytest.raises(config.ConfigError, match=r'(?s)vaule.*bad.gin", line 2'):
        config.parse_gin([str(path)], [])


def test_syntax_error_names_the_file(tmp_path):
    path = tmp_path / "broken.gin"
    path.write_text("_configured.value = [1, 2\n")
    with pytest.raises(config.ConfigError, match="broken.gin"):
        config.parse_gin([str(path)], [])


def test_bad_binding_is_named():
    with pytest.raises(config.ConfigError, match="nosuch"):
        config.parse_gin([], ["nosuch.value = 1"])


def test_missing_file_is_named(tmp_path):
    with pytest.raises(config.ConfigError, match="no such file"):
        config.parse_gin([str(tmp_path / "missing.gin")], [])


def test_save_run_config_writes_operative_config_and_flags(tmp_path):
    from absl import flags

    flags.FLAGS(["test", f"--model_dir={tmp_path}"], known_only=True)
    config.parse_gin([], ["_configured.value = 5"])
    _configured()
    config.save_run_config(str(tmp_path))
    assert "_configured.value = 5" in (tmp_path / "operative_config.gin").read_text()
    assert f"--model_dir={tmp_path}" in (tmp_path / "flags.txt").read_text()
