"""Exports the newest checkpoint as a versioned SavedModel that takes raw column values by name.

    python -m projects.wide_deep.export --model_dir=runs/wide_deep/default

Writes `<model_dir>/export/<version>/` with one signature:
  serving_default  one input per feature column, named after it, shape [batch]: float32 (numeric columns),
                   int64 (integer categories such as hr) or string (string categories such as mnth)
                   -> prediction float32 [batch] (the target in its own units), plus one output per extra
                      target for the multi-output model (casual, registered)
plus model.keras, model.weights.h5, model_summary.txt and model.png in the model dir. The lookups,
normalization and crosses are inside the graph, so a client sends the row as it appears in the CSV.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import flags

from core import config as core_config
from core import export, runtime

from . import data
from .task import RegressionTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

export.define_flags()
FLAGS = flags.FLAGS

def serving_signatures(task: RegressionTask, model: keras.Model) -> dict:
    """The exported endpoint: a [batch] tensor per column in, the prediction(s) [batch] out."""
    kinds = task.metadata["features"]
    names = list(kinds)
    specs = [tf.TensorSpec([None], data.DTYPES[kinds[c]], name=c) for c in names]

    def serve(*columns):
        features = {name: column[:, tf.newaxis] for name, column in zip(names, columns)}
        outputs = model(task.model_inputs(features), training=False)
        result = {"prediction": task.prediction_of_target(outputs)}
        if isinstance(outputs, dict):
            result.update({t: tf.reshape(tf.cast(outputs[t], tf.float32), [-1])
                           for t in task.metadata["extra_targets"] if t in outputs})
        return result

    return {"serving_default": (serve, specs)}


def main(argv: list[str]) -> None:
    """Restores the checkpoint and writes the SavedModel and the Keras model files."""
    options = export.setup()
    task = RegressionTask.from_model_dir(options.model_dir)
    model = task.build_model()
    export.export_checkpoint(model, options.model_dir, serving_signatures(task, model), **export.flag_values())


if __name__ == "__main__":
    runtime.run(main)
