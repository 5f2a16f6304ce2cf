r"""Evaluates a fine-tuned checkpoint beside the zero-shot baseline: accuracy, F1, ROC-AUC, the threshold.

    python -m projects.bert_similarity.evaluate --model_dir=runs/bert_similarity/default [--checkpoint=-2] \
        [--split=test]

Scores every validation and test pair with the fine-tuned model, and with the zero-shot baseline: the
pretrained encoder as it was converted, mean-pooled, cosine similarity. Each one's decision threshold
is the one with the best validation accuracy, then applied unchanged to test; `export` builds the
fine-tuned one into the SavedModel's decision. Reports all test pairs and the hard subset (positives
with same-chapter negatives), and validation at the chosen threshold (optimistic: chosen there, so
for comparing configs, not for reporting). Writes `<model_dir>/eval_test.json` and
`<model_dir>/scores_test.tsv` (label, kind, score, baseline score, text_a, text_b) and `scores_test.png` (each
model's score histogram by kind of pair, and its ROC curves); `..._validation` with --split=validation
(validation alone, at the threshold chosen there), `..._ckpt-N` with --checkpoint. TensorBoard's run
`<model_dir>/evaluate` gets the numbers under `eval_<split>/<model>/<subset>/` and the picture.
--baseline_only scores the zero-shot baseline alone: no checkpoint, give --gin_file for the data.
"""

from __future__ import annotations

import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from core import board, checkpoints, evaluation, runtime
from core import config as core_config
from core.files import atomic_path, write_text_atomic
from core.progress import Progress

from . import model as model_lib
from . import scoring
from .data import read_pairs
from .preprocessor import PairPreprocessor
from .task import SimilarityTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

evaluation.define_flags()
flags.DEFINE_bool("baseline", True, "Also score the zero-shot baseline (the pretrained encoder's cosine similarity).")
flags.DEFINE_bool("baseline_only", False, "Score only the zero-shot baseline (no checkpoint needed; --gin_file names "
                  "the data and the encoder).")
flags.DEFINE_integer("batch_size", 64, "Pairs scored together.")
flags.DEFINE_integer("max_pairs", 0, "Score a fixed random sample of at most this many pairs of validation (where "
                     "the threshold is chosen) and of --split, in file order; 0: every pair. Scoring is slow on a "
                     "CPU: about 700 pairs a minute for both models.", lower_bound=0)
FLAGS = flags.FLAGS


def load_split(task: SimilarityTask, split: str) -> dict[str, np.ndarray]:
    """text_a, text_b, label and kind of every pair of `split`, in file order."""
    columns = {"text_a": [], "text_b": [], "label": [], "kind": []}
    for batch in read_pairs(task.data_dir, split).batch(4096).as_numpy_iterator():
        for key, values in columns.items():
            values.extend(v.decode("utf-8") if isinstance(v, bytes) else v for v in batch[key])
    return {key: np.array(values) for key, values in columns.items()}


def score_pairs(preprocessor: PairPreprocessor, model: keras.Model, pairs: dict, batch_size: int) -> np.ndarray:
    """Match scores of the pairs in order: probabilities (cross-encoder) or cosine similarities (bi-encoder)."""
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def score(text_a, text_b):
        outputs = model(preprocessor(text_a, text_b), training=False)
        return outputs if preprocessor.bi else tf.sigmoid(outputs)

    scores = []
    progress = Progress(len(pairs["label"]), "pair", "scoring")
    for start in range(0, len(pairs["label"]), batch_size):
        scores.append(score(pairs["text_a"][start:start + batch_size], pairs["text_b"][start:start + batch_size]))
        progress.add(len(scores[-1]))
    return np.concatenate([s.numpy() for s in scores])


def sample(pairs: dict[str, np.ndarray], limit: int, name: str, seed: int = 0) -> dict[str, np.ndarray]:
    """At most `limit` pairs (0: all), a fixed random sample kept in file order; says so when it samples."""
    count = len(pairs["label"])
    if not limit or count <= limit:
        return pairs
    keep = np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))
    print(f"--max_pairs={limit}: scoring a random sample of {limit:,} of the {count:,} {name} pairs")
    return {key: values[keep] for key, values in pairs.items()}


def compare(task: SimilarityTask, models: dict, batch_size: int, split: str = "test",
            max_pairs: int = 0) -> tuple[dict, dict]:
    """For each (model, its preprocessor) in `models`: the threshold chosen on validation and the report on
    `split` (test, or validation itself); and the pairs of `split` with every model's scores. `max_pairs`
    bounds each split's pairs by a fixed sample (`sample`)."""
    validation = sample(load_split(task, "validation"), max_pairs, "validation")
    held_out = validation if split == "validation" else sample(load_split(task, split), max_pairs, split)
    results, scores = {}, {}
    for name, (model, preprocessor) in models.items():
        also = "" if split == "validation" else f" and {len(held_out['label'])} {split}"
        print(f"Scoring {len(validation['label'])} validation{also} pairs: {name} ...")
        validation_scores = score_pairs(preprocessor, model, validation, batch_size)
        threshold = scoring.best_threshold(validation["label"], validation_scores)
        scores[name] = (validation_scores if split == "validation"
                        else score_pairs(preprocessor, model, held_out, batch_size))
        results[name] = {"threshold": threshold,
                         **scoring.report(held_out["label"], scores[name], held_out["kind"], threshold),
                         "validation": scoring.report(validation["label"], validation_scores, validation["kind"],
                                                      threshold)}
    return results, {**held_out, "scores": scores}


def plot_scores(pairs: dict, results: dict, title: str) -> bytes:
    """PNG: per model, the scores' histogram by kind of pair with the validation-chosen threshold, and the ROC
    curves of all pairs and of the hard subset (scikit-learn's roc_curve)."""
    from sklearn.metrics import roc_curve

    plt = board.pyplot()
    names = list(pairs["scores"])
    fig, axes = plt.subplots(len(names), 2, figsize=(10, 3.4 * len(names)), squeeze=False)
    labels, kinds = pairs["label"].astype(int), pairs["kind"]
    for (histogram, roc), name in zip(axes, names):
        scores = pairs["scores"][name]
        low, high = float(scores.min()), float(scores.max())
        bins = np.linspace(low, high, 41) if high > low else 40
        for kind in dict.fromkeys(kinds):
            histogram.hist(scores[kinds == kind], bins=bins, alpha=0.55, label=f"{kind} ({np.sum(kinds == kind)})")
        histogram.axvline(results[name]["threshold"], color="black", linestyle="--", label="threshold")
        histogram.set_title(f"{name}: scores by kind of pair", fontsize=10)
        histogram.set_xlabel("score")
        histogram.legend(fontsize=8)
        for subset, values in results[name].items():
            if subset not in ("all", "hard"):
                continue
            keep = np.ones(len(labels), bool) if subset == "all" else np.isin(kinds, ["positive", "hard"])
            if len(set(labels[keep])) < 2:
                continue
            fpr, tpr, _ = roc_curve(labels[keep], scores[keep])
            roc.plot(fpr, tpr, label=f"{subset}: AUC {values['roc_auc']:.4f}")
        roc.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
        roc.set_title(f"{name}: ROC", fontsize=10)
        roc.set_xlabel("false positive rate")
        roc.set_ylabel("true positive rate")
        roc.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png = board.figure_png(fig)
    return png


def main(argv: list[str]) -> None:
    """Scores validation and test with the checkpoint (and the baseline); prints and writes the report."""
    options = runtime.setup(default_gin_from_model_dir=True)
    task = SimilarityTask.from_model_dir(options.model_dir)
    models, checkpoint = {}, None
    if not FLAGS.baseline_only:
        model = task.build_model()
        checkpoint = checkpoints.restore_model(model, options.model_dir,
                                               checkpoints.checkpoint_path(options.model_dir, FLAGS.checkpoint))
        models["fine_tuned"] = (model, task.preprocessor)
    if FLAGS.baseline or FLAGS.baseline_only:
        models["zero_shot_baseline"] = (model_lib.bi_encoder(encoder_handle=task.encoder_handle),
                                        PairPreprocessor(task.preprocessor_handle, "bi", task.max_length))
    results, pairs = compare(task, models, FLAGS.batch_size, FLAGS.split, FLAGS.max_pairs)
    if FLAGS.max_pairs:
        results["max_pairs"] = FLAGS.max_pairs
    results["checkpoint"] = checkpoint
    print(f"{FLAGS.split.capitalize()} ({checkpoint or 'no checkpoint'}), thresholds chosen on validation:")
    for name in models:
        for subset, values in results[name].items():
            if subset in ("all", "hard"):
                print(f"  {name:18s} {subset:4s}  accuracy={values['accuracy']:.4f}  f1={values['f1']:.4f}  "
                      f"roc_auc={values['roc_auc']:.4f}  pairs={values['pairs']}  "
                      f"threshold={results[name]['threshold']:.4f}")
    name = evaluation.report_name(FLAGS.split, checkpoint if FLAGS.checkpoint else None)
    write_text_atomic(os.path.join(options.model_dir, f"eval_{name}.json"), json.dumps(results, indent=2))
    rows = zip(pairs["label"], pairs["kind"], *pairs["scores"].values(), pairs["text_a"], pairs["text_b"],
               strict=True)
    header = "label\tkind\t" + "\t".join(pairs["scores"]) + "\ttext_a\ttext_b\n"
    write_text_atomic(os.path.join(options.model_dir, f"scores_{name}.tsv"),
                      header + "".join("\t".join(map(str, row)) + "\n" for row in rows))
    png = plot_scores(pairs, results, f"{FLAGS.split} ({checkpoint or 'no checkpoint'}), thresholds chosen on "
                      "validation")
    picture = os.path.join(options.model_dir, f"scores_{name}.png")
    with atomic_path(picture) as tmp, open(tmp, "wb") as f:
        f.write(png)
    board.write_evaluation(options.model_dir, FLAGS.split, board.checkpoint_step(checkpoint),
                           {model: {k: v for k, v in values.items() if k != "validation"}
                            for model, values in results.items() if model in models}, images={"scores": png})
    print(f"Wrote eval_{name}.json, scores_{name}.tsv, scores_{name}.png and TensorBoard's {board.EVALUATE_RUN}/ "
          f"run in {options.model_dir}")


if __name__ == "__main__":
    runtime.run(main)
