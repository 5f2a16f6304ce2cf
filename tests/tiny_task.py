"""A Task small enough to train in a second: 3-class classification of 8 synthetic features.

Used by the trainer tests and by the multi-worker test binary (`python -m tests.tiny_train`).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from core import checkpoints, task
from core.losses import MultiOutputLoss
from core.metrics import MacroF1


def make_data(n: int = 512, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x[:, :3] @ np.array([1.0, 2.0, -1.0]) > 0).astype("int64") + (x[:, 3] > 1).astype("int64")
    return x, y


class TinyTask(task.Task):
    def __init__(self, batch_size: int = 32, dropout: float = 0.0, shuffle: bool = False,
                 optimizer: str = "sgd", learning_rate: float = 0.1):
        self.batch_size = batch_size
        self.dropout = dropout
        self.shuffle = shuffle
        self.optimizer = optimizer
        self.learning_rate = learning_rate

    def build_model(self) -> keras.Model:
        inputs = keras.Input((8,))
        x = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
        if self.dropout:
            x = keras.layers.Dropout(self.dropout)(x)
        outputs = keras.layers.Dense(3, dtype="float32", kernel_initializer=keras.initializers.GlorotUniform(2))(x)
        return keras.Model(inputs, outputs)

    def build_inputs(self, split, input_context=None):
        x, y = make_data(512 if split == "train" else 96, seed=0 if split == "train" else 1)
        batch = input_context.get_per_replica_batch_size(self.batch_size) if input_context else self.batch_size
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if input_context and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if split == "train":
            if self.shuffle:
                ds = ds.shuffle(512)
            ds = ds.repeat()
        return ds.batch(batch, drop_remainder=split == "train")

    def build_loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def build_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy("accuracy"), MacroF1(3)]

    def build_optimizer(self):
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(self.learning_rate)
        return keras.optimizers.Adam(self.learning_rate)


def final_weights(model_dir: str, tiny: TinyTask | None = None) -> list[np.ndarray]:
    """The weights of the newest checkpoint in model_dir."""
    model = (tiny or TinyTask()).build_model()
    checkpoints.restore_model(model, model_dir)
    return [w.numpy() for w in model.weights]


class TinyMultiOutputTask(TinyTask):
    """Two regression heads and their sum as dict outputs, with per-output losses and weights."""

    loss_weights = {"a": 0.25, "b": 0.5, "total": 1.0}

    def build_model(self) -> keras.Model:
        inputs = keras.Input((8,))
        x = keras.layers.Dense(16, activation="relu", kernel_initializer=keras.initializers.GlorotUniform(1))(inputs)
        a = keras.layers.Dense(1, name="a", kernel_initializer=keras.initializers.GlorotUniform(2))(x)
        b = keras.layers.Dense(1, name="b", kernel_initializer=keras.initializers.GlorotUniform(3))(x)
        return keras.Model(inputs, {"a": a, "b": b, "total": keras.layers.Add(name="total")([a, b])})

    def build_inputs(self, split, input_context=None):
        def targets(features, _):
            a, b = features[:, :1] * 2.0, features[:, 1:2] - features[:, 2:3]
            return features, {"a": a, "b": b, "total": a + b}

        return super().build_inputs(split, input_context).map(targets)

    def build_loss(self):
        return MultiOutputLoss({k: keras.losses.MeanSquaredError() for k in self.loss_weights}, self.loss_weights)

    def compile_kwargs(self, loss_fn):
        return loss_fn.compile_kwargs()

    def build_metrics(self):
        return {"total": [keras.metrics.RootMeanSquaredError("rmse"), keras.metrics.MeanAbsoluteError("mae")]}


class TinyEmbeddingTask(TinyTask):
    """3-class classification of 6 token ids out of 1,000 through an embedding table, for the parameter-server
    tests: the table is what a partitioner splits over the servers."""

    vocabulary = 1000

    def __init__(self, batch_size: int = 32, learning_rate: float = 0.02):
        # Adam: its slots sit beside each shard on the servers, which evaluate must be able to skip.
        super().__init__(batch_size=batch_size, optimizer="adam", learning_rate=learning_rate)

    def build_model(self) -> keras.Model:
        inputs = keras.Input((6,), dtype="int32")
        x = keras.layers.Embedding(self.vocabulary, 16, name="embedding",
                                   embeddings_initializer=keras.initializers.RandomUniform(-0.1, 0.1, seed=3))(inputs)
        x = keras.layers.GlobalAveragePooling1D()(x)
        outputs = keras.layers.Dense(3, dtype="float32", kernel_initializer=keras.initializers.GlorotUniform(2))(x)
        return keras.Model(inputs, outputs)

    def build_inputs(self, split, input_context=None):
        rng = np.random.default_rng(0 if split == "train" else 1)
        n = 768 if split == "train" else 96
        x = rng.integers(0, self.vocabulary, size=(n, 6)).astype("int32")
        y = (x[:, 0] % 3).astype("int64")  # the class is the first token's id mod 3: learnable from its row
        batch = input_context.get_per_replica_batch_size(self.batch_size) if input_context else self.batch_size
        ds = tf.data.Dataset.from_tensor_slices((x, y))
        if input_context and input_context.num_input_pipelines > 1:
            ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        if split == "train":
            ds = ds.repeat()
        return ds.batch(batch, drop_remainder=split == "train")
