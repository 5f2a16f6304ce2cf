"""Small SavedModels shaped like the ones in TF Serving's REST API documentation, written with tf.Module.

- half_plus_three: y = 0.5 * x + 3 on float scalars (the documented curl example).
- tag_signal_sensor: three named inputs of different ranks (the documented row/columnar example).
- classify_text: a text "classifier" (string [batch] -> probabilities, class_ids, class_names, label_names),
  with the same output contract as the projects' text exports; its score is a word count, so tests
  can predict the answer.
- bytes_echo: string in, `image_bytes` out, to check b64 on the way in and out.
- match_pairs: a sentence-pair "matcher" (text_a, text_b -> probability, score), the contract of
  bert_similarity's export; its score is the share of text_a's words that text_b has.
- bike_rentals: a tabular regression (temp float32, hr int64, mnth string columns -> prediction, casual,
  registered), the contract of wide_deep's export; its outputs are simple sums, so tests can predict them.
"""

from __future__ import annotations

import os

import tensorflow as tf


def _save(module: tf.Module, base: str, version: int, signatures: dict) -> str:
    path = os.path.join(base, str(version))
    tf.saved_model.save(module, path, signatures=signatures)
    return path


def half_plus_three(base: str, version: int = 123, offset: float = 3.0) -> str:
    """The documented toy model; `offset` lets two versions give different answers."""
    module = tf.Module()
    module.offset = tf.Variable(offset)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
    def predict(x):
        return {"y": 0.5 * x + module.offset}

    return _save(module, base, version, {"serving_default": predict})


def tag_signal_sensor(base: str, version: int = 1) -> str:
    """Inputs tag (string), signal [5] (int32), sensor [2, 2] (float); echoes them back summed."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="tag"),
                                  tf.TensorSpec([None, 5], tf.int32, name="signal"),
                                  tf.TensorSpec([None, 2, 2], tf.float32, name="sensor")])
    def predict(tag, signal, sensor):
        return {"tag_upper": tf.strings.upper(tag), "signal_sum": tf.reduce_sum(signal, axis=1),
                "sensor_sum": tf.reduce_sum(sensor, axis=[1, 2])}

    return _save(module, base, version, {"serving_default": predict})


def classify_text(base: str, version: int = 1, labels=("short", "long")) -> str:
    """'long' when a text has more than three words; the same outputs as word2vec_lstm's export."""
    module = tf.Module()
    names = tf.constant(list(labels))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def predict(text):
        words = tf.cast(tf.strings.split(text).row_lengths(), tf.float32)
        p_long = tf.sigmoid(4.0 * (words - 3.5))
        probabilities = tf.stack([1.0 - p_long, p_long], axis=1)
        class_ids = tf.argmax(probabilities, axis=1)
        return {"probabilities": probabilities, "class_ids": class_ids, "class_names": tf.gather(names, class_ids),
                "label_names": tf.tile(names[tf.newaxis], [tf.shape(text)[0], 1])}

    return _save(module, base, version, {"serving_default": predict})


def bytes_echo(base: str, version: int = 1) -> str:
    """`data` string in; `image_bytes` (the input twice, returned as b64) and `length` out."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="data")])
    def predict(data):
        return {"image_bytes": tf.strings.join([data, data]), "length": tf.strings.length(data)}

    return _save(module, base, version, {"serving_default": predict})


def match_pairs(base: str, version: int = 1) -> str:
    """probability = score = the fraction of text_a's words that also occur in text_b."""
    module = tf.Module()

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text_a"),
                                  tf.TensorSpec([None], tf.string, name="text_b")])
    def predict(text_a, text_b):
        words_a, words_b = tf.strings.split(text_a), tf.strings.split(text_b)
        shared = tf.map_fn(lambda ab: tf.reduce_mean(tf.cast(tf.reduce_any(
            tf.equal(ab[0][:, None], ab[1][None, :]), axis=1), tf.float32)),
            (words_a, words_b), fn_output_signature=tf.float32)
        return {"probability": shared, "score": shared}

    return _save(module, base, version, {"serving_default": predict})


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def bike_rentals(base: str, version: int = 1, single_output: bool = False) -> str:
    """casual = 10 * temp + hr, registered = 100 * month (Jan..Dec or "1".."12"; 0 for anything else),
    prediction = casual + registered; `single_output` returns prediction alone. A second signature,
    `no_month`, takes temp and hr only and returns prediction = casual."""
    module = tf.Module()
    keys = list(MONTHS) + [str(m) for m in range(1, 13)]
    module.months = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, [float(i % 12 + 1) for i in range(24)]), default_value=0.0)
    columns = [tf.TensorSpec([None], tf.float32, name="temp"), tf.TensorSpec([None], tf.int64, name="hr")]

    @tf.function(input_signature=columns + [tf.TensorSpec([None], tf.string, name="mnth")])
    def predict(temp, hr, mnth):
        casual = 10.0 * temp + tf.cast(hr, tf.float32)
        registered = 100.0 * module.months.lookup(mnth)
        if single_output:
            return {"prediction": casual + registered}
        return {"prediction": casual + registered, "casual": casual, "registered": registered}

    @tf.function(input_signature=columns)
    def no_month(temp, hr):
        return {"prediction": 10.0 * temp + tf.cast(hr, tf.float32)}

    return _save(module, base, version, {"serving_default": predict, "no_month": no_month})
