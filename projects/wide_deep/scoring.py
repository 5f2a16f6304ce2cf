"""Regression scores, shared by `evaluate`, the baseline and the search: scikit-learn's metrics on flat arrays."""

from __future__ import annotations

import numpy as np
from sklearn import metrics


def regression_scores(y_true, y_pred) -> dict[str, float]:
    """RMSE, MAE and R^2 (1 - residual sum of squares / total sum of squares) of flat predictions."""
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y_true.shape != y_pred.shape or not y_true.size:
        raise ValueError(f"need equally long, non-empty targets and predictions; got {y_true.shape}, {y_pred.shape}.")
    return {"rmse": float(metrics.root_mean_squared_error(y_true, y_pred)),
            "mae": float(metrics.mean_absolute_error(y_true, y_pred)),
            "r2": float(metrics.r2_score(y_true, y_pred))}
