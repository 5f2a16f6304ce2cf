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
