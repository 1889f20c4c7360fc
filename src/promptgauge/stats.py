"""Statistics behind comparisons, gates and monitoring (numpy; scipy only where noted).

Conventions shared by every function here:

- The first sample is the reference (baseline ``a``, earlier window ``x``), the
  second the candidate (``b``, later window ``y``). Differences and effect sizes
  are *second minus first*; ``alternative="less"`` means "the second is lower".
  Metrics are taken as higher-is-better: negate lower-is-better ones (latency,
  cost) before comparing.
- Missing values are NaN. Paired functions drop a row when either side is NaN;
  two-sample functions drop NaNs from each sample.
- No data (n=0 after dropping) gives NaN estimates, CIs and p-values; callers
  decide what "no data" means (``no_regression`` treats it as a failure).
- Randomised functions take ``seed``: an int or a ``numpy.random.Generator``.
  The same seed gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, islice
from math import comb, erf, erfc, inf, nan, sqrt
from statistics import NormalDist
from typing import Literal

import numpy as np

# scipy is imported only inside the functions that still need it: scipy.stats (~0.6 s to import,
# scipy.special's ~0.25 s included) for mann_whitney and Fisher's test in two_proportions_test,
# scipy.special for McNemar beyond _EXACT_BINOMIAL_MAX discordant rows. A comparison and a gate
# on ordinary data (every `promptgauge run` with a baseline) import neither.

__all__ = [
    "HypothesisResult",
    "McNemarResult",
    "PairedComparison",
    "RegressionCheck",
    "cliffs_delta",
    "cohens_dz",
    "compare_paired",
    "holm",
    "mann_whitney",
    "mcnemar_exact",
    "mean_ci",
    "no_regression",
    "odds_ratio",
    "paired_bootstrap_ci",
    "paired_proportion_diff_ci",
    "paired_score_test",
    "permutation_test_two_sample",
    "proportion_ci",
    "risk_difference",
    "simulate_paired_binary",
    "two_proportions_test",
]

Seed = int | np.random.Generator
Alternative = Literal["two-sided", "less", "greater"]

# Elements per block of resampled indices (8 MiB of int64 + 8 MiB of float64):
# bootstrap and permutation memory stays bounded whatever n and n_resamples are.
_BLOCK = 1 << 20
_NAN_CI = (nan, nan)


# ------------------------------------------------------------- normal distribution

_SQRT1_2 = sqrt(0.5)
_STANDARD_NORMAL = NormalDist()


def _ndtr(x: float) -> float:
    """Standard normal CDF by scipy.special.ndtr's formula (cephes): erf near 0, erfc in the tails.

    Agrees with scipy.special.ndtr to 3e-15 relative for |x| <= 8 and 3e-14 out to |x| = 30
    (tested): the two differ only in their erf/erfc (libm's here).
    """
    t = x * _SQRT1_2
    if abs(t) < _SQRT1_2:
        return 0.5 + 0.5 * erf(t)
    tail = 0.5 * erfc(abs(t))
    return 1.0 - tail if t > 0 else tail


def _ndtri(p: float) -> float:
    """Inverse of ``_ndtr``: Wichura's AS241 (statistics.NormalDist), within 1e-15 relative of
    scipy.special.ndtri (tested); -inf at 0, inf at 1."""
    if p <= 0.0:
        return -inf
    if p >= 1.0:
        return inf
    return _STANDARD_NORMAL.inv_cdf(p)


# Up to this many discordant rows McNemar sums the binomial tail in exact integers (< 10 ms; the
# result is the correctly rounded p-value, scipy.special.bdtr agrees to ~1e-11); beyond, it calls
# scipy.special.bdtr/bdtrc as it always did.
_EXACT_BINOMIAL_MAX = 2000


def _binom_half_cdf(k: int, m: int) -> float:
    """P(X <= k) for X ~ Binomial(m, 1/2): the exact sum of C(m, i) over 2^m, correctly rounded."""
    if k < 0:
        return 0.0
    if k >= m:
        return 1.0
    j = min(k, m - k - 1)  # sum the shorter side: sum_{i<=k} C(m, i) = 2^m - sum_{i<=m-k-1} C(m, i)
    term = total = 1
    for i in range(1, j + 1):
        term = term * (m - i + 1) // i
        total += term
    if j != k:
        total = (1 << m) - total
    return total / (1 << m)  # int / int is correctly rounded in Python, even for huge ints


# ---------------------------------------------------------------- input helpers


def _sample(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D sample, got shape {x.shape}")
    return x[~np.isnan(x)]


def _paired(a, b) -> tuple[np.ndarray, np.ndarray, int]:
    """Both samples with rows missing on either side dropped, and how many were dropped."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D and of equal length, got shapes {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    return a[keep], b[keep], int(keep.size - keep.sum())


def _binary(x: np.ndarray, name: str) -> np.ndarray:
    if not np.isin(x, (0.0, 1.0)).all():
        raise ValueError(f"{name} must hold pass/fail values (bool, 0 or 1; NaN for missing)")
    return x.astype(bool)


def _check_confidence(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return _ndtri(0.5 + confidence / 2)


def _check_alternative(alternative: str) -> None:
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")


def _check_resamples(n_resamples: int) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")


def _check_counts(k: int, n: int) -> None:
    if not (isinstance(k, (int, np.integer)) and isinstance(n, (int, np.integer)) and 0 <= k <= n):
        raise ValueError(f"expected integer counts with 0 <= k <= n, got k={k!r}, n={n!r}")


# ------------------------------------------------------------ confidence intervals


def _bootstrap_means(d: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of `n_resamples` resamples of d, drawn in memory-bounded blocks of indices."""
    n = d.size
    rows = max(1, _BLOCK // n)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        out[start:stop] = d[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def mean_ci(
    x,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    method: Literal["bca", "percentile"] = "bca",
    seed: Seed = 0,
) -> tuple[float, float]:
    """Bootstrap CI of the mean of one sample (e.g. an evaluator's scores).

    BCa by default (bias-corrected and accelerated: better coverage than the
    percentile interval for skewed, bounded metrics), ``method="percentile"``
    on request. Resamples are drawn in blocks of about 1M indices: 10k
    resamples of 1000 rows take ~0.05 s and ~16 MB. NaNs are dropped. n < 2
    gives (nan, nan): one value says nothing about variability. All-identical
    values give the zero-width (v, v): the bootstrap cannot see variability
    absent from the sample. For pass/fail data use ``proportion_ci``.
    """
    _check_confidence(confidence)
    _check_resamples(n_resamples)
    if method not in ("bca", "percentile"):
        raise ValueError(f"method must be 'bca' or 'percentile', got {method!r}")
    x = _sample(x)
    n = x.size
    if n < 2:
        return _NAN_CI
    boot = _bootstrap_means(x, n_resamples, np.random.default_rng(seed))
    alpha = 1.0 - confidence
    if method == "percentile":
        qs = np.array([alpha / 2, 1 - alpha / 2])
    else:  # BCa (Efron 1987)
        theta = x.mean()
        # Resamples equal to the estimate (common when most differences are 0) count half;
        # counted as "above", symmetric data would get a spurious bias correction.
        p0 = (np.count_nonzero(boot < theta) + 0.5 * np.count_nonzero(boot == theta)) / n_resamples
        z0 = _ndtri(float(np.clip(p0, 0.5 / n_resamples, 1 - 0.5 / n_resamples)))
        dev = x - x.mean()  # proportional to the jackknife deviations of the mean
        denom = 6.0 * np.sum(dev**2) ** 1.5
        acc = np.sum(dev**3) / denom if denom > 0 else 0.0
        z = np.array([_ndtri(alpha / 2), _ndtri(1 - alpha / 2)])
        qs = np.array([_ndtr(v) for v in (z0 + (z0 + z) / (1 - acc * (z0 + z))).tolist()])
    low, high = np.quantile(boot, qs)
    return float(low), float(high)


def paired_bootstrap_ci(
    a,
    b,
    *,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    method: Literal["bca", "percentile"] = "bca",
    seed: Seed = 0,
) -> tuple[float, float]:
    """Bootstrap CI of mean(b) - mean(a), resampling rows jointly (paired).

    Resampling rows jointly is resampling the row differences b - a, so this
    is ``mean_ci(b - a)`` after dropping rows missing on either side; see
    ``mean_ci`` for the method, cost and edge cases (n < 2: (nan, nan);
    identical differences d on every row: (d, d)).
    """
    a, b, _ = _paired(a, b)
    return mean_ci(b - a, confidence=confidence, n_resamples=n_resamples, method=method, seed=seed)


def _wilson(k: int, n: int, z: float) -> tuple[float, float]:
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the bounds are exactly 0 at k=0 and 1 at k=n; set them so rounding cannot move them
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def proportion_ci(k: int, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a pass rate of k passes out of n rows.

    Good coverage even at small n or rates near 0 and 1, where the normal
    (Wald) interval collapses; k=0 gives low=0 and k=n gives high=1, with a
    non-zero width. n=0 gives (nan, nan).
    """
    _check_counts(k, n)
    z = _check_confidence(confidence)
    return _NAN_CI if n == 0 else _wilson(int(k), int(n), z)


def paired_proportion_diff_ci(a_pass, b_pass, *, confidence: float = 0.95) -> tuple[float, float]:
    """CI of pass_rate(b) - pass_rate(a) on paired rows: Newcombe (1998) method 10.

    Square-and-add of the two Wilson intervals, corrected for the correlation
    of the pairs (phi with Newcombe's continuity adjustment). Closed form,
    never zero-width, within [-1, 1]. NaN rows are dropped pairwise; n=0 gives
    (nan, nan).
    """
    a, b, _ = _paired(a_pass, b_pass)
    a, b = _binary(a, "a_pass"), _binary(b, "b_pass")
    z = _check_confidence(confidence)
    n = a.size
    if n == 0:
        return _NAN_CI
    both = int(np.count_nonzero(a & b))
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(~a & b))
    neither = n - both - only_a - only_b
    k_a, k_b = both + only_a, both + only_b
    p_a, p_b = k_a / n, k_b / n
    lo_a, hi_a = _wilson(k_a, n, z)
    lo_b, hi_b = _wilson(k_b, n, z)
    margins = k_a * (n - k_a) * k_b * (n - k_b)
    cross = both * neither - only_a * only_b
    if margins == 0 or 0 <= cross <= n / 2:
        phi = 0.0
    else:
        phi = (cross - n / 2 if cross > 0 else cross) / sqrt(margins)
    diff = p_b - p_a
    down = sqrt(max(0.0, (p_b - lo_b) ** 2 - 2 * phi * (p_b - lo_b) * (hi_a - p_a) + (hi_a - p_a) ** 2))
    up = sqrt(max(0.0, (hi_b - p_b) ** 2 - 2 * phi * (hi_b - p_b) * (p_a - lo_a) + (p_a - lo_a) ** 2))
    return max(-1.0, diff - down), min(1.0, diff + up)


# ------------------------------------------------------------------ paired tests


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test on paired pass/fail rows."""

    n: int  # paired rows used
    b01: int  # a failed, b passed (improvements)
    b10: int  # a passed, b failed (regressions)
    pvalue: float  # two-sided
    pvalue_less: float  # H1: b's pass rate is lower (b worse)
    pvalue_greater: float  # H1: b's pass rate is higher (b better)
    odds_ratio: float  # b01 / b10, +0.5 to both when either is 0 (Haldane)


def mcnemar_exact(a_pass, b_pass) -> McNemarResult:
    """Exact (conditional binomial) McNemar test.

    Only discordant rows carry information: under H0, b10 ~ Binomial(b01 + b10,
    1/2). Two-sided p = min(1, 2 * smaller tail). The test is exact, hence
    slightly conservative (size <= alpha at every n). No discordant rows (all
    ties) gives p = 1 everywhere and odds ratio 1; n=0 gives NaN p-values.
    """
    a, b, _ = _paired(a_pass, b_pass)
    a, b = _binary(a, "a_pass"), _binary(b, "b_pass")
    b01 = int(np.count_nonzero(~a & b))
    b10 = int(np.count_nonzero(a & ~b))
    m = b01 + b10
    if a.size == 0:
        p_less = p_greater = p_two = nan
    else:
        # P(X >= b10) and P(X <= b10) for X ~ Binomial(m, 1/2)
        if m <= _EXACT_BINOMIAL_MAX:  # P(X >= b10) = P(X <= m - b10) by symmetry
            p_less, p_greater = _binom_half_cdf(m - b10, m), _binom_half_cdf(b10, m)
        else:
            from scipy import special  # deferred: ~0.25 s to import

            p_less = float(special.bdtrc(b10 - 1, m, 0.5)) if b10 > 0 else 1.0
            p_greater = float(special.bdtr(b10, m, 0.5))
        p_two = min(1.0, 2 * min(p_less, p_greater))
    ratio = (b01 + 0.5) / (b10 + 0.5) if 0 in (b01, b10) else b01 / b10
    return McNemarResult(a.size, b01, b10, p_two, p_less, p_greater, ratio)


@dataclass(frozen=True)
class HypothesisResult:
    """Outcome of a significance test."""

    test: str
    statistic: float
    pvalue: float
    alternative: str
    effect_size: float
    effect_name: str


def _tail_hits(null: np.ndarray, observed: float, tol: float, alternative: str) -> int:
    """How many null statistics are at least as extreme as the observed one (within tol)."""
    if alternative == "less":
        return int(np.count_nonzero(null <= observed + tol))
    if alternative == "greater":
        return int(np.count_nonzero(null >= observed - tol))
    return int(np.count_nonzero(np.abs(null) >= abs(observed) - tol))


def _sign_flip_pvalue(d: np.ndarray, alternative: str, n_resamples: int, rng: np.random.Generator) -> float:
    """Paired permutation test on sum(d): flip the sign of each nonzero difference.

    Exact (all 2^k sign patterns) when 2^k <= n_resamples, otherwise Monte
    Carlo with p = (1 + hits) / (1 + n_resamples), which is never below the
    true p-value (Phipson & Smyth 2010).
    """
    d = d[d != 0]
    k = d.size
    if k == 0:
        return 1.0
    observed = d.sum()
    tol = 1e-9 * np.abs(d).sum()
    exact = k < 63 and 2**k <= n_resamples
    total = 2**k if exact else n_resamples
    rows = max(1, _BLOCK // k)
    hits = 0
    for start in range(0, total, rows):
        stop = min(start + rows, total)
        if exact:  # row j flips the differences at the set bits of j
            bits = (np.arange(start, stop)[:, None] >> np.arange(k)) & 1
        else:
            bits = rng.integers(0, 2, size=(stop - start, k))
        hits += _tail_hits((1 - 2 * bits) @ d, observed, tol, alternative)
    return hits / total if exact else (1 + hits) / (1 + total)


# scipy's wilcoxon(method="auto") rule, kept so p-values stay what scipy >= 1.13 gave: the exact
# null distribution up to 50 nonzero differences without ties, the exhaustive sign-flip
# permutation test up to 13 with ties (its default 9999 resamples cover all 2^13 patterns), the
# tie-corrected normal approximation otherwise. (scipy < 1.13 used the normal approximation for
# any ties; the result no longer depends on the installed scipy.)
_WILCOXON_EXACT_MAX = 50
_WILCOXON_EXACT_MAX_TIES = 13


def _average_ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks 1..n of x with ties given their average rank (scipy's ``rankdata``), and the tie-group sizes."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.concatenate(([True], xs[1:] != xs[:-1])))
    sizes = np.diff(np.append(starts, x.size))
    ranks = np.empty(x.size)
    ranks[order] = np.repeat(starts + (sizes + 1) / 2, sizes)
    return ranks, sizes


def _signed_rank_counts(doubled_ranks: np.ndarray) -> np.ndarray:
    """counts[s] = how many of the 2^n sign patterns give a sum s of the positive doubled ranks.

    Average ranks are multiples of 1/2, so doubled they are integers and the null distribution of
    W+ (the sign-flip permutation distribution, exact with ties too) is a subset-sum count: one
    O(n * n(n+1)) dynamic programme instead of 2^n sign patterns. Counts are exact in int64
    (at most 2^n; callers keep n <= 50).
    """
    counts = np.zeros(int(doubled_ranks.sum()) + 1, dtype=np.int64)
    counts[0] = 1
    top = 0  # largest sum reachable so far
    for r in doubled_ranks.tolist():
        counts[r : top + r + 1] += counts[: top + 1].copy()  # patterns where this rank's sign is +
        top += r
    return counts


def _wilcoxon(nonzero: np.ndarray) -> tuple[float, float, float, float]:
    """Signed-rank test of nonzero differences: (W+, p two-sided, p less, p greater).

    The p-values of ``scipy.stats.wilcoxon(nonzero, alternative=...)`` (method="auto",
    zero_method="wilcox", correction=False) under scipy >= 1.13, without its per-resample Python
    loop: with ties scipy ran a 2^n-resample ``permutation_test`` calling the statistic once per
    sign pattern (~0.1 s per call at n=13). Small n: the exact null (``_signed_rank_counts``);
    counts / 2^n are exact in floating point (n <= 50), so these p-values equal scipy's bit for
    bit. Two-sided p = min(1, 2 * smaller tail), as scipy. Large n, or ties with n > 13: the
    normal approximation of W+ with the tie correction of its variance, as scipy computes it
    (equal up to ``_ndtr``, ~1e-15).
    """
    n = nonzero.size
    ranks, sizes = _average_ranks(np.abs(nonzero))
    w_plus = float(np.sum(ranks[nonzero > 0]))
    ties = bool((sizes > 1).any())
    if n <= (_WILCOXON_EXACT_MAX_TIES if ties else _WILCOXON_EXACT_MAX):
        cum = np.cumsum(_signed_rank_counts((2 * ranks).astype(np.int64)))
        s = round(2 * w_plus)
        total = float(cum[-1])  # 2^n
        p_less = float(cum[s]) / total
        p_greater = float(cum[-1] - (cum[s - 1] if s > 0 else 0)) / total
        return w_plus, min(1.0, 2 * min(p_less, p_greater)), p_less, p_greater
    count = float(n)
    mean = count * (count + 1.0) * 0.25
    var24 = count * (count + 1.0) * (2.0 * count + 1.0) - float(np.sum(sizes**3 - sizes)) / 2
    z = (w_plus - mean) / sqrt(var24 / 24)
    return w_plus, 2 * _ndtr(-abs(z)), _ndtr(z), _ndtr(-z)


def paired_score_test(
    a,
    b,
    *,
    method: Literal["wilcoxon", "permutation"] = "wilcoxon",
    alternative: Alternative = "two-sided",
    n_resamples: int = 10_000,
    seed: Seed = 0,
) -> HypothesisResult:
    """Paired test on scores: does b differ from a row by row?

    ``"wilcoxon"``: signed-rank test; zero differences are dropped
    (zero_method="wilcox", like McNemar ignores concordant rows) and ties
    among the rest get average ranks; statistic = W+ of b - a. Exact for up
    to 50 nonzero differences without ties and up to 13 with ties (the
    sign-flip permutation distribution of W+, by dynamic programming), else
    the tie-corrected normal approximation: the p-values of scipy's
    ``wilcoxon(method="auto")`` (scipy >= 1.13), computed in numpy.
    ``"permutation"``: sign-flip test on the mean difference, exact when the
    nonzero differences allow at most ``n_resamples`` sign patterns, otherwise
    Monte Carlo (seeded); statistic = mean(b - a).
    NaN rows are dropped pairwise. All differences zero (identical variants)
    gives p = 1; n=0 gives p = NaN. Effect size: Cohen's d_z.
    """
    _check_alternative(alternative)
    _check_resamples(n_resamples)
    a, b, _ = _paired(a, b)
    d = b - a
    dz = cohens_dz(a, b)
    if method == "wilcoxon":
        nonzero = d[d != 0]
        if nonzero.size == 0:
            stat, p = 0.0, (nan if d.size == 0 else 1.0)
        else:
            stat, p_two, p_less, p_greater = _wilcoxon(nonzero)
            p = {"two-sided": p_two, "less": p_less, "greater": p_greater}[alternative]
        return HypothesisResult("wilcoxon", stat, p, alternative, dz, "cohens_dz")
    if method == "permutation":
        if d.size == 0:
            return HypothesisResult("permutation", nan, nan, alternative, dz, "cohens_dz")
        p = _sign_flip_pvalue(d, alternative, n_resamples, np.random.default_rng(seed))
        return HypothesisResult("permutation", float(d.mean()), p, alternative, dz, "cohens_dz")
    raise ValueError(f"method must be 'wilcoxon' or 'permutation', got {method!r}")


def holm(pvalues) -> np.ndarray:
    """Holm-Bonferroni step-down adjusted p-values, in the input order.

    Reject hypothesis i at family-wise level alpha iff adjusted[i] <= alpha.
    Adjusted values are monotone in the raw ones and capped at 1. NaN entries
    (tests that could not run) stay NaN and do not count towards the family
    size. An empty input gives an empty array.
    """
    p = np.asarray(pvalues, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of p-values, got shape {p.shape}")
    valid = ~np.isnan(p)
    if ((p[valid] < 0) | (p[valid] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    q = p[valid]
    m = q.size
    order = np.argsort(q, kind="stable")
    stepped = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * q[order]))
    adjusted = np.empty(m)
    adjusted[order] = stepped
    out = np.full(p.shape, nan)
    out[valid] = adjusted
    return out


# ------------------------------------------------------------------ effect sizes


def cohens_dz(a, b) -> float:
    """Cohen's d_z for paired scores: mean(b - a) / sd(b - a) (ddof=1).

    NaN rows are dropped pairwise. n < 2 gives NaN. Constant differences give
    0 when they are all zero, else ±inf (a shift with no noise).
    """
    a, b, _ = _paired(a, b)
    d = b - a
    if d.size < 2:
        return nan
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if mean == 0 else float(np.copysign(np.inf, mean))
    return mean / sd


def cliffs_delta(x, y) -> float:
    """Cliff's delta of y relative to x: P(y > x) - P(y < x), in [-1, 1].

    Positive when y tends to be larger (second minus first, as everywhere in
    this module). Equals the rank-biserial correlation of the Mann-Whitney U
    test; ties count half. NaNs are dropped per sample; an empty sample gives
    NaN; all values identical give 0.
    """
    x, y = _sample(x), _sample(y)
    nx, ny = x.size, y.size
    if nx == 0 or ny == 0:
        return nan
    ranks, _ = _average_ranks(np.concatenate([x, y]))
    u_y = ranks[nx:].sum() - ny * (ny + 1) / 2
    return float(2 * u_y / (nx * ny) - 1)


def risk_difference(k1: int, n1: int, k2: int, n2: int) -> float:
    """Pass-rate difference k2/n2 - k1/n1; NaN when either group is empty."""
    _check_counts(k1, n1)
    _check_counts(k2, n2)
    return nan if n1 == 0 or n2 == 0 else k2 / n2 - k1 / n1


def odds_ratio(k1: int, n1: int, k2: int, n2: int) -> float:
    """Odds of passing in group 2 over group 1: [k2/(n2-k2)] / [k1/(n1-k1)].

    When any of the four cells is 0, 0.5 is added to all of them
    (Haldane-Anscombe), so the ratio stays finite and positive. NaN when
    either group is empty.
    """
    _check_counts(k1, n1)
    _check_counts(k2, n2)
    if n1 == 0 or n2 == 0:
        return nan
    cells = np.array([k2, n2 - k2, k1, n1 - k1], dtype=float)
    if (cells == 0).any():
        cells += 0.5
    return float(cells[0] * cells[3] / (cells[1] * cells[2]))


# ------------------------------------------------------- comparison and the gate


@dataclass(frozen=True)
class PairedComparison:
    """Candidate b against baseline a on the same rows."""

    kind: str  # "binary" (pass/fail) or "score"
    n: int  # paired rows used
    n_missing: int  # rows dropped because a or b was NaN
    mean_a: float
    mean_b: float
    delta: float  # mean_b - mean_a
    ci_low: float  # CI of delta
    ci_high: float
    confidence: float
    pvalue: float  # two-sided
    pvalue_regression: float  # one-sided, H1: b worse than a
    test: str
    effect_size: float
    effect_name: str


def compare_paired(
    a,
    b,
    *,
    kind: Literal["binary", "score"],
    method: Literal["mcnemar", "wilcoxon", "permutation"] | None = None,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: Seed = 0,
) -> PairedComparison:
    """Compare candidate ``b`` with baseline ``a`` on paired rows.

    ``kind="binary"``: exact McNemar test, Newcombe CI of the pass-rate
    difference, paired odds ratio b01/b10 as effect size; deterministic.
    ``kind="score"``: Wilcoxon signed-rank (or ``method="permutation"``),
    BCa paired bootstrap CI of the mean difference with ``n_resamples`` and
    ``seed``, Cohen's d_z as effect size.
    NaN rows are dropped pairwise and counted in ``n_missing``; n=0 gives NaN
    means, CI and p-values. For several metrics, adjust the
    ``pvalue_regression`` values with ``holm`` and put them back with
    ``dataclasses.replace`` before ``no_regression``.
    """
    a, b, missing = _paired(a, b)
    n = a.size
    if kind == "binary":
        if method not in (None, "mcnemar"):
            raise ValueError(f"kind='binary' uses method='mcnemar', got {method!r}")
        res = mcnemar_exact(a, b)
        low, high = paired_proportion_diff_ci(a, b, confidence=confidence)
        pvalue, pvalue_regression, test = res.pvalue, res.pvalue_less, "mcnemar-exact"
        effect_size, effect_name = res.odds_ratio, "paired_odds_ratio"
    elif kind == "score":
        method = method or "wilcoxon"
        if method not in ("wilcoxon", "permutation"):
            raise ValueError(f"kind='score' uses method='wilcoxon' or 'permutation', got {method!r}")
        two = paired_score_test(a, b, method=method, n_resamples=n_resamples, seed=seed)
        less = paired_score_test(a, b, method=method, alternative="less", n_resamples=n_resamples, seed=seed)
        low, high = paired_bootstrap_ci(a, b, confidence=confidence, n_resamples=n_resamples, seed=seed)
        pvalue, pvalue_regression, test = two.pvalue, less.pvalue, two.test
        effect_size, effect_name = two.effect_size, two.effect_name
    else:
        raise ValueError(f"kind must be 'binary' or 'score', got {kind!r}")
    mean_a = float(a.mean()) if n else nan
    mean_b = float(b.mean()) if n else nan
    return PairedComparison(
        kind=kind,
        n=n,
        n_missing=missing,
        mean_a=mean_a,
        mean_b=mean_b,
        delta=mean_b - mean_a,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        pvalue=pvalue,
        pvalue_regression=pvalue_regression,
        test=test,
        effect_size=effect_size,
        effect_name=effect_name,
    )


@dataclass(frozen=True)
class RegressionCheck:
    """Verdict of ``no_regression``; truthy when there is no regression."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def no_regression(comparison: PairedComparison, *, max_drop: float = 0.0, alpha: float = 0.05) -> RegressionCheck:
    """Is the candidate free of a real regression against the baseline?

    A regression is declared iff BOTH
      (1) the one-sided test says b is worse: ``pvalue_regression < alpha``, and
      (2) the observed drop ``mean_a - mean_b`` exceeds ``max_drop``
          (the tolerance below which a drop does not matter in practice).
    No paired rows (n=0) is also a failure: absence of a regression cannot be
    shown without data.

    Guarantees. Without a real difference (A/A), a regression is declared with
    probability <= P(p < alpha) <= alpha, since the tests are valid (exact
    McNemar and the permutation test at any n; Wilcoxon up to its normal
    approximation). Power depends on how often the variants disagree, not
    only on n: under ``simulate_paired_binary`` with 90 % A/A agreement, a
    real 5-point drop at n=400 is caught ~85 % of the time at alpha=0.05 (at
    85 % agreement ~71 %); see benchmarks/stats_power.py.

    Alternatives considered: (a) non-inferiority, pass only if
    ``ci_low > -max_drop``: puts the burden of proof on the candidate, so A/A
    fails whenever n is too small to prove closeness (false alarms well above
    alpha at small n); right for high-stakes promotion, wrong for an alarm.
    (b) Shifted null, flag only if the drop is significantly larger than
    ``max_drop`` (``ci_high < -max_drop``): controls errors for drops inside
    the tolerance too, but loses much power. (c) Mid-p McNemar: 2-5 points
    more power, but its size is not guaranteed <= alpha. (d) Observed drop
    alone: the A/A false-alarm rate then depends on n and noise.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not max_drop >= 0.0:
        raise ValueError(f"max_drop must be >= 0, got {max_drop}")
    c = comparison
    if c.n == 0:
        return RegressionCheck(False, "no paired rows to compare (every row missing on one side)")
    drop = -c.delta
    where = f"{c.mean_a:.4g} -> {c.mean_b:.4g}, {c.test}, n={c.n}"
    if c.pvalue_regression < alpha:
        if drop > max_drop:
            return RegressionCheck(
                False,
                f"regression: dropped {drop:.4g} > max_drop {max_drop:g} ({where}); "
                f"one-sided p={c.pvalue_regression:.3g} < alpha {alpha:g}",
            )
        return RegressionCheck(
            True,
            f"significant drop of {drop:.4g} is within max_drop {max_drop:g} ({where}); p={c.pvalue_regression:.3g}",
        )
    return RegressionCheck(
        True, f"no significant drop ({where}); one-sided p={c.pvalue_regression:.3g} >= alpha {alpha:g}"
    )


def simulate_paired_binary(
    n: int,
    *,
    pass_rate: float = 0.75,
    agreement: float = 0.90,
    drop: float = 0.0,
    seed: Seed = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw paired pass/fail outcomes (a, b) from the model behind ``no_regression``'s claims.

    Rows vary in difficulty: row i passes with a latent probability p_i ~
    Beta(pass_rate * c, (1 - pass_rate) * c); a and b each pass row i
    independently with p_i. So with drop=0 both have the expected pass rate
    ``pass_rate`` (A/A) and agree on a fraction ``agreement`` of rows in
    expectation (c is solved from E[2 p (1 - p)] = 1 - agreement; the higher
    the agreement, the more rows are always passed or always failed).
    A real drop then makes b fail round(drop * n) more rows, all of them rows
    where a passed: they are picked at random among rows both passed.
    """
    disagreement = 1.0 - agreement
    ceiling = 2 * pass_rate * (1 - pass_rate)
    if not 0.0 < disagreement < ceiling:
        raise ValueError(f"agreement must lie in ({1 - ceiling:.4g}, 1) for pass_rate={pass_rate}, got {agreement}")
    rng = np.random.default_rng(seed)
    concentration = 1.0 / (ceiling / disagreement - 1.0)
    p = rng.beta(pass_rate * concentration, (1 - pass_rate) * concentration, size=n)
    a = rng.random(n) < p
    b = rng.random(n) < p
    n_drop = round(drop * n)
    candidates = np.flatnonzero(a & b)
    if n_drop > candidates.size:
        raise ValueError(f"cannot drop {n_drop} rows: only {candidates.size} rows passed on both sides")
    b[rng.choice(candidates, size=n_drop, replace=False)] = False
    return a, b


# ------------------------------------------------- two-sample tests (monitoring)


def mann_whitney(x, y, *, alternative: Alternative = "two-sided") -> HypothesisResult:
    """Mann-Whitney U test of window y against window x (unpaired).

    ``alternative="less"``: y tends to be lower. statistic = U of y
    (scipy's method="auto": exact for small samples without ties, else the
    tie-corrected normal approximation). Effect size: Cliff's delta of y vs x
    (= rank-biserial correlation). NaNs are dropped per sample; an empty
    sample gives NaN; all values identical give p = 1.
    """
    _check_alternative(alternative)
    x, y = _sample(x), _sample(y)
    delta = cliffs_delta(x, y)
    if x.size == 0 or y.size == 0:
        return HypothesisResult("mann-whitney", nan, nan, alternative, delta, "cliffs_delta")
    from scipy import stats as _st  # deferred: ~0.6 s to import, needed only here and for Fisher

    res = _st.mannwhitneyu(y, x, alternative=alternative)
    return HypothesisResult("mann-whitney", float(res.statistic), float(res.pvalue), alternative, delta, "cliffs_delta")


def two_proportions_test(
    k1: int,
    n1: int,
    k2: int,
    n2: int,
    *,
    alternative: Alternative = "two-sided",
    method: Literal["auto", "z", "fisher"] = "auto",
) -> HypothesisResult:
    """Compare pass rates k1/n1 (window 1) and k2/n2 (window 2), unpaired.

    ``"z"``: pooled two-proportion z-test (statistic = z). ``"fisher"``:
    Fisher's exact test (statistic = sample odds ratio). ``"auto"`` uses
    Fisher when any expected cell count is below 5, else z.
    ``alternative="less"``: window 2 has the lower pass rate. Effect size:
    risk difference k2/n2 - k1/n1 (see also ``odds_ratio``). An empty window
    gives NaN; both rates 0 or both 1 give p = 1 with the z-test.
    """
    _check_alternative(alternative)
    _check_counts(k1, n1)
    _check_counts(k2, n2)
    if method not in ("auto", "z", "fisher"):
        raise ValueError(f"method must be 'auto', 'z' or 'fisher', got {method!r}")
    rd = risk_difference(k1, n1, k2, n2)
    if n1 == 0 or n2 == 0:
        return HypothesisResult(method, nan, nan, alternative, rd, "risk_difference")
    pooled = (k1 + k2) / (n1 + n2)
    if method == "auto":
        expected = np.outer([n1, n2], [pooled, 1 - pooled])
        method = "fisher" if expected.min() < 5 else "z"
    if method == "fisher":
        from scipy import stats as _st  # deferred, as in mann_whitney

        res = _st.fisher_exact([[k2, n2 - k2], [k1, n1 - k1]], alternative=alternative)
        return HypothesisResult("fisher", float(res.statistic), float(res.pvalue), alternative, rd, "risk_difference")
    se = sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return HypothesisResult("z", 0.0, 1.0, alternative, rd, "risk_difference")
    z = rd / se
    p = {"less": _ndtr(z), "greater": _ndtr(-z), "two-sided": 2 * _ndtr(-abs(z))}[alternative]
    return HypothesisResult("z", z, float(p), alternative, rd, "risk_difference")


def permutation_test_two_sample(
    x,
    y,
    *,
    alternative: Alternative = "two-sided",
    n_resamples: int = 10_000,
    seed: Seed = 0,
) -> HypothesisResult:
    """Permutation test on mean(y) - mean(x) for unpaired windows.

    Exact (all C(nx + ny, ny) splits) when that count is at most
    ``n_resamples``, otherwise Monte Carlo with p = (1 + hits) /
    (1 + n_resamples). Two-sided compares |difference|. Effect size: Cliff's
    delta. NaNs are dropped per sample; an empty sample gives NaN; all values
    identical give p = 1.
    """
    _check_alternative(alternative)
    _check_resamples(n_resamples)
    x, y = _sample(x), _sample(y)
    delta = cliffs_delta(x, y)
    nx, ny = x.size, y.size
    if nx == 0 or ny == 0:
        return HypothesisResult("permutation", nan, nan, alternative, delta, "cliffs_delta")
    pooled = np.concatenate([x, y])
    total_sum = pooled.sum()

    def diff(sum_y):  # mean(y) - mean(x) from the sum of the elements labelled y
        return sum_y / ny - (total_sum - sum_y) / nx

    observed = diff(y.sum())
    tol = 1e-9 * (np.abs(pooled).sum() / min(nx, ny))
    n_splits = comb(nx + ny, ny)
    exact = n_splits <= n_resamples
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK // pooled.size)
    total = n_splits if exact else n_resamples
    labelled = combinations(range(pooled.size), ny) if exact else None
    hits = 0
    for start in range(0, total, rows):
        count = min(rows, total - start)
        if exact:
            idx = np.array(list(islice(labelled, count)))
        else:
            idx = rng.permuted(np.tile(np.arange(pooled.size), (count, 1)), axis=1)[:, :ny]
        hits += _tail_hits(diff(pooled[idx].sum(axis=1)), observed, tol, alternative)
    p = hits / total if exact else (1 + hits) / (1 + total)
    return HypothesisResult("permutation", float(observed), float(p), alternative, delta, "cliffs_delta")


# ---------------------------------------------------------------- pairwise preferences


def sign_test(wins: int, losses: int) -> McNemarResult:
    """Exact sign test of *wins* against *losses* (ties dropped): :func:`mcnemar_exact` on the decisive rows,
    a win being a row the candidate (b) passed and the baseline (a) failed. ``pvalue_greater``: H1 the
    candidate is preferred; ``pvalue_less``: H1 the baseline is."""
    _check_counts(wins, wins + losses)
    a = np.array([False] * wins + [True] * losses, dtype=bool)
    return mcnemar_exact(a, ~a)


def win_rate_ci(wins: int, ties: int, losses: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson interval of a win rate that counts a tie as half a win, ``(wins + ties / 2) / n``.

    Conservative with ties: a tie's variance (0) is below a Bernoulli's, and the interval is the
    Wilson interval of a proportion with the same mean. n = 0 gives (nan, nan); all wins give a high
    bound of 1 with a low bound below it, as :func:`proportion_ci` does.
    """
    n = wins + ties + losses
    _check_counts(wins, n)
    z = _check_confidence(confidence)
    return _NAN_CI if n == 0 else _wilson(wins + ties / 2, n, z)
