"""TextClassificationTask's schedule and the checks `evaluate --ensemble_with` makes of its members."""

import contextlib
import json
import os

import gin
import pytest
import tensorflow as tf

from core import config, trainer
from core.config import ConfigError

from .. import task as task_lib
from . import helpers


def _task(tmp_path, **kwargs):
    (tmp_path / "metadata.json").write_text(json.dumps({"class_names": ["a", "b"]}))
    encoder = tmp_path / "text_encoder.json"
    encoder.write_text(json.dumps({"vocabulary": ["x", "y"], "class_names": ["a", "b"]}))
    return task_lib.TextClassificationTask(data_dir=str(tmp_path), pretrained="none", encoder_file=str(encoder),
                                           **kwargs)


def test_learning_rate_is_constant_or_cosine_decayed_to_zero(tmp_path):
    assert float(_task(tmp_path).build_optimizer().learning_rate) == pytest.approx(2e-3)
    optimizer = _task(tmp_path, learning_rate=1e-3, decay_steps=100).build_optimizer()
    rates = []
    for step in (0, 50, 100):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    assert rates == pytest.approx([1e-3, 5e-4, 0.0], abs=1e-9)


def _member(root, name, word2vec_dir, units=64, continued=False, extra=""):
    folder = root / name
    folder.mkdir()
    binding = (f"TextClassificationTask.word2vec_dir = \\\n    '{word2vec_dir}'\n" if continued
               else f"TextClassificationTask.word2vec_dir = '{word2vec_dir}'\n")
    (folder / "operative_config.gin").write_text(
        f"TextClassificationTask.max_length = 512\n{binding}lstm_classifier.lstm_units = ({units},)\n{extra}")
    (folder / task_lib.ENCODER_FILE).write_text('{"vocabulary": ["x"], "class_names": ["a", "b"]}')
    return str(folder)


def test_ensemble_members_may_differ_in_their_word2vec_vectors_only(tmp_path):
    first = _member(tmp_path, "seed1", "runs/w2v/seed_1")
    # seed3 was trained after a parameter was added to the code: it binds it (at its default), seed1 does not.
    same = [_member(tmp_path, "seed2", "runs/w2v/seed_2"),
            _member(tmp_path, "seed3", "runs/some/much/longer/folder/of/word2vec/seed_3", continued=True,
                    extra="TextClassificationTask.decay_steps = 0\n")]
    task_lib.check_ensemble_members(first, same)
    wider = _member(tmp_path, "wider", "runs/w2v/seed_1", units=128)
    with pytest.raises(ConfigError, match="operative_config.gin differs .* in lstm_classifier.lstm_units"):
        task_lib.check_ensemble_members(first, [*same, wider])
    (tmp_path / "seed3" / task_lib.ENCODER_FILE).write_text('{"vocabulary": ["z"], "class_names": ["a", "b"]}')
    with pytest.raises(ConfigError, match="text_encoder.json differs"):
        task_lib.check_ensemble_members(first, same)
    with pytest.raises(ConfigError, match=r"--ensemble_with=.*no operative_config.gin"):
        task_lib.check_ensemble_members(first, [str(tmp_path)])


@contextlib.contextmanager
def _config(name, *bindings):
    """The project's config `name` parsed for the block, and cleared after (gin bindings are process-wide)."""
    config.parse_gin([os.path.join(helpers.CONFIGS, name)], list(bindings))
    try:
        yield
    finally:
        gin.clear_config()


def test_averaged_config_is_word_dropout_tail_with_the_mean_of_the_last_three_checkpoints(tmp_path):
    bbc = tmp_path / "bbc"  # what prepare counts for BBC News: the loops are epochs of its 1,558 training articles
    bbc.mkdir()
    (bbc / "metadata.json").write_text(json.dumps({"counts": {"train": 1558, "validation": 389, "test": 278}}))
    with _config("averaged.gin", f"TextClassificationTask.data_dir = '{bbc}'"):
        train_config = trainer.TrainConfig()
        assert (train_config.average_checkpoints, train_config.max_checkpoints) == (3, 3)
        assert train_config.train_steps == 360 and train_config.steps_per_loop == 24  # epochs 13-15 of 15
        task = _task(tmp_path)
        assert task.freeze_embedding_steps == 120  # frozen for the first 5 epochs
        assert (task.encoder.max_length, task.encoder.tail_length) == (512, 128)
        assert task.build_model().get_layer("word_dropout").rate == 0.4


def test_word_dropout_tail_config_reads_the_tail_and_drops_words(tmp_path):
    with _config("word_dropout_tail.gin"):
        task = _task(tmp_path)  # the bindings fill in what _task leaves to gin
        assert (task.encoder.max_length, task.encoder.tail_length) == (512, 128)
        long_text = " ".join(["x"] * 384 + ["z"] * 200 + ["y"] * 128)  # z (unknown, id 1) only in the middle
        ids = task.encoder(tf.constant([long_text])).numpy()[0]
        assert list(ids[:384]) == [2] * 384 and list(ids[384:]) == [3] * 128
        model = task.build_model()
        assert model.get_layer("word_dropout").rate == 0.4
