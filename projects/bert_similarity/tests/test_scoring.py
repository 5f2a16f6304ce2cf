"""Decision metrics against scikit-learn's."""

import numpy as np
from sklearn import metrics

from .. import scoring

RNG = np.random.default_rng(3)
LABELS = RNG.integers(0, 2, size=300)
SCORES = np.round(LABELS * 0.3 + RNG.normal(size=300) * 0.4, 1)  # rounded: ties, as real scores can have


def test_roc_auc_matches_scikit_learn_with_ties():
    np.testing.assert_allclose(scoring.roc_auc(LABELS, SCORES), metrics.roc_auc_score(LABELS, SCORES), rtol=1e-12)


def test_roc_auc_of_one_class_is_nan_not_an_error():
    assert np.isnan(scoring.roc_auc(np.ones(5), np.arange(5.0)))


def test_decisions_match_scikit_learn_at_a_threshold():
    ours = scoring.decisions(LABELS, SCORES, 0.2)
    predicted = SCORES >= 0.2
    assert ours["accuracy"] == metrics.accuracy_score(LABELS, predicted)
    np.testing.assert_allclose(ours["f1"], metrics.f1_score(LABELS, predicted))
    np.testing.assert_allclose(ours["precision"], metrics.precision_score(LABELS, predicted))
    np.testing.assert_allclose(ours["recall"], metrics.recall_score(LABELS, predicted))


def test_best_threshold_is_the_most_accurate_cut():
    threshold = scoring.best_threshold(LABELS, SCORES)
    best = max(metrics.accuracy_score(LABELS, SCORES >= t) for t in np.unique(SCORES))
    assert scoring.decisions(LABELS, SCORES, threshold)["accuracy"] == best


def test_report_has_a_hard_subset_when_the_data_has_hard_negatives():
    kinds = np.array(["positive", "hard", "random"] * 100)
    report = scoring.report(LABELS, SCORES, kinds, 0.2)
    assert report["all"]["pairs"] == 300 and report["hard"]["pairs"] == 200
    keep = kinds != "random"
    np.testing.assert_allclose(report["hard"]["roc_auc"], metrics.roc_auc_score(LABELS[keep], SCORES[keep]))
