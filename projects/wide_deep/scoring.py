"""Regression scores in NumPy, shared by `evaluate`, the baseline and the search (tested against scikit-learn)."""

from __future__ import annotations

import numpy as np


def regression_scores(y_true, y_pred) -> dict[str, float]:
    """RMSE, MAE and R^2 (1 - residual sum of squares / total sum of squares) of flat predictions."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y_true.shape != y_pred.shape or not y_true.size:
        raise ValueError(f"need equally long, non-empty targets and predictions; got {y_true.shape}, {y_pred.shape}.")
    error = y_pred - y_true
    total = np.sum((y_true - y_true.mean()) ** 2)
    return {"rmse": float(np.sqrt(np.mean(error**2))), "mae": float(np.mean(np.abs(error))),
            "r2": float(1.0 - np.sum(error**2) / total) if total > 0 else float("nan")}
