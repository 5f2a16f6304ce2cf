"""TensorBoard beyond training's scalars: what `evaluate` found, its pictures, and the run's configuration.

    tensorboard --logdir=runs/<project>

Training writes the runs `<model_dir>/train` and `<model_dir>/eval` (loss, metrics and learning rate at
every loop; `core.callbacks.ScalarSummaries`) and, at its start, the operative gin config and the flags as
text (`write_run_config`). Every project's `evaluate` adds the run `<model_dir>/evaluate`
(`write_evaluation`):
  scalars  `eval_<split>/<metric>` at the step of the checkpoint scored, so scoring older checkpoints
           (--checkpoint) draws a curve; nested results become `eval_<split>/<model>/<subset>/<metric>`
  images   `eval_<split>/<picture>`: the PNGs evaluate also writes into the model dir (a confusion
           matrix, predicted against true, a ROC curve, attention weights)
  text     `eval_<split>/<name>`: tables in markdown (a classification report, sample translations)
A search (wide_deep's KerasTuner and scikit-learn searches) writes its trials for the HParams dashboard
(`write_hparams`), and word2vec's and the LSTM's word vectors go to the embedding projector
(`write_projector`). Tests read all of it back with TensorBoard's EventAccumulator (`tags`, `values`,
`session_hparams`).
"""

from __future__ import annotations

import io
import numbers
import os
from collections.abc import Callable, Mapping

import numpy as np
import tensorflow as tf

EVALUATE_RUN = "evaluate"
TRAIN_RUN = "train"


def checkpoint_step(path: str | None) -> int:
    """The step of a checkpoint prefix `.../ckpt-<step>` (averaged ones too); 0 when there is none."""
    tail = (path or "").rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def flat_scalars(results: Mapping, prefix: str = "") -> dict[str, float]:
    """The numbers of a (nested) results dict as `a/b/c` tags; strings, lists and booleans are left out."""
    flat = {}
    for key, value in results.items():
        tag = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_scalars(value, tag + "/"))
        elif isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value):
            flat[tag] = float(value)
    return flat


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed), for the pictures evaluate draws."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig) -> bytes:
    """A matplotlib figure as PNG bytes (for `write_evaluation`'s images); the figure is closed."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    return buffer.getvalue()


def code_block(text: str) -> str:
    """`text` as a markdown code block (TensorBoard renders text summaries as markdown)."""
    return "\n".join("    " + line for line in text.splitlines())


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A markdown table; `|` in cells is escaped so that a cell cannot split."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return "\n".join(lines)


def write_evaluation(model_dir: str, split: str, step: int, results: Mapping,
                     images: Mapping[str, bytes | str] | None = None, texts: Mapping[str, str] | None = None) -> str:
    """Writes one evaluation into the run `<model_dir>/evaluate` under `eval_<split>/`; returns its folder.

    `results`: the numbers (nested dicts allowed); `images`: name -> PNG bytes or the path of a PNG file;
    `texts`: name -> markdown. `split` may carry a suffix (`test_ensemble`, `test_greedy`).
    """
    log_dir = os.path.join(model_dir, EVALUATE_RUN)
    writer = tf.summary.create_file_writer(log_dir)
    try:
        with writer.as_default(step=step):
            for tag, value in flat_scalars(results).items():
                tf.summary.scalar(f"eval_{split}/{tag}", value)
            for name, png in (images or {}).items():
                if isinstance(png, str):
                    with open(png, "rb") as f:
                        png = f.read()
                tf.summary.image(f"eval_{split}/{name}", tf.io.decode_png(png, channels=4)[None])
            for name, text in (texts or {}).items():
                tf.summary.text(f"eval_{split}/{name}", text)
    finally:
        writer.close()
    return log_dir


def write_run_config(model_dir: str, step: int, operative_config: str, flags_text: str) -> None:
    """The operative gin config and the flags of a run, as text in `<model_dir>/train` at `step`."""
    writer = tf.summary.create_file_writer(os.path.join(model_dir, TRAIN_RUN))
    try:
        with writer.as_default(step=step):
            tf.summary.text("config/operative_gin", code_block(operative_config))
            tf.summary.text("config/flags", code_block(flags_text))
    finally:
        writer.close()


def write_projector(log_dir: str, name: str, words: list[str], matrix: np.ndarray, prefix: str = "",
                    config_dirs: tuple[str, ...] = ()) -> str:
    """An embedding table for TensorBoard's projector in `log_dir`: `<prefix>vectors.tsv` and `<prefix>metadata.tsv`
    (one row / one word per line, same order), then `projector_config.pbtxt` naming them, written last so that
    its presence means the rest is complete. The projector reads a config only in a run's folder (one with
    event files) or in the folder given to --logdir: `config_dirs` get a copy naming the same files by
    relative path (e.g. a training's `train/` run beside them). Returns the config's path in `log_dir`."""
    from core.files import write_text_atomic

    if len(words) != len(matrix):
        raise ValueError(f"write_projector: {len(words)} words for {len(matrix)} vectors")
    os.makedirs(log_dir, exist_ok=True)
    write_text_atomic(os.path.join(log_dir, f"{prefix}vectors.tsv"),
                      "".join("\t".join(f"{v:.5f}" for v in row) + "\n" for row in matrix))
    # A tab or newline in a word would shift the projector's rows: written as \t and \n.
    write_text_atomic(os.path.join(log_dir, f"{prefix}metadata.tsv"),
                      "".join(w.replace("\t", "\\t").replace("\n", "\\n") + "\n" for w in words))
    for folder in (*config_dirs, log_dir):  # log_dir's last: its presence means everything is written
        os.makedirs(folder, exist_ok=True)
        where = os.path.relpath(log_dir, folder)
        write_text_atomic(os.path.join(folder, "projector_config.pbtxt"),
                          f'embeddings {{\n  tensor_name: "{name}"\n'
                          f'  tensor_path: "{os.path.normpath(os.path.join(where, prefix + "vectors.tsv"))}"\n'
                          f'  metadata_path: "{os.path.normpath(os.path.join(where, prefix + "metadata.tsv"))}"\n}}\n')
    return os.path.join(log_dir, "projector_config.pbtxt")


def _hparam_value(value):
    """A value the hparams plugin takes (bool, int, float or str): tuples and other objects as their text."""
    return value if isinstance(value, (bool, int, float, str)) else str(value)


def write_hparams(log_dir: str, trials: list[dict], hparams: list[str], metrics: list[str],
                  trial_key: str | None = None) -> str:
    """A search's trials for TensorBoard's HParams dashboard: the experiment (which columns are hyperparameters
    and which are metrics) in `log_dir`, and one session per trial in `log_dir/<trial>` with its
    hyperparameters and metrics. `trials` are rows of a ranked results table; `trial_key` names the column
    that identifies a trial (default: its rank). `log_dir` is replaced, as the table is: a search run again
    shows its own trials only. Returns `log_dir`."""
    import shutil

    from tensorboard.plugins.hparams import api as hp

    shutil.rmtree(log_dir, ignore_errors=True)

    def write(folder: str, summaries: Callable[[], None]) -> None:
        writer = tf.summary.create_file_writer(folder)
        try:
            with writer.as_default():
                summaries()
        finally:
            writer.close()

    write(log_dir, lambda: hp.hparams_config(hparams=[hp.HParam(name) for name in hparams],
                                             metrics=[hp.Metric(name, display_name=name) for name in metrics]))
    for rank, trial in enumerate(trials, start=1):
        name = str(trial[trial_key]) if trial_key else f"rank_{rank:03d}"

        def session(trial=trial, name=name):
            hp.hparams({key: _hparam_value(trial[key]) for key in hparams if trial.get(key) is not None},
                       trial_id=name)
            for metric in metrics:
                if isinstance(trial.get(metric), numbers.Real):
                    tf.summary.scalar(metric, float(trial[metric]), step=0)

        write(os.path.join(log_dir, name), session)
    return log_dir


def session_hparams(session_dir: str) -> dict:
    """The hyperparameters one session of `write_hparams` recorded, as the dashboard reads them."""
    from tensorboard.plugins.hparams import metadata

    content = _accumulator(session_dir).SummaryMetadata(metadata.SESSION_START_INFO_TAG).plugin_data.content
    info = metadata.parse_session_start_info_plugin_data(content)
    return {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
            for name, value in info.hparams.items()}


def _accumulator(log_dir: str):
    """TensorBoard's EventAccumulator over the event files of `log_dir`, every event kept, loaded."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(log_dir, size_guidance={"tensors": 0})
    accumulator.Reload()
    return accumulator


def tags(log_dir: str) -> dict[str, str]:
    """{tag: TensorBoard plugin ("scalars", "images", "text", "hparams", ...)} of the event files in `log_dir`."""
    accumulator = _accumulator(log_dir)
    return {tag: accumulator.SummaryMetadata(tag).plugin_data.plugin_name
            for tag in accumulator.Tags()["tensors"]}


def values(log_dir: str, tag: str) -> list[tuple[int, np.ndarray]]:
    """(step, value) of every event of `tag` in `log_dir`."""
    return [(event.step, tf.make_ndarray(event.tensor_proto)) for event in _accumulator(log_dir).Tensors(tag)]
