"""The benchmark's baseline: a model server the way a tutorial writes one (for `make bench` only).

Flask's development server, threaded, one route that takes pixel lists as JSON, builds a numpy array,
calls the SavedModel's default signature and returns `.tolist()` of every output via jsonify.

    python -m serving.baseline --export_dir=runs/cnn_vision/default/export/2 --port=5000
"""

from __future__ import annotations

import flask
import numpy as np
import tensorflow as tf
from absl import app, flags

flags.DEFINE_string("export_dir", None, "A SavedModel version folder.", required=True)
flags.DEFINE_integer("port", 5000, "Port (0: a free one).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    """Loads the SavedModel and runs Flask's development server, as a tutorial would."""
    del argv
    model = tf.saved_model.load(FLAGS.export_dir)
    predict = model.signatures["serving_default"]
    (name, spec), = predict.structured_input_signature[1].items()
    server = flask.Flask(__name__)

    @server.post("/predict")
    def handle():
        images = np.array(flask.request.get_json()["instances"], dtype=spec.dtype.as_numpy_dtype)
        outputs = predict(**{name: tf.constant(images)})
        return flask.jsonify({k: v.numpy().astype(str if v.dtype == tf.string else v.numpy().dtype).tolist()
                              for k, v in outputs.items()})

    server.run(host="127.0.0.1", port=FLAGS.port, threaded=True)


if __name__ == "__main__":
    app.run(main)
