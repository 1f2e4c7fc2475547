"""95 % confidence intervals of the accuracies and recalls evaluations report."""

from scipy.stats import binomtest

CONFIDENCE = 0.95


def wilson_interval(fraction: float, trials: int) -> list[float]:
    """[low, high], the Wilson score interval (95 %) of a proportion measured as `fraction` of `trials`.

    The count of successes is fraction x trials rounded to a whole number: exact for an accuracy;
    a recall with tied scores counted in expectation (`recall_at_k`) can be fractional.
    """
    successes = min(max(round(fraction * trials), 0), trials)
    interval = binomtest(successes, trials).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return [float(interval.low), float(interval.high)]
