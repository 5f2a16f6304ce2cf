"""The regression scores against scikit-learn's."""

import numpy as np
import pytest
from sklearn import metrics

from ..scoring import regression_scores


def test_scores_match_scikit_learn():
    rng = np.random.default_rng(0)
    y = rng.gamma(2.0, 50.0, size=500)
    p = y + rng.normal(0.0, 20.0, size=500)
    scores = regression_scores(y, p)
    np.testing.assert_allclose(scores["rmse"], metrics.root_mean_squared_error(y, p), rtol=1e-12)
    np.testing.assert_allclose(scores["mae"], metrics.mean_absolute_error(y, p), rtol=1e-12)
    np.testing.assert_allclose(scores["r2"], metrics.r2_score(y, p), rtol=1e-12)


def test_mismatched_shapes_are_an_error():
    with pytest.raises(ValueError, match="equally long"):
        regression_scores([1.0, 2.0], [1.0])
