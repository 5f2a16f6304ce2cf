"""TF Hub SavedModels inside Keras 3 models: load one as a fine-tunable layer, write one that others load.

`hub.KerasLayer` is Keras 2 only (tensorflow_hub needs tf_keras) and cannot sit in a Keras 3 model.
`HubLayer` does its job on Keras 3's `TFSMLayer`: it resolves a handle with tensorflow_hub (a local
folder, a downloaded TF Hub / Kaggle Models folder, or a URL where there is network), calls the
SavedModel's `__call__` with `training` passed through (dropout on while fine-tuning), and exposes its
variables as Keras weights so the optimizer trains them.

`save_reusable` writes the other side: a Keras model as a TF Hub "reusable SavedModel" (`__call__`
traced with training=True and False, plus `variables`, `trainable_variables`, `regularization_losses`),
which `hub.KerasLayer`, `hub.load` and `HubLayer` all load; `serving_default` is the inference call.
"""

from __future__ import annotations

import os
import shutil

import keras
import tensorflow as tf

from core import files
from core.config import UserError

PACKAGE = "bert_similarity"


def resolve_handle(handle: str) -> str:
    """The local folder of a TF Hub handle: a folder as it is, a URL downloaded to TF Hub's cache."""
    if os.path.isdir(handle):
        if not tf.saved_model.contains_saved_model(handle):
            raise UserError(f"{handle}: no saved_model.pb; expected a TF Hub SavedModel folder.")
        return handle
    if "://" not in handle:
        raise UserError(f"TF Hub handle {handle!r}: no such folder, and not a URL (https://tfhub.dev/..., "
                        "https://www.kaggle.com/models/...).")
    try:
        import tensorflow_hub as hub  # imported here: it loads tf_keras, which only URL handles need
    except ImportError as e:
        raise UserError(f"TF Hub handle {handle!r} is a URL, and resolving one needs tensorflow-hub, an extra: "
                        "pip install -r requirements-extras.txt (or give a local folder).") from e
    return hub.resolve(handle)


def load(handle: str):
    """The restored SavedModel object of a handle (a preprocessor's `tokenize`, `bert_pack_inputs`, ...).

    TF Hub's text preprocessors are graphs of tensorflow_text ops, which must be registered before loading.
    """
    import tensorflow_text  # noqa: F401  (registers the ops)

    return tf.saved_model.load(resolve_handle(handle))


@keras.saving.register_keras_serializable(package=PACKAGE)
class HubLayer(keras.layers.TFSMLayer):
    """A TF Hub SavedModel as a Keras 3 layer, fine-tunable when `trainable` (the default).

    `output_key` picks one output of a dict-returning model ("pooled_output"); None returns the dict.
    """

    def __init__(self, handle: str, output_key: str | None = None, trainable: bool = True, **kwargs):
        self.handle = handle
        self.output_key = output_key
        super().__init__(resolve_handle(handle), call_endpoint="__call__", trainable=trainable, **kwargs)

    def _add_existing_weight(self, weight):
        """Tracks a SavedModel variable as a Keras weight (the same tf.Variable, not a copy).

        TF variable names end in ":0" and contain "/"; a ":" in a Keras weight's name breaks the
        optimizer's slot variables, so both are replaced.
        """
        variable = keras.Variable(initializer=weight, trainable=weight.trainable and self.trainable,
                                  dtype=weight.dtype, shape=weight.shape,
                                  name=weight.name.split(":")[0].replace("/", "_"))
        self._track_variable(variable)

    def call(self, inputs, training=False):
        outputs = self.call_endpoint_fn(inputs, training=bool(training))
        return outputs[self.output_key] if self.output_key else outputs

    def get_config(self):
        config = super().get_config()
        for key in ("filepath", "call_endpoint", "call_training_endpoint"):
            config.pop(key, None)
        return {**config, "handle": self.handle, "output_key": self.output_key}

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        return cls(**config)


def save_reusable(model: keras.Model, path: str, input_signature: dict[str, tf.TensorSpec]) -> str:
    """Writes `model` as a reusable SavedModel to `path`, atomically (a temporary folder renamed into place).

    `input_signature` maps the names of `model`'s inputs (one dict) to `tf.TensorSpec`s.
    """
    if os.path.exists(path):
        raise FileExistsError(f"{path} already exists; remove it or choose another folder.")
    root = tf.__internal__.tracking.AutoTrackable()  # what tf.saved_model and Keras's ExportArchive use
    # The tf.Variables themselves: tracking the Keras model too would store every weight twice.
    root.variables = [v.value for v in model.variables]
    root.trainable_variables = [v.value for v in model.trainable_variables]
    root.regularization_losses = []

    @tf.function
    def call(inputs, training=False):
        return model(inputs, training=training)

    for training in (False, True):
        call.get_concrete_function(input_signature, training=training)
    root.__call__ = call
    names = sorted(input_signature)

    @tf.function(input_signature=[tf.TensorSpec(input_signature[n].shape, input_signature[n].dtype, name=n)
                                  for n in names])
    def serve(*tensors):
        """TF Serving's signature: named tensors in, the tensor outputs out (lists, like encoder_outputs, left out)."""
        outputs = call(dict(zip(names, tensors)), training=False)
        return {key: value for key, value in outputs.items() if isinstance(value, tf.Tensor)}

    tmp = files.temporary_path(path)
    try:
        tf.saved_model.save(root, tmp, signatures={"serving_default": serve})
        os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
