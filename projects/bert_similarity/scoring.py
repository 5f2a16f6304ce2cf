"""Binary decision metrics from match scores: what `evaluate` and the bench report (scikit-learn's metrics).

Scores are probabilities (cross-encoder) or cosine similarities (bi-encoder, zero-shot baseline); a
pair is called a match when its score is at least the threshold, which is chosen on validation and
then applied unchanged to test.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN where the pairs hold one class only."""
    labels = np.asarray(labels).astype(bool)
    if labels.all() or not labels.any():
        return float("nan")
    return float(metrics.roc_auc_score(labels, scores))


def decisions(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of calling `score >= threshold` a match."""
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(scores) >= threshold
    precision, recall, f1, _ = metrics.precision_recall_fscore_support(labels, predicted, average="binary",
                                                                       zero_division=0)
    return {"accuracy": float(metrics.accuracy_score(labels, predicted)), "precision": float(precision),
            "recall": float(recall), "f1": float(f1)}


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs (midway between neighbouring scores)."""
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    labels = np.asarray(labels).astype(bool)
    # Plain NumPy in this search: scikit-learn's checks on every call would cost seconds over thousands of cuts.
    accuracies = [np.mean(labels == (scores >= t)) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def report(labels: np.ndarray, scores: np.ndarray, kinds: np.ndarray, threshold: float) -> dict[str, dict]:
    """Metrics on all pairs and, where the data has them, on positives with hard negatives only."""
    subsets = {"all": np.ones(len(labels), bool)}
    if "hard" in set(kinds):
        subsets["hard"] = np.isin(kinds, ["positive", "hard"])
    return {name: {**decisions(labels[keep], scores[keep], threshold), "roc_auc": roc_auc(labels[keep], scores[keep]),
                   "pairs": int(keep.sum())} for name, keep in subsets.items()}
