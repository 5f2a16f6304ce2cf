r"""Evaluates a fine-tuned checkpoint beside the zero-shot baseline: accuracy, F1, ROC-AUC, the threshold.

    python -m projects.bert_similarity.evaluate --model_dir=runs/bert_similarity/default [--checkpoint=-1]

Scores every validation and test pair with the fine-tuned model, and with the zero-shot baseline: the
pretrained encoder as it was converted, mean-pooled, cosine similarity. Each one's decision threshold
is the one with the best validation accuracy, then applied unchanged to test; `export` builds the
fine-tuned one into the SavedModel's decision. Reports all test pairs and the hard subset (positives
with same-chapter negatives), and validation at the chosen threshold (optimistic: chosen there, so
for comparing configs, not for reporting). Writes `<model_dir>/eval_test.json` and
`<model_dir>/scores_test.tsv` (label, kind, score, baseline score, text_a, text_b).
--baseline_only scores the zero-shot baseline alone: no checkpoint, give --gin_file for the data.
"""

from __future__ import annotations

import json
import os
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from core import checkpoints, export, runtime
from core import config as core_config
from core.files import write_text_atomic

from . import model as model_lib
from . import scoring
from .data import read_pairs
from .task import SimilarityTask

# List the common flags (--model_dir, --strategy, ...) in this binary's --help.
flags.adopt_module_key_flags(core_config)

export.define_checkpoint_flag("evaluate")
flags.DEFINE_bool("baseline", True, "Also score the zero-shot baseline (the pretrained encoder's cosine similarity).")
flags.DEFINE_bool("baseline_only", False, "Score only the zero-shot baseline (no checkpoint needed; --gin_file names "
                  "the data and the encoder).")
flags.DEFINE_integer("batch_size", 64, "Pairs scored together.")
FLAGS = flags.FLAGS


def load_split(task: SimilarityTask, split: str) -> dict[str, np.ndarray]:
    """text_a, text_b, label and kind of every pair of `split`, in file order."""
    columns = {"text_a": [], "text_b": [], "label": [], "kind": []}
    for batch in read_pairs(task.data_dir, split).batch(4096).as_numpy_iterator():
        for key, values in columns.items():
            values.extend(v.decode("utf-8") if isinstance(v, bytes) else v for v in batch[key])
    return {key: np.array(values) for key, values in columns.items()}


def score_pairs(task: SimilarityTask, model: keras.Model, pairs: dict, bi: bool, batch_size: int) -> np.ndarray:
    """Match scores of the pairs in order: probabilities (cross-encoder) or cosine similarities (bi-encoder)."""
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def score(text_a, text_b):
        outputs = model(task.features(text_a, text_b, bi=bi), training=False)
        return outputs if bi else tf.sigmoid(outputs)

    scores = []
    progress = keras.utils.Progbar(len(pairs["label"]), unit_name="pair", verbose=1 if sys.stdout.isatty() else 2)
    for start in range(0, len(pairs["label"]), batch_size):
        scores.append(score(pairs["text_a"][start:start + batch_size], pairs["text_b"][start:start + batch_size]))
        progress.add(len(scores[-1]))
    return np.concatenate([s.numpy() for s in scores])


def compare(task: SimilarityTask, models: dict, batch_size: int) -> tuple[dict, dict]:
    """For each (model, is_bi) in `models`: the threshold from validation and the test report; and the test scores."""
    validation, test = load_split(task, "validation"), load_split(task, "test")
    results, test_scores = {}, {}
    for name, (model, bi) in models.items():
        print(f"Scoring {len(validation['label'])} validation and {len(test['label'])} test pairs: {name} ...")
        validation_scores = score_pairs(task, model, validation, bi, batch_size)
        threshold = scoring.best_threshold(validation["label"], validation_scores)
        test_scores[name] = score_pairs(task, model, test, bi, batch_size)
        results[name] = {"threshold": threshold,
                         **scoring.report(test["label"], test_scores[name], test["kind"], threshold),
                         "validation": scoring.report(validation["label"], validation_scores, validation["kind"],
                                                      threshold)}
    return results, {**test, "scores": test_scores}


def main(argv: list[str]) -> None:
    """Scores validation and test with the checkpoint (and the baseline); prints and writes the report."""
    options = runtime.setup(default_gin_from_model_dir=True)
    task = SimilarityTask()
    models, checkpoint = {}, None
    if not FLAGS.baseline_only:
        model = task.build_model()
        checkpoint = checkpoints.restore_model(model, options.model_dir,
                                               export.checkpoint_path(options.model_dir, FLAGS.checkpoint))
        models["fine_tuned"] = (model, task.bi)
    if FLAGS.baseline or FLAGS.baseline_only:
        models["zero_shot_baseline"] = (model_lib.bi_encoder(encoder_handle=task.encoder_handle), True)
    results, test = compare(task, models, FLAGS.batch_size)
    results["checkpoint"] = checkpoint
    print(f"Test ({checkpoint or 'no checkpoint'}), thresholds chosen on validation:")
    for name in models:
        for subset, values in results[name].items():
            if subset in ("all", "hard"):
                print(f"  {name:18s} {subset:4s}  accuracy={values['accuracy']:.4f}  f1={values['f1']:.4f}  "
                      f"roc_auc={values['roc_auc']:.4f}  pairs={values['pairs']}  "
                      f"threshold={results[name]['threshold']:.4f}")
    write_text_atomic(os.path.join(options.model_dir, "eval_test.json"), json.dumps(results, indent=2))
    rows = zip(test["label"], test["kind"], *test["scores"].values(), test["text_a"], test["text_b"], strict=True)
    header = "label\tkind\t" + "\t".join(test["scores"]) + "\ttext_a\ttext_b\n"
    write_text_atomic(os.path.join(options.model_dir, "scores_test.tsv"),
                      header + "".join("\t".join(map(str, row)) + "\n" for row in rows))


if __name__ == "__main__":
    runtime.run(main)
