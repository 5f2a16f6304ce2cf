r"""The scikit-learn way: the gin-configured Keras model as a scikit-learn regressor, tuned by RandomizedSearchCV.

    python -m projects.wide_deep.sklearn_search --gin_file=projects/wide_deep/configs/default.gin \
        --output_dir=runs/wide_deep/sklearn_search [--n_iter=10] [--epochs=30]

The wrapper is Keras's own `keras.wrappers.SKLearnRegressor`. SciKeras, the wrapper tutorials use, is no longer
maintained and fails with scikit-learn >= 1.6 (`'super' object has no attribute '__sklearn_tags__'`); this
repository pins scikit-learn 1.9.1.

scikit-learn estimators take one numeric matrix, so the table becomes one: numeric columns as they are,
categorical columns as their index in the training split's vocabulary (-1 for a value never seen). The first
layer of the wrapped model (`MatrixColumns`) splits the matrix back into named columns, and the rest is the
gin-configured model function (wide_deep by default) with its lookups, crosses and embeddings.

The search samples `--n_iter` settings of learning rate, hidden units, dropout and embedding size, scores
each on the validation split (a PredefinedSplit: the same split as every other run here, not k folds), refits
the best on train + validation, and scores it on the test split. Writes results.csv, results.md and
best.json into --output_dir, and the candidates into its hparams/ for TensorBoard's HParams dashboard.
"""

from __future__ import annotations

import json
import os
import time

import gin
import keras
import numpy as np
from absl import flags

from core import board, runtime
from core import config as core_config
from core.files import write_text_atomic

from . import columns as columns_lib
from . import data, reports
from . import model as model_lib
from .scoring import regression_scores
from .task import RegressionTask

flags.adopt_module_key_flags(core_config)
flags.DEFINE_string("output_dir", "runs/wide_deep/sklearn_search", "Where the results tables go.")
flags.DEFINE_integer("n_iter", 10, "Settings RandomizedSearchCV samples.")
flags.DEFINE_integer("epochs", 30, "Epochs of model.fit per candidate (and for the refit).")
flags.DEFINE_integer("batch_size", 64, "Batch size of model.fit.")
FLAGS = flags.FLAGS

SEARCH_SPACE = {  # scipy.stats distributions or lists, sampled by sklearn's ParameterSampler
    "learning_rate": ("loguniform", 3e-4, 1e-2),
    "hidden_units": [(128,), (256, 128), (256, 256), (256, 128, 64)],
    "dropout": [0.0, 0.1, 0.2, 0.3],
    "embedding_dim": [4, 8, 12, 16],
}


def make_build_fn(columns: model_lib.Columns, model_fn, epochs: int, batch_size: int):
    """The callable SKLearnRegressor calls with (X, y, **model_kwargs) to get a new compiled model.

    Adam with the learning rate decayed to zero over the fit (cosine), as `default.gin` trains: without the
    decay the last epoch's weights, which scikit-learn scores, are noticeably worse.
    """

    def build(X, y, learning_rate: float = 1e-3, **model_kwargs):
        del y  # the target's scale comes from `columns`
        inputs = keras.Input((len(columns.kinds),), name="matrix")
        network = model_fn(columns, **model_kwargs)
        model = keras.Model(inputs, network(columns_lib.MatrixColumns(columns.kinds)(inputs)))
        steps = epochs * -(-len(X) // batch_size)
        model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)), loss="mse")
        return model

    return build


def sample_candidates(n_iter: int, seed: int, model_fn=None) -> list[dict]:
    """`n_iter` settings from SEARCH_SPACE (the keys `model_fn` takes), drawn by scikit-learn's ParameterSampler."""
    import inspect

    from scipy import stats
    from sklearn.model_selection import ParameterSampler

    accepted = set(inspect.signature(model_fn).parameters) | {"learning_rate"} if model_fn else set(SEARCH_SPACE)
    space = {k: (stats.loguniform(v[1], v[2]) if isinstance(v, tuple) else v) for k, v in SEARCH_SPACE.items()
             if k in accepted}
    return [{k: (float(v) if k == "learning_rate" else v) for k, v in c.items()}
            for c in ParameterSampler(space, n_iter=n_iter, random_state=seed)]


def run_search(data_dir: str, model_fn, n_iter: int, epochs: int, batch_size: int, seed: int) -> dict:
    """RandomizedSearchCV over the candidates; returns {"rows": ranked results, "best": ..., "test": scores}."""
    from sklearn.model_selection import PredefinedSplit, RandomizedSearchCV

    metadata, x, y = data.code_matrices(data_dir, unseen=-1)  # -1: the lookups' out-of-vocabulary index
    kinds, target = metadata["features"], metadata["target"]
    x = {s: m.astype(np.float32) for s, m in x.items()}
    y = {s: t.astype(np.float32) for s, t in y.items()}
    code_kinds = {c: ("numeric" if k == "numeric" else "integer") for c, k in kinds.items()}
    train_codes = {c: x["train"][:, i].astype(np.int64 if code_kinds[c] == "integer" else np.float32)
                   for i, c in enumerate(kinds)}
    columns = model_lib.Columns(code_kinds, train_codes, {target: metadata["target_stats"][target]})
    regressor = keras.wrappers.SKLearnRegressor(
        model=make_build_fn(columns, model_fn, epochs, batch_size))
    candidates = sample_candidates(n_iter, seed, model_fn)
    # One fold: fit on train, score on validation (test_fold -1 = always train, 0 = the validation fold).
    fold = np.concatenate([np.full(len(y["train"]), -1), np.zeros(len(y["validation"]))])
    search = RandomizedSearchCV(
        regressor, {"model_kwargs": candidates}, n_iter=len(candidates), cv=PredefinedSplit(fold),
        # verbose=3: scikit-learn prints a line as each candidate finishes, with its score and time.
        scoring="neg_root_mean_squared_error", refit=True, random_state=seed, verbose=3)
    start = time.perf_counter()
    # model.fit's arguments go through search.fit, not SKLearnRegressor(fit_kwargs=...): Keras 3.15's
    # __sklearn_clone__ drops fit_kwargs, so every candidate (a clone) would train for one epoch.
    search.fit(np.concatenate([x["train"], x["validation"]]), np.concatenate([y["train"], y["validation"]]),
               epochs=epochs, batch_size=batch_size, verbose=0)
    seconds = time.perf_counter() - start
    results = search.cv_results_
    rows = sorted(({"val_rmse": round(-float(score), 4), **params["model_kwargs"],
                    "fit_seconds": round(float(fit), 1)}
                   for score, params, fit in zip(results["mean_test_score"], results["params"],
                                                 results["mean_fit_time"])), key=lambda r: r["val_rmse"])
    test = regression_scores(y["test"], search.predict(x["test"]))
    return {"rows": rows, "best": search.best_params_["model_kwargs"], "test": test, "seconds": round(seconds, 1),
            "refit_epochs": len(search.best_estimator_.history_.history["loss"])}


def main(argv: list[str]) -> None:
    """Runs the search and writes the tables and the best setting's test scores."""
    core_config.parse_gin(list(FLAGS.gin_file), list(FLAGS.gin_bindings))
    keras.utils.set_random_seed(FLAGS.seed)
    keras.config.disable_interactive_logging()  # no progress bar per fit and predict of every candidate
    task = RegressionTask()
    if task.multi_output or task.multi_input:
        raise core_config.ConfigError("sklearn_search wraps single-input, single-output models (mlp, wide_deep, "
                                      "wide_deep_subclass); RegressionTask.model_fn names another.")
    result = run_search(task.data_dir, task.model_fn, FLAGS.n_iter, FLAGS.epochs, FLAGS.batch_size, FLAGS.seed)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    csv_path, md_path = reports.write_ranked_tables(result["rows"], FLAGS.output_dir)
    metrics = ["val_rmse", "fit_seconds"]
    board.write_hparams(os.path.join(FLAGS.output_dir, "hparams"), result["rows"],
                        [k for k in dict.fromkeys(k for r in result["rows"] for k in r) if k not in metrics], metrics)
    write_text_atomic(os.path.join(FLAGS.output_dir, "best.json"), json.dumps(
        {"best": result["best"], "test": result["test"], "search_seconds": result["seconds"],
         "refit_epochs": result["refit_epochs"],
         "operative_config": gin.operative_config_str()}, indent=2, default=str))
    with open(md_path) as f:
        print(f.read())
    test = result["test"]
    print(f"Best {result['best']} refit on train + validation: test rmse={test['rmse']:.3f} mae={test['mae']:.3f} "
          f"r2={test['r2']:.4f}; search took {result['seconds']:.0f} s. Wrote {csv_path}, {md_path} and the "
          f"candidates for TensorBoard's HParams dashboard ({os.path.join(FLAGS.output_dir, 'hparams')})")


if __name__ == "__main__":
    runtime.run(main)
