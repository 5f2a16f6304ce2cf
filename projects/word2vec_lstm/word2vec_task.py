"""word2vec_lstm's first Task: skip-gram word2vec with negative sampling over a corpus of texts.

Its vectors initialise the classifier's embedding (task.py's `TextClassificationTask`); `train_word2vec`
trains it in core's custom loop.
"""

from __future__ import annotations

import gin
import keras
import tensorflow as tf

from core import distribute
from core import task as task_lib
from core.config import ConfigError
from core.data import prepared

from . import data
from . import text as text_lib
from . import word2vec as w2v


def corpus_texts(pattern: str) -> tf.data.Dataset:
    """Strings from prepared TFRecord shards (`*.tfrecord`) or from one-text-per-line files (anything else)."""
    if pattern.endswith(".tfrecord"):
        files = tf.io.gfile.glob(pattern)
        if not files:
            raise ConfigError(f"corpus {pattern!r}: no files match; run projects.word2vec_lstm.prepare first.")
        spec = {"text": data.FEATURE_SPEC["text"]}
        return tf.data.TFRecordDataset(sorted(files)).map(lambda r: tf.io.parse_single_example(r, spec)["text"])
    return w2v.line_texts(pattern)


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
        variables = distribute.trainable_variables(model)  # the shards of a sharded table
        parameter_server = distribute.is_parameter_server(tf.distribute.get_strategy())

        def apply(gradients):
            if not parameter_server:
                optimizer.apply_gradients(zip(gradients, variables))
                return
            # Keras' optimizer merges across replicas at every apply, which ParameterServerStrategy refuses
            # inside this loop; plain SGD is one scatter per table (what the optimizer does), applied here.
            learning_rate = tf.cast(optimizer.learning_rate, tf.float32)
            for gradient, variable in zip(gradients, variables):
                if gradient is not None:
                    variable.scatter_sub(tf.IndexedSlices(learning_rate * gradient.values, gradient.indices))
            optimizer.iterations.assign_add(1)

        def updates(chunk):
            totals = tf.zeros([3])
            for j in tf.range(tf.shape(chunk["reach"])[0] // n):
                with tf.GradientTape() as tape:
                    parts = self._loss(model, chunk, j * n, n, chunk["negatives"][j])
                apply(tape.gradient(parts.loss, variables))
                totals += tf.stack(parts)
            return totals

        # XLA cannot compile updates of variables that live on parameter servers.
        loss, pairs, correct = tf.unstack(tf.function(updates, jit_compile=self.xla and not parameter_server)(chunk))
        self._update_pair_accuracy(metrics, pairs, correct)
        return loss / tf.maximum(pairs, 1.0)

    def validation_step(self, inputs, model, loss_fn, metrics) -> tf.Tensor:
        """The loss per pair of a whole chunk, against its first update's negatives; moves nothing."""
        n = tf.shape(inputs["reach"])[0]
        parts = self._loss(model, self._padded(inputs), 0, n, inputs["negatives"][0])
        self._update_pair_accuracy(metrics, parts.pairs, parts.correct)
        # One value per pair, so the evaluator's mean over values is the loss per pair.
        return tf.fill(tf.cast(parts.pairs[None], tf.int32), parts.loss / tf.maximum(parts.pairs, 1.0))
