"""The examples' demonstrations return what their scripts claim, and every example script runs cleanly."""

import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from core import testing
from examples import focal_loss, linear_regression, module_layer_model, tensors, tracing

EXAMPLES_DIR = pathlib.Path(__file__).resolve().parents[1]
REPO = EXAMPLES_DIR.parent
# Globbed, so a new example script is run by test_script_runs without touching this file.
SCRIPTS = sorted(p.stem for p in EXAMPLES_DIR.glob("*.py") if p.name != "__init__.py")


def test_tensor_attributes_and_conversion():
    result = tensors.tensor_attributes()
    assert result["shape"] == (2, 3)
    assert result["dtype"] == "float32"
    np.testing.assert_array_equal(result["numpy"], [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(result["variable_after_assign"], [11.0, 21.0])
    assert (result["python_int_dtype"], result["from_numpy_dtype"]) == ("int32", "int64")
    assert result["back_to_numpy_equal"]


def test_basic_ops_broadcast_and_reduce():
    result = tensors.basic_ops()
    np.testing.assert_array_equal(result["a + column"], [[101, 102], [203, 204]])
    np.testing.assert_array_equal(result["a @ a"], result["tf.matmul(a, a)"])
    np.testing.assert_array_equal(result["a @ a"], [[7, 10], [15, 22]])
    np.testing.assert_array_equal(result["reduce_sum axis=0"], [4, 6])
    np.testing.assert_array_equal(result["reduce_mean axis=1"], [1.5, 3.5])
    np.testing.assert_array_equal(result["cast to int32"], [[1, 3], [5, 6]])
    assert result["concat axis=1 shape"] == [2, 4]


def test_stack_adds_an_axis_and_unstack_round_trips():
    result = tensors.stack_and_unstack()
    assert result["stack axis=0"] == [4, 2, 3]
    assert result["stack axis=-1"] == [2, 3, 4]
    assert result["concat axis=0"] == [8, 3]
    assert result["unstack count"] == 4
    assert result["round trip equal"] is True


def test_initializers_fill_kernels_as_documented():
    result = tensors.initializers()
    stats = result["statistics"]
    assert stats["Zeros"] == {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0}
    assert stats["Ones"]["min"] == stats["Ones"]["max"] == 1.0
    assert stats["Constant(0.5)"]["mean"] == 0.5
    assert abs(stats["RandomNormal(0, 0.05)"]["std"] - 0.05) < 0.002
    assert -0.1 <= stats["RandomUniform(-0.1, 0.1)"]["min"] < stats["RandomUniform(-0.1, 0.1)"]["max"] <= 0.1
    truncated = stats["TruncatedNormal(0, 0.05)"]
    assert -0.1 <= truncated["min"] and truncated["max"] <= 0.1 and truncated["std"] < 0.05
    assert stats["Identity"]["mean"] == 1 / 200 and stats["Identity"]["max"] == 1.0
    # Glorot uniform: limit sqrt(6 / (fan_in + fan_out)); LeCun normal: std sqrt(1 / fan_in).
    assert abs(stats["GlorotUniform"]["max"] - (6 / 400) ** 0.5) < 0.001
    assert abs(stats["LecunNormal"]["std"] - (1 / 200) ** 0.5) < 0.005
    np.testing.assert_allclose(result["Dense(identity kernel, ones bias)([1, 2, 3])"], [2, 3, 4])


def test_image_crops_match_slicing():
    result = tensors.image_crops()
    assert result["crop equals slicing"] is True
    np.testing.assert_array_equal(result["crop_to_bounding_box"][0], [12, 13, 14, 15])
    assert result["pad_to_bounding_box shape"] == [8, 10, 1]
    assert result["pad keeps the image at the offset"] and result["pad border sum"] == 0.0
    assert result["central_crop shape"] == [4, 4, 1]
    assert result["random_crop shape"] == [3, 3, 1] and result["random_crop is a window"]
    assert result["stateless_random_crop repeats"]
    assert result["resize_with_crop_or_pad shape"] == [4, 10, 1]
    np.testing.assert_array_equal(result["resize_with_crop_or_pad"][0], [0, 10, 11, 12, 13, 14, 15, 16, 17, 0])
    assert result["batch crop shape"] == [2, 3, 4, 1] and result["batch crop equals slicing"]


def test_python_side_effects_run_per_trace_and_tf_print_per_call():
    result = tracing.eager_vs_graph()
    assert result["executing_eagerly outside"] is True
    assert result["executing_eagerly inside"] is False
    assert (result["calls"], result["python side effects (traces)"], result["tf.print runs"]) == (3, 1, 3)
    assert result["tensor type inside"] == "SymbolicTensor"
    assert result["graph result equals eager"]


def test_retracing_counts_are_as_observed_in_tf_2_21():
    assert tracing.retracing_counts() == {
        "python ints 1, 2, 2, 3": 3,
        "int32 scalar tensors 1, 2, 3": 1,
        "+ np.int32(4)": 1,
        "+ float32 scalar tensor": 2,
        "+ int32 tensors of shape [2], [3], [4]": 5,
        "reduce_retracing: shapes [1], [2], [3], [4]": 2,
        "reduce_retracing: shape [7] dispatches to": "(None,)",
        "reduce_retracing: traces after the lookup": 2,
    }


def test_input_signature_traces_once_and_rejects_other_tensor_dtypes():
    assert tracing.input_signature_counts() == {
        "traces after lengths 1, 3, 5, 8": 1,
        "int32 tensor raises": "TypeError",
        "python int list [1, 2] gives": 3.0,
        "np.int64 array [1, 2] gives": 3.0,
        "rank-2 tensor raises": "TypeError",
        "traces at the end": 1,
    }


def test_autograph_turns_tensor_control_flow_into_graph_ops():
    result = tracing.autograph_code()
    assert result["uses ag__.if_stmt"] and result["uses ag__.for_stmt"]
    assert result["control-flow ops"] == ["StatelessIf", "StatelessWhile"]
    assert result["f([1, 2])"] == [[2.0, 4.0], 3.0]
    assert result["f([1, -3])"] == [[-1.0, 3.0], -2.0]


def test_name_scope_prefixes_op_names():
    names = tracing.name_scope_op_names()
    assert names == ["encoder/mul/y", "encoder/mul", "encoder/add/y", "encoder/add", "encoder/Relu"]


@pytest.fixture(scope="module")
def trained_linear():
    model = linear_regression.Linear()
    x, y = linear_regression.make_data()
    return model, linear_regression.train(model, x, y)


def test_linear_regression_recovers_slope_and_intercept(trained_linear):
    model, losses = trained_linear
    assert abs(float(model.a) - linear_regression.TRUE_A) < 0.05
    assert abs(float(model.b) - linear_regression.TRUE_B) < 0.05
    assert losses[-1] < 0.02 < losses[0]  # 0.01 is the noise variance: nothing below it is learnable


def test_gradient_tape_watches_only_trainable_variables_and_watched_tensors():
    assert linear_regression.watched_gradients() == {
        "constant, not watched": None,
        "constant, tape.watch": 6.0,
        "trainable Variable": 6.0,
        "Variable(trainable=False)": None,
    }


def test_checkpoint_and_saved_model_reproduce_predictions(trained_linear, tmp_path):
    model, _ = trained_linear
    result = linear_regression.save_and_restore(model, str(tmp_path))
    assert result["checkpoint variables equal"]
    for key in ("checkpoint-restored", "saved_model called directly", "serving_default"):
        np.testing.assert_array_equal(result[key], result["trained"], err_msg=key)
    assert result["serving_default output keys"] == ["output_0"]
    assert {"saved_model.pb", "variables"} <= set(result["saved_model contents"])
    assert (tmp_path / "saved_model" / "variables" / "variables.index").exists()


def test_layer_lifecycle_builds_once_before_the_first_call():
    assert module_layer_model.lifecycle() == ["__init__", "build(1, 3)", "call(1, 3)", "call(4, 3)", "call(4, 3)"]


def test_class_relations_in_keras_3():
    result = module_layer_model.class_relations()
    assert result["keras version, backend"].split(", ")[1].startswith("tensorflow")
    assert result["issubclass(keras.Model, keras.layers.Layer)"] is True
    assert result["isinstance(Affine(2), tf.Module)"] is False
    assert result["isinstance(AffineModel(2), tf.Module)"] is False
    assert "AutoTrackable" in result["Layer bases"] and "AutoTrackable" in result["tf.Module bases"]
    assert result["Affine.trainable_weights"] == ["layer/kernel", "layer/bias"]
    assert result["checkpoint round trip"] == {"AffineModule": True, "Affine": True, "AffineModel": True}


def test_affine_module_and_layer_compute_the_same_map():
    module = module_layer_model.AffineModule(3, 2)
    layer = module_layer_model.Affine(2)
    x = tf.reshape(tf.range(6, dtype=tf.float32), [2, 3])
    layer(x)
    layer.kernel.assign(module.w)
    np.testing.assert_allclose(layer(x), module(x))


def test_fit_lowers_the_loss_and_keras_file_preserves_predictions():
    result = module_layer_model.fit_model(epochs=20)
    assert result["loss after fit"] < 0.01 < result["loss before fit"]
    assert 0.0 < result["max_abs_error after fit"] < 0.5
    assert result["TensorBoard log dirs"] == ["train", "validation"]
    assert result["last val_loss"] < 0.01
    assert result["load_model without custom_objects"] == "TypeError"
    assert result["reloaded type"] == "AffineModel"
    assert result["reloaded predictions match"] is True


def test_focal_loss_with_gamma_zero_is_keras_crossentropy_and_gamma_down_weights_easy_examples():
    result = focal_loss.compare_with_crossentropy()
    np.testing.assert_allclose(result["focal, gamma 0"], result["crossentropy"], rtol=1e-5)
    assert result["easy examples, focal gamma 2"] < 1e-4 * result["easy examples, crossentropy"]
    confident = np.array([[10.0, 0.0], [0.0, 10.0]], "float32")
    per_example = keras.losses.sparse_categorical_crossentropy(np.array([0, 1]), confident, from_logits=True)
    focal = focal_loss.sparse_focal_crossentropy(np.array([0, 1]), confident, gamma=2.0)
    assert np.all(np.asarray(focal) < 1e-3 * np.asarray(per_example))


def test_focal_loss_factory_serializes_with_its_gamma_and_trains_through_a_keras_file():
    rng = np.random.default_rng(0)
    testing.check_loss(focal_loss.focal_loss(gamma=3.0), rng.integers(0, 5, size=(16,)),
                       rng.normal(size=(16, 5)).astype("float32"))
    result = focal_loss.train_and_reload(epochs=10)
    assert result["last loss"] < 0.5 * result["first loss"]
    assert result["reloaded gamma"] == 3.0 and result["reloaded loss equals the original"]


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_runs(name):
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([sys.executable, "-m", f"examples.{name}"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip(), f"examples.{name} printed nothing"
