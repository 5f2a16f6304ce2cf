import keras
import numpy as np
import pytest
from absl import flags

from core import runtime, testing
from core.config import ConfigError, RunOptions


@pytest.fixture(autouse=True)
def _restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_configure_sets_policy_and_seeds(tmp_path):
    options = RunOptions(model_dir=str(tmp_path), seed=11, mixed_precision="mixed_bfloat16")
    runtime.configure(options)
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    first = np.random.rand()
    runtime.configure(options)
    assert np.random.rand() == first


def test_splitting_the_cpu_after_start_up_is_a_clear_error():
    runtime.split_cpu(2)  # what conftest already did: accepted
    with pytest.raises(ConfigError, match="--num_cpu_devices=3"):
        runtime.split_cpu(3)


def test_setup_without_config_for_evaluate_says_train_first(tmp_path):
    flags.FLAGS(["test", f"--model_dir={tmp_path}"], known_only=True)
    try:
        with pytest.raises(ConfigError, match="operative_config.gin does not exist"):
            runtime.setup(default_gin_from_model_dir=True)
    finally:
        flags.FLAGS.unparse_flags()


def test_run_options_need_a_model_dir():
    flags.FLAGS(["test"], known_only=True)
    try:
        with pytest.raises(ConfigError, match="--model_dir is required"):
            RunOptions.from_flags()
    finally:
        flags.FLAGS.unparse_flags()


def test_a_negative_cpu_device_count_is_refused_by_the_binary(tmp_path):
    result = testing.run_module("tests.tiny_train", f"--model_dir={tmp_path}", "--num_cpu_devices=-1")
    assert result.returncode == 2
    assert "error: --num_cpu_devices=-1: expected 0 (no split) or a count > 0." in result.stderr
    assert "Traceback" not in result.stderr


def test_tpu_strategy_without_a_tpu_is_one_clear_error(tmp_path):
    result = testing.run_module("tests.tiny_train", f"--model_dir={tmp_path}", "--strategy=tpu")
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: --strategy=tpu: no TPU reachable with --tpu=''" in result.stderr
    assert "Traceback" not in result.stderr
