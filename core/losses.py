"""Losses that more than one project uses, and the wrapper that makes a loss function serializable.

  SparseCategoricalCrossentropyWithSmoothing  integer labels with label smoothing (a `Loss` subclass)
  FunctionLoss      a registered per-example function with bound arguments, as a Loss that survives `.keras`
  MultiOutputLoss   per-output losses and weights for a model whose outputs are a dict

All are registered for serialization, so a model compiled with them saves to `.keras` and loads back.
Their `call` returns one loss per example; `keras.losses.Loss.__call__` reduces it, and the custom
training loop reduces it itself with `tf.nn.compute_average_loss` (see core/task.py).
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "core"


@keras.saving.register_keras_serializable(package=PACKAGE)
class SparseCategoricalCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy on integer labels with label smoothing (Szegedy et al., 2016).

    Keras's own SparseCategoricalCrossentropy has no label smoothing; this one spreads
    `label_smoothing` of the target mass evenly over all classes.
    """

    def __init__(
        self,
        label_smoothing: float = 0.0,
        from_logits: bool = True,
        reduction: str = "sum_over_batch_size",
        name: str = "sparse_categorical_crossentropy_with_smoothing",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}.")
        self.label_smoothing = label_smoothing
        self.from_logits = from_logits

    def call(self, y_true, y_pred):
        num_classes = ops.shape(y_pred)[-1]
        y_true = ops.reshape(ops.cast(y_true, "int32"), ops.shape(y_pred)[:-1])
        targets = ops.one_hot(y_true, num_classes, dtype=y_pred.dtype)
        if self.label_smoothing:
            targets = targets * (1.0 - self.label_smoothing) + self.label_smoothing / ops.cast(
                num_classes, y_pred.dtype
            )
        return keras.losses.categorical_crossentropy(targets, y_pred, from_logits=self.from_logits)

    def get_config(self):
        return {
            **super().get_config(),
            "label_smoothing": self.label_smoothing,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class FunctionLoss(keras.losses.Loss):
    """A Loss made from a registered per-example function plus keyword arguments bound to it.

    Keras keeps its own wrapper private, so this is the public-API equivalent: the function is
    saved by its registered name and the bound arguments in the config, so the loss survives a
    `.keras` round trip where a plain closure would not.
    """

    def __init__(self, fn, reduction: str = "sum_over_batch_size", name: str | None = None, dtype=None, **fn_kwargs):
        super().__init__(name=name or fn.__name__, reduction=reduction, dtype=dtype)
        self.fn = fn
        self.fn_kwargs = fn_kwargs

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self.fn_kwargs)

    def get_config(self):
        return {**super().get_config(), "fn": keras.saving.serialize_keras_object(self.fn), **self.fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MultiOutputLoss(keras.losses.Loss):
    """Per-output losses and their weights, for a model whose outputs (and labels) are dicts by output name.

    The total is `sum(loss_weights[k] * losses[k](labels[k], outputs[k]))`; outputs without a loss
    (a prediction nobody trains directly) are left out. A Task returning it from `build_loss` returns
    `compile_kwargs()` from `Task.compile_kwargs`, so `fit` trains with Keras's own multi-output path
    (which also logs `<output>_loss`), while the custom loop calls `call`, the same weighted sum per
    example: both loops minimise the same number.
    """

    def __init__(
        self,
        losses: dict,
        loss_weights: dict | None = None,
        reduction: str = "sum_over_batch_size",
        name: str = "multi_output_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if not isinstance(losses, dict) or not losses:
            raise ValueError(f"losses must be a non-empty dict of output name -> loss, got {losses!r}.")
        self.losses = {k: _as_loss(v) for k, v in losses.items()}
        weights = dict(loss_weights or {})
        unknown = sorted(set(weights) - set(self.losses))
        if unknown:
            raise ValueError(f"loss_weights names outputs {unknown} that have no loss; outputs: {sorted(self.losses)}.")
        self.loss_weights = {k: float(weights.get(k, 1.0)) for k in self.losses}

    def compile_kwargs(self) -> dict:
        """`model.compile`'s arguments for these losses: one per output, with its weight."""
        return {"loss": dict(self.losses), "loss_weights": dict(self.loss_weights)}

    def call(self, y_true, y_pred):
        total = None
        for key, loss in self.losses.items():
            if key not in y_true or key not in y_pred:
                raise KeyError(f"{self.name}: output {key!r} needs a label and a prediction; labels have "
                               f"{sorted(y_true)}, predictions {sorted(y_pred)}.")
            term = self.loss_weights[key] * ops.cast(loss.call(y_true[key], y_pred[key]), "float32")
            total = term if total is None else total + term
        return total

    def get_config(self):
        return {
            **super().get_config(),
            "losses": {k: keras.losses.serialize(v) for k, v in self.losses.items()},
            "loss_weights": dict(self.loss_weights),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["losses"] = {k: keras.losses.deserialize(v) for k, v in config["losses"].items()}
        return cls(**config)


def _as_loss(identifier) -> keras.losses.Loss:
    """A Loss object from a Loss, a loss function or a name such as "mse"."""
    loss = keras.losses.get(identifier)
    return loss if isinstance(loss, keras.losses.Loss) else FunctionLoss(loss)
