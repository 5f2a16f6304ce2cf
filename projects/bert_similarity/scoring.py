"""Binary decision metrics from match scores, in NumPy: what `evaluate` and the bench report.

Scores are probabilities (cross-encoder) or cosine similarities (bi-encoder, zero-shot baseline); a
pair is called a match when its score is at least the threshold, which is chosen on validation and
then applied unchanged to test. Tested against scikit-learn (a test-only dependency).
"""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a random positive outscores a random negative (ties half)."""
    labels = np.asarray(labels).astype(bool)
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    # Average ranks over ties (1-based), as the Mann-Whitney U statistic needs.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def decisions(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of calling `score >= threshold` a match."""
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(scores) >= threshold
    true_positive = float(np.sum(labels & predicted))
    precision = true_positive / max(predicted.sum(), 1)
    recall = true_positive / max(labels.sum(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float(np.mean(labels == predicted)), "precision": precision, "recall": recall, "f1": f1}


def best_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """The threshold with the highest accuracy on these pairs (midway between neighbouring scores)."""
    values = np.unique(scores)
    candidates = np.concatenate([[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]])
    accuracies = [decisions(labels, scores, t)["accuracy"] for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def report(labels: np.ndarray, scores: np.ndarray, kinds: np.ndarray, threshold: float) -> dict[str, dict]:
    """Metrics on all pairs and, where the data has them, on positives with hard negatives only."""
    subsets = {"all": np.ones(len(labels), bool)}
    if "hard" in set(kinds):
        subsets["hard"] = np.isin(kinds, ["positive", "hard"])
    return {name: {**decisions(labels[keep], scores[keep], threshold), "roc_auc": roc_auc(labels[keep], scores[keep]),
                   "pairs": int(keep.sum())} for name, keep in subsets.items()}
