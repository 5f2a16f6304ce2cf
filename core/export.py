"""SavedModel export for TensorFlow Serving: versioned folders, named signatures, atomic writes; and the
ONNX and LiteRT files written beside a SavedModel, each run once against the Keras model before it is kept.

TF Serving watches `<export_base>/<integer version>/` and serves the highest version. A version
folder must never be seen half-written, so each export is written to a hidden temporary folder
beside it and renamed into place (a rename within one filesystem is atomic).
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from core import checkpoints, files, runtime
from core.config import RunOptions, UserError
from core.files import atomic_path, write_text_atomic


def define_flags() -> None:
    """The flags of every project's `export` binary: --export_dir, --version and --checkpoint."""
    flags.DEFINE_string("export_dir", None, "Base folder of the versioned exports (default: <model_dir>/export).")
    flags.DEFINE_integer("version", None, "Version number (default: one more than the highest existing).")
    checkpoints.define_checkpoint_flag("export")


def flag_values() -> dict:
    """`export_checkpoint`'s keyword arguments from the flags `define_flags` defined."""
    return {"export_dir": flags.FLAGS.export_dir, "version": flags.FLAGS.version, "checkpoint": flags.FLAGS.checkpoint}


def setup() -> RunOptions:
    """`runtime.setup` for an export binary: the model dir's operative config unless --gin_file is given, and
    float32 layers whatever policy training used, so the SavedModel computes and returns float32."""
    options = runtime.setup(default_gin_from_model_dir=True)
    keras.mixed_precision.set_global_policy("float32")
    return options


def existing_versions(export_base: str) -> list[int]:
    """Integer version folders under export_base, ascending."""
    if not os.path.isdir(export_base):
        return []
    return sorted(int(name) for name in os.listdir(export_base) if name.isdigit())


def export_saved_model(
    model: keras.Model,
    export_base: str,
    signatures: Mapping[str, tuple[Callable, list[tf.TensorSpec]]],
    version: int | None = None,
    track: tuple = (),
    extras: Callable[[str], None] | None = None,
) -> str:
    """Writes `model` with the given signatures to `export_base/<version>` and returns that path.

    `signatures` maps a signature name to (function, input_signature); each function takes the
    signature's inputs and returns a dict of named outputs. The version defaults to one more than
    the highest existing one. `track` lists other layers the signatures use (a text encoder with
    its lookup table): their variables and tables must be saved with the model. `extras(folder)` writes
    more files into the version folder (ONNX, LiteRT) before it is renamed into place, so they appear
    with the SavedModel or not at all.
    """
    if not signatures:
        raise ValueError("export_saved_model needs at least one signature.")
    version = version if version is not None else (existing_versions(export_base) or [0])[-1] + 1
    final = os.path.join(export_base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} already exists; TF Serving versions must not be overwritten.")
    archive = keras.export.ExportArchive()
    for trackable in (model, *track):
        archive.track(trackable)
    for name, (fn, input_signature) in signatures.items():
        archive.add_endpoint(name, fn, input_signature=input_signature)
    os.makedirs(export_base, exist_ok=True)
    files.remove_stale_temporaries(export_base)  # half exports of killed runs
    tmp = files.temporary_path(final)
    try:
        archive.write_out(tmp, verbose=False)
        if extras is not None:
            try:
                extras(tmp)
            except UserError as e:  # it names a file in the folder about to be removed: name the version
                raise UserError(f"{str(e).replace(tmp, final)} Version {version} was not written.") from e
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    logging.info("Exported SavedModel version %d to %s (signatures: %s)", version, final, ", ".join(signatures))
    return final


ONNX_FILE, LITERT_FILE = "model.onnx", "model.tflite"


def write_onnx(model: keras.Model, folder: str, input_signature: list[tf.TensorSpec]) -> str:
    """`folder/model.onnx`: Keras' ONNX export (tf2onnx under the TensorFlow backend) of a model whose graph
    uses core TF ops only (lookup tables do not convert). Returns the path; `check_portable` runs it."""
    path = os.path.join(folder, ONNX_FILE)
    model.export(path, format="onnx", input_signature=input_signature, verbose=False)
    return path


def write_litert(model: keras.Model, folder: str, input_signature: list[tf.TensorSpec]) -> str:
    """`folder/model.tflite`: Keras' LiteRT (TFLite) export. Returns the path; `check_portable` runs it."""
    path = os.path.join(folder, LITERT_FILE)
    model.export(path, format="litert", input_signature=input_signature, verbose=False)
    return path


def onnx_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """f(batch) -> the first output, with onnxruntime on the CPU."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def litert_runner(path: str) -> Callable[[np.ndarray], np.ndarray]:
    """f(batch) -> the first output, with the LiteRT interpreter (resized to each batch's shape)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    [entry], [exit_] = interpreter.get_input_details(), interpreter.get_output_details()
    shape = None

    def run(batch: np.ndarray) -> np.ndarray:
        nonlocal shape
        if batch.shape != shape:
            interpreter.resize_tensor_input(entry["index"], batch.shape)
            interpreter.allocate_tensors()
            shape = batch.shape
        interpreter.set_tensor(entry["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(exit_["index"]).copy()

    return run


def check_portable(paths: Mapping[str, str], reference: Callable[[np.ndarray], np.ndarray], batch: np.ndarray,
                   atol: float = 1e-5) -> dict[str, float]:
    """Runs each written ONNX / LiteRT file on `batch` and compares it with `reference` (the Keras model);
    returns the largest absolute differences, or raises UserError naming the file that differs. Keras'
    ONNX export logs a failed conversion and still writes a file, so a file is never trusted unchecked."""
    runners = {"onnx": onnx_runner, "litert": litert_runner}
    expected = np.asarray(reference(batch))
    differences = {}
    for kind, path in paths.items():
        try:
            got = runners[kind](path)(batch)
        except Exception as e:  # a broken file fails in the runtime's own way  # noqa: BLE001
            raise UserError(f"{path} does not run ({type(e).__name__}: {str(e)[:300]}).") from e
        differences[kind] = float(np.max(np.abs(got - expected)))
        if not differences[kind] <= atol:
            raise UserError(f"{path} differs from the Keras model by {differences[kind]:.2e} (more than {atol:g}).")
    return differences


def classifier_outputs(logits: tf.Tensor, class_names: list[str]) -> dict[str, tf.Tensor]:
    """The output contract of every classifier export (serving/README.md), from logits [batch, classes].

    probabilities [batch, classes] float32, class_ids [batch] int64, class_names [batch] string (the top
    class), and label_names [batch, classes] string: every name on every row, because TF Serving's row
    format needs a batch dimension on each output, so clients can name all the scores.
    """
    names = tf.constant(class_names)
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
    class_ids = tf.argmax(probabilities, axis=-1)
    return {"probabilities": probabilities, "class_ids": class_ids, "class_names": tf.gather(names, class_ids),
            "label_names": tf.tile(names[tf.newaxis, :], [tf.shape(logits)[0], 1])}


def resolve_export(path: str) -> str:
    """`path` itself if it holds saved_model.pb, else its highest integer version folder."""
    if os.path.exists(os.path.join(path, "saved_model.pb")):
        return path
    versions = existing_versions(path)
    if not versions:
        raise UserError(f"--export_dir={path}: no saved_model.pb and no version folders; run export first.")
    return os.path.join(path, str(versions[-1]))


def save_model_files(model: keras.Model, model_dir: str, name: str = "model") -> dict[str, str]:
    """Saves `<name>.keras`, `<name>.weights.h5`, `<name>_summary.txt` and (with graphviz) `<name>.png`."""
    os.makedirs(model_dir, exist_ok=True)
    paths = {}
    for suffix, save in ((".keras", model.save), (".weights.h5", model.save_weights)):
        paths[suffix] = os.path.join(model_dir, name + suffix)
        with atomic_path(paths[suffix]) as tmp:
            save(tmp)
    summary = io.StringIO()
    model.summary(print_fn=lambda line, **_: summary.write(line + "\n"))
    paths["summary"] = os.path.join(model_dir, f"{name}_summary.txt")
    write_text_atomic(paths["summary"], summary.getvalue())
    try:
        paths["plot"] = os.path.join(model_dir, f"{name}.png")
        keras.utils.plot_model(model, to_file=paths["plot"], show_shapes=True, show_layer_names=True)
    except (ImportError, OSError) as e:  # pydot or the graphviz `dot` binary is missing
        logging.warning("No model plot (%s); install graphviz and pydot to get one.", e)
        paths.pop("plot")
    return paths


def export_checkpoint(
    model: keras.Model,
    model_dir: str,
    signatures: Mapping[str, tuple[Callable, list[tf.TensorSpec]]],
    *,
    export_dir: str | None = None,
    version: int | None = None,
    track: tuple = (),
    checkpoint: str | None = None,
    extras: Callable[[str], None] | None = None,
) -> str:
    """What every project's `export` binary does: restore a checkpoint of `model_dir` into `model`,
    write the SavedModel to `export_dir` (default `<model_dir>/export`) and the Keras files beside it.

    `checkpoint` picks one by path, step or position (see core.checkpoints.checkpoint_path); the default is the newest
    that reads. The signatures may be built before the restore: they call `model`, whose variables are
    filled in place. With `export_dir` elsewhere, a read-only model dir is fine: the Keras files, which
    belong beside the checkpoints, are then skipped with a note. `extras` as in `export_saved_model`. Returns the
    version folder written.
    """
    checkpoint = checkpoints.restore_model(model, model_dir, checkpoints.checkpoint_path(model_dir, checkpoint))
    print(f"Restored {checkpoint}")
    path = export_saved_model(model, export_dir or os.path.join(model_dir, "export"), signatures, version, track,
                              extras)
    print(f"Exported SavedModel to {path}")
    try:
        files.remove_stale_temporaries(model_dir)  # e.g. half a model.keras of a killed export
        written = save_model_files(model, model_dir)
    except OSError as e:
        if export_dir is None:
            raise
        print(f"note: {model_dir} cannot be written ({e.strerror}), so model.keras, model.weights.h5, "
              "model_summary.txt and model.png were not written; the SavedModel above is complete.")
    else:
        print("Also wrote " + ", ".join(written.values()))
    return path
