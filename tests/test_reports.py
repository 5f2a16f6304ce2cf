import json

import numpy as np

from core import reports


def test_confusion_matrix_text_has_a_row_per_true_class():
    text = reports.format_confusion_matrix(np.array([[5, 1], [0, 7]]), ["cat", "dog"])
    lines = text.splitlines()
    assert lines[1].split() == ["cat", "5", "1", "<-", "true", "0"]
    assert lines[2].split() == ["dog", "0", "7", "<-", "true", "1"]


def test_report_writes_json_and_a_png_picture(tmp_path):
    matrix = np.array([[3, 1, 0], [0, 2, 0], [1, 0, 4]])
    paths = reports.write_classification_report({"accuracy": 0.8}, matrix, ["a", "b", "c"], str(tmp_path), "test")
    saved = json.load(open(paths["json"]))
    assert saved["confusion_matrix"] == matrix.tolist() and saved["accuracy"] == 0.8 and saved["split"] == "test"
    with open(paths["picture"], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


class _TwoFeatureTask:
    """Just what the ensemble needs of a Task: a model builder, a split's batches, the class names."""

    class_names = ["a", "b", "c"]

    def __init__(self):
        rng = np.random.default_rng(0)
        self.x = rng.normal(size=(40, 2)).astype("float32")
        self.y = rng.integers(0, 3, size=40)

    def build_model(self):
        import keras

        return keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])

    def build_inputs(self, split):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices((self.x, self.y)).batch(16)


def test_ensemble_scores_the_mean_of_the_models_probabilities(tmp_path):
    import tensorflow as tf
    from sklearn.metrics import f1_score

    from core import checkpoints

    task, dirs, probabilities = _TwoFeatureTask(), [], []
    for seed in range(3):
        model = task.build_model()
        model.set_weights([np.random.default_rng(seed).normal(size=w.shape) for w in model.get_weights()])
        model_dir = str(tmp_path / f"seed{seed}")
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model), checkpoints.checkpoint_dir(model_dir), 3).save(7)
        probabilities.append(tf.nn.softmax(model(task.x)).numpy())
        dirs.append(model_dir)
    results = reports.evaluate_classifier_ensemble(task, dirs, "test")
    predicted = np.mean(probabilities, axis=0).argmax(axis=1)
    assert results["accuracy"] == np.mean(predicted == task.y)
    np.testing.assert_allclose(results["macro_f1"], f1_score(task.y, predicted, average="macro"), rtol=1e-6)
    assert results["ensemble"]["member_accuracy"] == [np.mean(p.argmax(1) == task.y) for p in probabilities]
    saved = json.load(open(tmp_path / "seed0" / "eval_test_ensemble.json"))
    assert saved["accuracy"] == results["accuracy"] and np.sum(saved["confusion_matrix"]) == 40
