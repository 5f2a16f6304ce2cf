"""Evaluates the newest checkpoint on the test split: accuracy, macro-F1 and the confusion matrix.

    python -m projects.cnn_vision.evaluate --model_dir=runs/cnn_vision/default [--split=test] [--checkpoint=-2]

Uses the model dir's operative_config.gin unless --gin_file is given. Writes
`<model_dir>/eval_<split>.json` and `<model_dir>/confusion_<split>.png` (`eval_<split>_ckpt-N.json`, ... for
a checkpoint given by --checkpoint), prints the results, and adds them to TensorBoard (the run
`<model_dir>/evaluate`): the scalars, the confusion matrix, the per-class report, and a grid of test images
with their predicted and true labels, the misclassified ones first.
"""

from __future__ import annotations

import numpy as np
from absl import flags

from core import board, checkpoints, evaluation, reports, runtime
from core import config as core_config

from .task import ImageClassificationTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
flags.DEFINE_integer("grid_images", 25, "Images in TensorBoard's grid of predictions (misclassified first).")
FLAGS = flags.FLAGS


def prediction_grid(task: ImageClassificationTask, options, split: str, checkpoint: str | None,
                    count: int = 25) -> dict[str, bytes]:
    """{"predictions": PNG}: `count` images of `split` titled `predicted / true`, the misclassified first (in
    red), then correctly classified ones, in split order."""
    plt = board.pyplot()

    model = task.build_model()
    checkpoints.restore_model(model, options.model_dir, checkpoint)
    wrong, right = [], []
    for images, labels in task.build_inputs(split):
        predicted = np.argmax(np.asarray(model(images, training=False)), axis=-1)
        for image, label, guess in zip(images.numpy(), labels.numpy(), predicted, strict=True):
            chosen = wrong if guess != label else right
            if len(chosen) < count:
                chosen.append((image, int(label), int(guess)))
        if len(wrong) >= count:
            break
    shown = (wrong + right)[:count]
    columns = int(np.ceil(np.sqrt(len(shown))))
    rows = int(np.ceil(len(shown) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (image, label, guess) in zip(axes.ravel(), shown):
        ax.imshow(image.squeeze(-1) if image.shape[-1] == 1 else image / 255.0, cmap="gray")
        ax.set_title(f"{task.class_names[guess]}\n/ {task.class_names[label]}", fontsize=7,
                     color="red" if guess != label else "black")
    fig.suptitle(f"{split}: predicted / true, {len(wrong)} misclassified first", fontsize=9)
    fig.tight_layout()
    png = board.figure_png(fig)
    return {"predictions": png}


def main(argv: list[str]) -> None:
    """Evaluates, prints the confusion matrix and results, writes them as JSON and PNG and to TensorBoard."""
    options = runtime.setup(default_gin_from_model_dir=True)
    reports.evaluate_classifier(
        ImageClassificationTask.from_model_dir(options.model_dir), options, FLAGS.split, FLAGS.checkpoint,
        images=lambda task, options, split, path: prediction_grid(task, options, split, path, FLAGS.grid_images))


if __name__ == "__main__":
    runtime.run(main)
