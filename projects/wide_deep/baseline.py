r"""The gradient-boosted trees baseline (benchmark only): scikit-learn's HistGradientBoostingRegressor on the split.

    python -m projects.wide_deep.baseline --data_dir=data/wide_deep/bikeshare

Same shards, same split as the Keras models. Categorical columns are ordinal codes marked categorical, so the
trees split on categories natively. It fits on train, stopping early on validation, then reports test RMSE,
MAE and R^2 (median of --repeats seeds) and writes them to <data_dir>/gbt_baseline.json.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
from absl import flags

from core import runtime
from core.files import write_text_atomic

from . import data
from .scoring import regression_scores

flags.DEFINE_string("data_dir", "data/wide_deep/bikeshare", "Prepared data (python -m projects.wide_deep.prepare).")
flags.DEFINE_integer("repeats", 1, "Seeds to fit (without subsampling the trees are the same for every seed); "
                     "the run with the median test RMSE is reported.")
FLAGS = flags.FLAGS


def fit_and_score(data_dir: str, seed: int) -> dict:
    """Fits one HistGradientBoostingRegressor and scores it on the test split."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    metadata, x, y = data.code_matrices(data_dir, unseen=np.nan)  # NaN: the trees' missing-value branch
    kinds = metadata["features"]
    model = HistGradientBoostingRegressor(
        max_iter=2000, learning_rate=0.05, early_stopping=True, validation_fraction=None, n_iter_no_change=50,
        categorical_features=[k != "numeric" for k in kinds.values()], random_state=seed)
    start = time.perf_counter()
    model.fit(x["train"], y["train"], X_val=x["validation"], y_val=y["validation"])
    seconds = time.perf_counter() - start
    return {**regression_scores(y["test"], model.predict(x["test"])), "iterations": int(model.n_iter_),
            "fit_seconds": round(seconds, 2), "seed": seed}


def main(argv: list[str]) -> None:
    """Fits --repeats seeds and prints and writes the median run."""
    runs = [fit_and_score(FLAGS.data_dir, seed) for seed in range(FLAGS.repeats)]
    best = sorted(runs, key=lambda r: r["rmse"])[len(runs) // 2]
    for r in runs:
        print(f"seed {r['seed']}: test rmse={r['rmse']:.3f} mae={r['mae']:.3f} r2={r['r2']:.4f} "
              f"({r['iterations']} trees, {r['fit_seconds']} s)")
    path = os.path.join(FLAGS.data_dir, "gbt_baseline.json")
    write_text_atomic(path, json.dumps({"median": best, "runs": runs}, indent=2))
    print(f"GBT baseline (median of {len(runs)}): test rmse={best['rmse']:.3f} mae={best['mae']:.3f} "
          f"r2={best['r2']:.4f}; wrote {path}")


if __name__ == "__main__":
    runtime.run(main)
