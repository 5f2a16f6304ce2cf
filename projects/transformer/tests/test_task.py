"""The input pipeline (length buckets, token budget, teacher-forcing shift) and the token-level loss."""

import numpy as np
import pytest
import tensorflow as tf

from core.config import ConfigError

from .. import data
from .. import model as model_lib
from .. import task as task_lib
from .. import tokenizer as tokenizer_lib
from . import helpers

LONG_PAIR = ("a very long message " * 8, "eine sehr lange Nachricht " * 8)


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("prepared"))
    data.prepare([*helpers.pairs(), LONG_PAIR], data_dir, source_description="test pairs", num_shards=1,
                 validation_percent=20, test_percent=20)
    model_fn = lambda **kw: model_lib.transformer(**kw, embed_dim=16, num_heads=2, intermediate_dim=32,  # noqa: E731
                                                  num_encoder_layers=1, num_decoder_layers=1)
    return task_lib.TranslationTask(data_dir=data_dir, vocab_size=400, max_length=24, bucket_width=8,
                                    tokens_per_batch=96, model_fn=model_fn, shuffle_buffer=100, seed=1)


def test_bucket_lengths_end_at_max_length():
    assert data.bucket_lengths(64, 8) == [8, 16, 24, 32, 40, 48, 56, 64]
    assert data.bucket_lengths(20, 8) == [8, 16, 20]
    with pytest.raises(ConfigError, match="bucket_width=0"):
        data.bucket_lengths(64, 0)


def test_training_batches_are_bucketed_shifted_and_within_the_token_budget(task):
    for features, target_out in task.build_inputs("train").take(30):
        source, target_in = features["source"].numpy(), features["target_in"].numpy()
        target_out = target_out.numpy()
        batch, length = source.shape
        assert length in (8, 16, 24) and target_in.shape == target_out.shape == (batch, length)
        assert batch == 96 // length  # fixed per bucket: one shape per bucket for XLA
        assert np.all(target_in[:, 0] == tokenizer_lib.BOS_ID)
        np.testing.assert_array_equal(target_in[:, 1:], np.where(target_out[:, :-1] == tokenizer_lib.EOS_ID, 0,
                                                                 target_out[:, :-1]))
        for row in (source, target_out):  # every sequence ends with one end id, then padding
            real = (row != 0).sum(axis=1)
            assert np.all(row[np.arange(batch), real - 1] == tokenizer_lib.EOS_ID)
        assert max((source != 0).sum(axis=1).max(), (target_in != 0).sum(axis=1).max()) > length - 8


@pytest.mark.parametrize("split", data.SPLITS)
def test_long_pairs_are_skipped_in_training_and_truncated_when_held_out(task, split):
    raw = [(p["source"], p["target"]) for p in task_lib.read_pairs(task.data_dir, split)]
    raw_lengths = [int(tf.reduce_max(task.tokenizer.tokenize(tf.stack([s, t])).row_lengths())) for s, t in raw]
    lengths = [max(int(tf.size(s)), int(tf.size(t)))
               for s, t in data.tokenized_pairs(task.data_dir, split, task.tokenizer, task.max_length)]
    assert lengths and max(lengths) <= 23  # max_length 24 less the end id
    if split == "train":
        assert len(lengths) == sum(n <= 23 for n in raw_lengths)
    else:
        assert lengths == [min(n, 23) for n in raw_lengths]
    if data.split_of(LONG_PAIR[0], 20, 20) == split:
        assert max(raw_lengths) > 23


def test_custom_loop_loss_is_fits_mean_over_real_tokens(task):
    model, loss_fn = task.build_model(), task.build_loss()
    features, labels = next(iter(task.build_inputs("validation")))
    predictions = model(features, training=False)
    fit_loss = float(loss_fn(labels, predictions))
    step_loss = float(task.step_loss(loss_fn, labels, predictions, model))
    np.testing.assert_allclose(step_loss, fit_loss, rtol=1e-5)
    per_token = task.evaluation_losses(loss_fn, labels, predictions)
    assert per_token.shape == (int(np.sum(labels.numpy() != 0)),)
    np.testing.assert_allclose(float(tf.reduce_mean(per_token)), fit_loss, rtol=1e-5)


def test_a_missing_split_names_the_folder_and_the_prepare_command(tmp_path):
    with pytest.raises(ConfigError, match=f"no train-.*tfrecord files in {tmp_path}.*projects.transformer.prepare"):
        task_lib.TranslationTask(data_dir=str(tmp_path))
