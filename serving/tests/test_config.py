"""The checked-in TF Serving config files parse with TF Serving's protos and point where `make demo` writes."""

import os
import shutil

import pytest

from serving import batching, config

SERVING = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKER = os.path.join(SERVING, "docker")
MODELS_CONFIG = os.path.join(DOCKER, "models.config")
COMPOSE = os.path.join(DOCKER, "docker-compose.yml")


def test_docker_model_config_serves_several_models_versions_and_labels():
    configs = {c.name: c for c in config.read_model_configs(MODELS_CONFIG, resolve_relative=False)}
    assert set(configs) == {"cnn_vision", "word2vec_lstm", "wide_deep"}
    assert all(os.path.isabs(c.base_path) for c in configs.values()), "TF Serving needs absolute base paths"
    assert config.required_versions(configs["cnn_vision"]) == {1, 2}
    assert dict(configs["cnn_vision"].version_labels) == {"stable": 1, "canary": 2}
    assert configs["word2vec_lstm"].model_version_policy.latest.num_versions == 1


def test_embedded_config_is_the_docker_config_on_host_paths():
    mounts = config.compose_mounts(COMPOSE, "tensorflow-serving")
    docker = config.read_model_configs(MODELS_CONFIG, resolve_relative=False)
    embedded = config.read_model_configs(os.path.join(SERVING, "models.config"))
    assert len(docker) == len(embedded)
    for d, e in zip(docker, embedded):
        assert config.host_path(d.base_path, mounts) == e.base_path
        d.base_path = e.base_path
        assert d == e  # same names, policies and labels


def test_compose_mounts_the_configs_and_the_runs_folder():
    mounts = config.compose_mounts(COMPOSE, "tensorflow-serving")
    repo = os.path.dirname(SERVING)
    assert mounts["/models"] == os.path.join(repo, "runs")
    assert mounts["/config/models.config"] == MODELS_CONFIG
    assert mounts["/config/batching.config"] == os.path.join(DOCKER, "batching.config")


def test_batching_parameters_parse_and_drive_the_batcher():
    params = config.read_batching_parameters(os.path.join(DOCKER, "batching.config"))
    assert params.max_batch_size.value == 32 and list(params.allowed_batch_sizes) == [8, 16, 32]
    batcher = batching.Batcher(params)
    try:
        assert (batcher.max_batch_size, batcher.timeout) == (32, 0.0)
    finally:
        batcher.stop()


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' base_path: '/x' colour: 1 } }", "has no field named \"colour\""),
    ("model_config_list { }", "no `config` entries"),
    ("model_config_list { config { name: 'a' } }", "needs a `name` and a `base_path`"),
    ("model_config_list { config { name: 'a' base_path: '/x' } config { name: 'a' base_path: '/y' } }", "twice"),
    ("model_config_list { config { name: 'a' base_path: '/x' model_version_policy { specific { versions: 1 } } "
     "version_labels { key: 'canary' value: 2 } } }", "label 'canary' points at version 2"),
])
def test_bad_model_configs_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.config"
    path.write_text(text)
    with pytest.raises(config.ConfigFileError) as error:
        config.read_model_configs(str(path))
    assert str(path) in str(error.value) and message in str(error.value)


def test_bad_batching_parameters_are_refused(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 32 }\nallowed_batch_sizes: 8\nallowed_batch_sizes: 16\n")
    with pytest.raises(config.ConfigFileError, match="end at max_batch_size"):
        config.read_batching_parameters(str(path))


def test_check_command_finds_missing_exports_through_the_compose_mounts(tmp_path, capsys):
    # The repo's serving/docker files in a copy of the layout, with fake exports under runs/.
    docker = tmp_path / "serving" / "docker"
    shutil.copytree(DOCKER, docker)
    for model, version in (("cnn_vision", 1), ("cnn_vision", 2), ("word2vec_lstm", 1), ("wide_deep", 1)):
        folder = tmp_path / "runs" / model / "default" / "export" / str(version)
        folder.mkdir(parents=True)
        (folder / "saved_model.pb").write_bytes(b"")
    args = [str(docker / "models.config"), f"--compose_file={docker / 'docker-compose.yml'}",
            f"--batching_parameters_file={docker / 'batching.config'}"]
    assert config.main(args) == 0
    assert f"cnn_vision: {tmp_path}/runs/cnn_vision/default/export" in capsys.readouterr().out

    os.remove(tmp_path / "runs" / "cnn_vision" / "default" / "export" / "1" / "saved_model.pb")
    assert config.main(args) == 1
    assert "model 'cnn_vision': no SavedModel for version(s) [1]" in capsys.readouterr().err
