import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from core import distribute, launch
from core.config import ConfigError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_default_and_mirrored_strategies():
    assert distribute.create_strategy("default").num_replicas_in_sync == 1
    assert distribute.create_strategy("one_device").num_replicas_in_sync == 1
    mirrored = distribute.create_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2  # conftest splits the CPU in two
    assert distribute.is_chief(mirrored) and not distribute.is_multi_worker(mirrored)
    assert distribute.write_dir("/m", mirrored) == "/m"


def test_multi_worker_without_tf_config_says_how_to_launch(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="core.launch"):
        distribute.create_strategy("multi_worker_mirrored")


def test_parameter_server_is_a_clear_error():
    with pytest.raises(ConfigError, match="ClusterCoordinator"):
        distribute.create_strategy("parameter_server")


def test_tf_config_describes_the_cluster():
    config = json.loads(launch.tf_config(["127.0.0.1:1", "127.0.0.1:2"], 1))
    assert config == {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    ports = launch.free_ports(3, "127.0.0.1")
    assert len(set(ports)) == 3


def test_launch_returns_the_failing_workers_exit_code():
    worker = "import json, os, sys; sys.exit(3 * json.loads(os.environ['TF_CONFIG'])['task']['index'])"
    code = launch.launch([sys.executable, "-c", worker], workers=2)
    assert code == 3


def test_two_workers_train_in_sync_and_only_the_chief_writes(tmp_path):
    model_dir = tmp_path / "mw"
    result = subprocess.run(
        [sys.executable, "-m", "core.launch", "--workers=2", "--",
         sys.executable, "-m", "tests.tiny_train", f"--model_dir={model_dir}"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "using the custom loop instead" in result.stdout  # fit is not possible under MWMS
    weights = [np.load(model_dir / f"weights_{i}.npz") for i in range(2)]
    assert len(weights[0].files) == 4
    for name in weights[0].files:
        np.testing.assert_array_equal(weights[0][name], weights[1][name])
    assert os.path.basename(tf.train.latest_checkpoint(str(model_dir / "checkpoints"))) == "ckpt-20"
    leftovers = [p for p in os.listdir(model_dir) if p.startswith(".worker")]
    assert leftovers == []  # the non-chief's scratch folder is removed
