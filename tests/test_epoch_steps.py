"""epoch_steps and train_steps: a loop is an epoch of the prepared data a run trains on, whatever its size."""

import json

import gin
import pytest

from core import trainer
from core.data import prepared


@gin.configurable
class EpochTask:
    def __init__(self, data_dir: str = "nowhere", batch_size: int = 32, train_splits=("train",)):
        self.data_dir, self.batch_size, self.train_splits = data_dir, batch_size, train_splits


def _config(tmp_path, counts, *bindings):
    (tmp_path / "metadata.json").write_text(json.dumps({"counts": counts}))
    gin.clear_config()
    gin.parse_config("\n".join([
        "EPOCH_STEPS = @epoch_steps()", "epoch_steps.task = 'EpochTask'", f"EpochTask.data_dir = '{tmp_path}'",
        "TRAIN_STEPS = @train_steps()", "train_steps.epochs = 3", "train_steps.steps_per_epoch = %EPOCH_STEPS",
        "TrainConfig.steps_per_execution = 5", "TrainConfig.steps_per_loop = %EPOCH_STEPS",
        "TrainConfig.train_steps = %TRAIN_STEPS", *bindings]))
    try:
        return trainer.TrainConfig()
    finally:
        gin.clear_config()


def test_a_loop_is_one_pass_over_the_data_rounded_to_whole_executions(tmp_path):
    config = _config(tmp_path, {"train": 1000, "validation": 100})  # 1000 / 32 = 31.25 steps -> 30 (6 x 5)
    assert (config.steps_per_loop, config.train_steps) == (30, 90)
    bigger = _config(tmp_path, {"train": 2000})  # the same config on twice the data: twice the steps
    assert (bigger.steps_per_loop, bigger.train_steps) == (60, 180)


def test_train_splits_and_per_kind_counts_are_summed(tmp_path):
    counts = {"train": {"positive": 500, "hard": 500}, "validation": {"positive": 600}}
    config = _config(tmp_path, counts, "EpochTask.train_splits = ('train', 'validation')", "EpochTask.batch_size = 16")
    assert config.steps_per_loop == 100  # 1600 / 16


def test_a_tiny_split_still_gets_one_execution_and_a_missing_count_is_named(tmp_path):
    assert _config(tmp_path, {"train": 3}).steps_per_loop == 5
    with pytest.raises(prepared.DataError, match=r"metadata.json has no count of \['train'\]"):
        _config(tmp_path, {"test": 10})
