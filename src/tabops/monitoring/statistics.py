"""Distances between two distributions given as counts on the same bins (pure numpy/math).

Every function takes the reference's counts and the window's counts, bin for bin, and
works for any totals: counts are turned into shares here. None of them needs the raw
values, which is what lets drift run in flat memory.
"""

from __future__ import annotations

import math

import numpy as np

EPSILON = 1e-4
"""Shares below this are raised to it before PSI's logarithm (the usual PSI smoothing)."""
_ITERATIONS = 10_000
_TOLERANCE = 1e-15


def compute_psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index: sum of (current - reference) * ln(current / reference)."""
    expected = np.maximum(_shares(reference), EPSILON)
    actual = np.maximum(_shares(current), EPSILON)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def compute_ks(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest gap between the two cumulative shares at the bin edges, in [0, 1].

    On binned data this is the two-sample Kolmogorov-Smirnov statistic read at the edges
    only, so a lower bound of the statistic on the raw values.
    """
    gaps = np.abs(np.cumsum(_shares(reference)) - np.cumsum(_shares(current)))
    return float(gaps[:-1].max()) if len(gaps) > 1 else 0.0


def compute_wasserstein(
    reference: np.ndarray,
    reference_means: np.ndarray,
    current: np.ndarray,
    current_means: np.ndarray,
) -> float:
    """Earth mover's distance of two binned numeric distributions, in the values' units.

    Each bin's values are taken as one mass at the given mean of that bin: the spread
    within a bin is lost, but the open outer bins keep their mass where their values are,
    however long the tail.
    """
    positions, weights = [], []
    for counts, means, sign in ((reference, reference_means, 1.0), (current, current_means, -1.0)):
        present = counts > 0
        positions.append(means[present])
        weights.append(sign * counts[present] / counts.sum())
    points = np.concatenate(positions)
    order = np.argsort(points, kind="stable")
    gaps = np.cumsum(np.concatenate(weights)[order])
    return float(np.sum(np.abs(gaps[:-1]) * np.diff(points[order])))


def compute_jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (square root of the divergence, base 2), in [0, 1]."""
    p, q = _shares(reference), _shares(current)
    middle = (p + q) / 2
    divergence = (_relative_entropy(p, middle) + _relative_entropy(q, middle)) / 2
    return float(math.sqrt(max(divergence, 0.0)))


def compute_chi2_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """P-value of the chi-square test that both samples come from one distribution.

    The 2 x k contingency test on counts (not shares), bins empty on both sides left out;
    with a single bin left there is nothing to tell apart and the p-value is 1.
    """
    table = np.vstack([reference, current]).astype(np.float64)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table.sum(axis=1).min() == 0:
        return 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    return chi2_survival(statistic, table.shape[1] - 1)


def chi2_survival(statistic: float, degrees: int) -> float:
    """P(X >= statistic) for X chi-square with ``degrees`` degrees of freedom."""
    if statistic <= 0:
        return 1.0
    return _upper_gamma(degrees / 2, statistic / 2)


def _upper_gamma(a: float, x: float) -> float:
    """The regularized upper incomplete gamma function Q(a, x) (Numerical Recipes 6.2)."""
    scale = math.exp(-x + a * math.log(x) - math.lgamma(a))
    if x < a + 1:
        term = total = 1.0 / a
        shifted = a
        for _ in range(_ITERATIONS):
            shifted += 1
            term *= x / shifted
            total += term
            if abs(term) < abs(total) * _TOLERANCE:
                break
        return max(0.0, 1.0 - total * scale)
    # Lentz's continued fraction, which converges fast for x >= a + 1.
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    fraction = d
    for step in range(1, _ITERATIONS):
        numerator = -step * (step - a)
        b += 2
        d = numerator * d + b
        d = tiny if abs(d) < tiny else d
        c = b + numerator / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        fraction *= d * c
        if abs(d * c - 1) < _TOLERANCE:
            break
    return min(1.0, fraction * scale)


def _relative_entropy(p: np.ndarray, q: np.ndarray) -> float:
    """Kullback-Leibler divergence in bits; bins where ``p`` is 0 add nothing."""
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / q[present])))


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    shares: np.ndarray = counts / total if total else np.zeros(len(counts))
    return shares
