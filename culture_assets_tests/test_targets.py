"""Survey targets: how stable each modal answer is under sampling noise, and the ordinal alternative."""

import numpy as np
import pytest

from culture_assets.survey.distribution import mode_stability
from culture_assets.training.training_set import weighted_median


def test_a_near_tied_mode_flips_often_and_a_clear_one_never() -> None:
    margin, flip = mode_stability([0.34, 0.33, 0.2, 0.13], n_valid=1000, n_resamples=4000)
    assert margin == pytest.approx(0.01) and 0.2 < flip < 0.5
    margin, flip = mode_stability([0.7, 0.2, 0.1], n_valid=1000)
    assert margin == pytest.approx(0.5) and flip == 0.0
    # fewer respondents, more noise
    assert mode_stability([0.4, 0.35, 0.25], 100)[1] > mode_stability([0.4, 0.35, 0.25], 3000)[1]
    assert np.isnan(mode_stability([0.5, 0.5], 0)[1])


def test_weighted_median_of_an_ordinal_scale() -> None:
    assert weighted_median([1, 2, 3, 4], [0.3, 0.15, 0.25, 0.3]) == 3  # the mode (1 or 4) would sit at an end
    assert weighted_median([0, 1, 2], [0.5, 0.2, 0.3]) == 0
    assert weighted_median([1, 2, 3], [2.0, 1.0, 1.0]) == 1  # unnormalised weights
