"""Wilson score intervals of accuracies and recalls."""

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from mmmae.eval.interval import wilson_interval


def test_the_interval_is_scipys_wilson_interval_of_the_count():
    expected = binomtest(827, 1024).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(827 / 1024, 1024) == [expected.low, expected.high]
    # the closed form, (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), at p = 1/2, n = 100
    z, n = norm.ppf(0.975), 100
    half = z * (0.25 / n + z**2 / (4 * n**2)) ** 0.5 / (1 + z**2 / n)
    eps = np.finfo(np.float64).eps  # a dozen float64 operations either way
    assert wilson_interval(0.5, n) == pytest.approx([0.5 - half, 0.5 + half], rel=16 * eps)


def test_the_interval_holds_the_estimate_and_stays_in_zero_one():
    assert wilson_interval(0.0, 50)[0] == 0.0 < wilson_interval(0.0, 50)[1]
    assert wilson_interval(1.0, 50)[0] < wilson_interval(1.0, 50)[1] == 1.0
    low, high = wilson_interval(0.3, 1000)
    assert low < 0.3 < high and high - low < 2 / 1000**0.5  # about 1/sqrt(n) wide at n = 1000


def test_a_fractional_count_is_rounded_to_a_whole_one():
    assert wilson_interval(10.4 / 64, 64) == wilson_interval(10 / 64, 64)
    assert wilson_interval(10.6 / 64, 64) == wilson_interval(11 / 64, 64)
