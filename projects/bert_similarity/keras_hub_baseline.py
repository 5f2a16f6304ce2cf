"""The keras-hub fine-tune that `bench` and `train_keras_hub` race against: what a Keras user would write.

`keras_hub.models.BertTextClassifier.from_preset(folder)` on the same pretrained folder, its preprocessor
packing every pair and padding it to 128 pieces, `model.fit` on in-memory arrays in batches of 32, AdamW
3e-5, float32. keras-hub is a benchmark and test dependency (requirements-dev.txt), imported only here.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .task import read_pairs

BATCH = 32


def load_pairs(data_dir: str, split: str) -> dict[str, np.ndarray]:
    """text_a, text_b, label and kind of every pair of a prepared split, in file order."""
    columns = {"text_a": [], "text_b": [], "label": [], "kind": []}
    for batch in read_pairs(data_dir, split).batch(4096).as_numpy_iterator():
        for key, values in columns.items():
            values.extend(v.decode("utf-8") if isinstance(v, bytes) else v for v in batch[key])
    return {key: np.array(values) for key, values in columns.items()}


def classifier(hf_dir: str, sequence_length: int = 128):
    """(the model compiled as a keras-hub user would, the preprocessor packing pairs to `sequence_length`)."""
    import keras_hub

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(hf_dir,
                                                                               sequence_length=sequence_length)
    model = keras_hub.models.BertTextClassifier.from_preset(hf_dir, num_classes=2, preprocessor=None)
    model.compile(optimizer=keras.optimizers.AdamW(3e-5), loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    return model, preprocessor


def arrays(preprocessor, a, b) -> dict[str, np.ndarray]:
    """All pairs preprocessed into in-memory arrays, as `model.fit(x, y)` takes them."""
    parts = []
    for start in range(0, len(a), 1024):
        # x=: a bare tuple would be read as (x, y).
        x = preprocessor(x=(tf.constant(list(a[start:start + 1024])), tf.constant(list(b[start:start + 1024]))))
        parts.append({k: np.asarray(v) for k, v in x.items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def match_probabilities(model: keras.Model, x: dict[str, np.ndarray], batch_size: int = 64) -> np.ndarray:
    """P(match) of each preprocessed pair: the softmax of the classifier's two logits, class 1."""
    return keras.ops.convert_to_numpy(keras.ops.softmax(model.predict(x, batch_size=batch_size, verbose=0)))[:, 1]
