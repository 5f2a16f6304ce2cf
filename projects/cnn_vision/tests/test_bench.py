"""The race table of `projects.cnn_vision.bench`: medians, ratios, and runs that never got there."""

import keras
import numpy as np

from core import bench as core_bench
from projects.cnn_vision import bench


def _clock(probes):
    clock = core_bench.TimeToAccuracy(np.zeros((1, 2)), np.zeros(1), (0.9, 0.92), batch_size=8, probe_examples=8)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    model.stop_training = False
    clock.set_model(model)
    for seconds, accuracy in probes:
        clock.record(seconds, int(seconds) * 100, accuracy)
    return clock


def test_race_table_gives_medians_and_a_lower_bound_where_the_baseline_never_got_there(capsys):
    tutorial = [_clock([(50, 0.89), (100, 0.90), (300, 0.915)]),
                _clock([(60, 0.90), (310, 0.917)]),
                _clock([(80, 0.90), (290, 0.919)])]
    ours = [_clock([(20, 0.90), (60, 0.92)]), _clock([(30, 0.91), (70, 0.93)]), _clock([(25, 0.90), (200, 0.91)])]
    bench.print_race({"tutorial": tutorial, "ours": ours}, "tutorial", [0.9, 0.92])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:5]}
    assert rows["tutorial"] == ["80", "s", "not", "reached", "91.70%"]  # times to 90%: 100, 60, 80
    assert rows["ours"] == ["25", "s", "70", "s", "92.00%"]  # to 92%: 60, 70, never -> median 70
    speedup = lines[5].split()[-2:]
    assert speedup == ["3.20x", ">4.29x"]  # 80 / 25; the tutorial's whole runs (median 300 s) / 70 s
    assert sum(", seed " in line for line in lines) == 6


def test_tutorial_model_is_the_keras_io_simple_convnet():
    model = bench.tutorial_convnet((28, 28, 1), 10)
    assert model.count_params() == 34_826  # the recipe's model summary
    assert [type(layer).__name__ for layer in model.layers] == [
        "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dropout", "Dense"]
