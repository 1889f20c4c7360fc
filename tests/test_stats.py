"""Tests for promptgauge.stats: known values, reproducibility, edge cases, and
simulations of the false-regression rate and power of ``no_regression``."""

import dataclasses
import math
import tracemalloc
from fractions import Fraction
from itertools import combinations, product

import numpy as np
import pytest
from scipy import stats as st

from promptgauge import stats as S


def paired_table(both: int, only_a: int, only_b: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    """Pass/fail rows for a paired 2x2 table (both pass, only a, only b, neither)."""
    a = np.repeat([1, 1, 0, 0], [both, only_a, only_b, neither])
    b = np.repeat([1, 0, 1, 0], [both, only_a, only_b, neither])
    return a, b


def mc_upper(n_sims: int, rate: float) -> float:
    """Largest false-alarm fraction a procedure with true rate `rate` exceeds only
    with probability <= 0.1 % over n_sims independent simulations."""
    return st.binom.ppf(0.999, n_sims, rate) / n_sims


def mc_lower_bound(hits: int, n_sims: int) -> float:
    """One-sided 99.9 % Clopper-Pearson lower bound of a detection rate."""
    return st.beta.ppf(0.001, hits, n_sims - hits + 1)


# ------------------------------------------------------------------ proportions


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table II, method 3
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_proportion_ci_matches_published_wilson_intervals(k, n, low, high):
    assert S.proportion_ci(k, n) == pytest.approx((low, high), abs=5e-5)


def test_proportion_ci_matches_scipy_wilson_and_touches_the_bounds():
    for k, n, conf in [(3, 7, 0.9), (50, 60, 0.99), (1, 1, 0.95)]:
        ref = st.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
        assert S.proportion_ci(k, n, confidence=conf) == pytest.approx((ref.low, ref.high), rel=1e-12)
    low, high = S.proportion_ci(0, 10)
    assert low == 0.0 and 0 < high < 1
    low, high = S.proportion_ci(10, 10)
    assert high == 1.0 and 0 < low < 1


def test_proportion_ci_edge_cases_and_errors():
    assert all(math.isnan(v) for v in S.proportion_ci(0, 0))
    for k, n in [(5, 4), (-1, 3), (1.5, 3)]:
        with pytest.raises(ValueError):
            S.proportion_ci(k, n)
    with pytest.raises(ValueError):
        S.proportion_ci(1, 2, confidence=1.0)


def test_paired_proportion_diff_ci_matches_published_newcombe_interval():
    # Cavo et al. (2012) in Fagerland, Lydersen & Laake, "Statistical Analysis of
    # Contingency Tables", ch. 8: estimate -0.0621, Newcombe 95 % CI -0.1186 to -0.0046.
    a, b = paired_table(both=59, only_a=16, only_b=6, neither=80)
    assert S.paired_proportion_diff_ci(a, b) == pytest.approx((-0.1186, -0.0046), abs=5e-5)
    low, high = S.paired_proportion_diff_ci(b, a)  # swapping the variants mirrors the interval
    assert (low, high) == pytest.approx((0.0046, 0.1186), abs=5e-5)


def test_paired_proportion_diff_ci_ignores_weak_positive_correlation():
    # Bentur et al. (2009): ad - bc = 1*12 - 7*1 = 5 <= n/2, so Newcombe's corrected phi
    # is 0 and the interval is the plain square-and-add of the two Wilson intervals.
    a, b = paired_table(both=1, only_a=7, only_b=1, neither=12)
    (lo_a, hi_a), (lo_b, hi_b) = S.proportion_ci(8, 21), S.proportion_ci(2, 21)
    p_a, p_b = 8 / 21, 2 / 21
    expected = (
        p_b - p_a - math.hypot(p_b - lo_b, hi_a - p_a),
        p_b - p_a + math.hypot(hi_b - p_b, p_a - lo_a),
    )
    assert S.paired_proportion_diff_ci(a, b) == pytest.approx(expected, rel=1e-12)


def test_paired_proportion_diff_ci_edge_cases():
    a, b = paired_table(both=30, only_a=0, only_b=0, neither=10)  # all rows agree
    low, high = S.paired_proportion_diff_ci(a, b)
    assert low < 0 < high
    a, b = paired_table(both=0, only_a=0, only_b=5, neither=0)  # b passes all, a none
    assert S.paired_proportion_diff_ci(a, b)[1] == 1.0
    assert all(math.isnan(v) for v in S.paired_proportion_diff_ci([], []))
    with pytest.raises(ValueError, match="pass/fail"):
        S.paired_proportion_diff_ci([0, 1], [0, 0.5])


# ---------------------------------------------------------------------- McNemar


def test_mcnemar_exact_textbook_examples():
    # Bentur et al. (2009), as analysed by Fagerland, Lydersen & Laake (2013):
    # discordant pairs 1 and 7, exact conditional p = 2 * 9/256 = 0.0703.
    a, b = paired_table(both=1, only_a=7, only_b=1, neither=12)
    res = S.mcnemar_exact(a, b)
    assert (res.n, res.b01, res.b10) == (21, 1, 7)
    assert res.pvalue == pytest.approx(18 / 256, rel=1e-12)
    assert res.pvalue_less == pytest.approx(9 / 256, rel=1e-12)  # P(X >= 7), X ~ Bin(8, 1/2)
    assert res.pvalue_greater == pytest.approx(255 / 256, rel=1e-12)
    assert res.odds_ratio == pytest.approx(1 / 7)
    # Cavo et al. (2012): discordant 6 and 16, exact conditional p = 0.0525
    res = S.mcnemar_exact(*paired_table(both=59, only_a=16, only_b=6, neither=80))
    assert res.pvalue == pytest.approx(0.0525, abs=5e-5)


def test_mcnemar_exact_agrees_with_scipy_binomtest():
    for b01, b10 in product([0, 1, 4, 17], [0, 2, 9, 30]):
        m = b01 + b10
        if m == 0:  # no discordant rows: covered in the edge cases
            continue
        res = S.mcnemar_exact(*paired_table(both=5, only_a=b10, only_b=b01, neither=3))
        assert res.pvalue == pytest.approx(st.binomtest(b10, m).pvalue, rel=1e-9)
        assert res.pvalue_less == pytest.approx(st.binomtest(b10, m, alternative="greater").pvalue, rel=1e-9)
        assert res.pvalue_greater == pytest.approx(st.binomtest(b10, m, alternative="less").pvalue, rel=1e-9)


def test_mcnemar_exact_edge_cases():
    res = S.mcnemar_exact(*paired_table(both=10, only_a=0, only_b=0, neither=4))
    assert (res.pvalue, res.pvalue_less, res.pvalue_greater, res.odds_ratio) == (1.0, 1.0, 1.0, 1.0)
    assert math.isnan(S.mcnemar_exact([], []).pvalue)
    res = S.mcnemar_exact([1, np.nan, 1, 0], [0, 1, 0, np.nan])  # NaN rows dropped pairwise
    assert (res.n, res.b01, res.b10) == (2, 0, 2)
    assert res.odds_ratio == pytest.approx(0.5 / 2.5)  # Haldane correction
    with pytest.raises(ValueError, match="pass/fail"):
        S.mcnemar_exact([0, 2], [1, 1])
    with pytest.raises(ValueError, match="equal length"):
        S.mcnemar_exact([0, 1], [1])


# -------------------------------------------------------------- paired scores

# Hollander & Wolfe (1999), also in scipy's wilcoxon docs: exact two-sided p = 0.0413
HW_DIFFS = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], dtype=float)


def test_wilcoxon_known_value_and_orientation():
    a = np.zeros(HW_DIFFS.size)
    res = S.paired_score_test(a, HW_DIFFS)
    assert res.test == "wilcoxon"
    assert res.pvalue == pytest.approx(0.0413, abs=5e-5)
    assert res.statistic == 96  # W+ = 120 - ranks of 48 and 67 (10 + 14)
    assert S.paired_score_test(a, HW_DIFFS, alternative="greater").pvalue < 0.05  # b higher
    assert S.paired_score_test(a, HW_DIFFS, alternative="less").pvalue > 0.95
    assert S.paired_score_test(HW_DIFFS, a, alternative="less").pvalue < 0.05  # swapped: b lower


def test_wilcoxon_drops_zero_differences_and_missing_rows():
    rng = np.random.default_rng(5)
    a = rng.random(80)
    b = np.where(rng.random(80) < 0.5, a, a + rng.normal(-0.05, 0.1, 80))
    nonzero = (b - a)[b != a]
    ref = st.wilcoxon(nonzero, alternative="less").pvalue
    assert S.paired_score_test(a, b, alternative="less").pvalue == pytest.approx(ref, rel=1e-12)
    a_missing, b_missing = np.append(a, np.nan), np.append(b, 0.3)
    assert S.paired_score_test(a_missing, b_missing, alternative="less").pvalue == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("method", ["wilcoxon", "permutation"])
def test_paired_score_test_identical_and_empty(method):
    x = [0.2, 0.5, 0.5, 0.9]
    assert S.paired_score_test(x, x, method=method).pvalue == 1.0
    assert math.isnan(S.paired_score_test([], [], method=method).pvalue)
    assert math.isnan(S.paired_score_test([np.nan], [1.0], method=method).pvalue)


def test_sign_flip_permutation_is_exact_for_few_nonzero_differences():
    a = np.zeros(103)
    b = np.concatenate([[1.0, 2.0, 3.0], np.zeros(100)])  # zeros carry no sign information
    res = S.paired_score_test(a, b, method="permutation", alternative="greater")
    assert res.pvalue == pytest.approx(1 / 8, rel=1e-12)  # only +1 +2 +3 reaches the sum 6
    assert res.statistic == pytest.approx(6 / 103)
    assert S.paired_score_test(a, b, method="permutation").pvalue == pytest.approx(2 / 8, rel=1e-12)
    assert S.paired_score_test(a, b, method="permutation", alternative="less").pvalue == 1.0
    # 0.1 + 0.2 - 0.3 is 5.6e-17 in floating point; sums that are 0 exactly must still tie with it:
    # of the 8 sign patterns, +0.6, +0.4, +0.2 and the two zero sums are >= 0
    res = S.paired_score_test(np.zeros(3), [0.1, 0.2, -0.3], method="permutation", alternative="greater")
    assert res.pvalue == pytest.approx(5 / 8, rel=1e-12)


def test_sign_flip_monte_carlo_tracks_exact_and_is_reproducible():
    rng = np.random.default_rng(11)
    a = rng.random(16)
    b = a + rng.normal(0.15, 0.3, 16)
    exact = S.paired_score_test(a, b, method="permutation", n_resamples=2**16).pvalue
    mc = [S.paired_score_test(a, b, method="permutation", n_resamples=4000, seed=s).pvalue for s in (1, 1, 2)]
    assert mc[0] == mc[1] != mc[2]
    assert mc[0] == pytest.approx(exact, abs=0.02)  # Monte Carlo SE is ~0.008 here
    assert (mc[0] * 4001 - 1) == pytest.approx(round(mc[0] * 4001 - 1))  # p = (1 + hits) / (1 + R)


def test_paired_score_test_rejects_unknown_method_and_alternative():
    with pytest.raises(ValueError, match="method"):
        S.paired_score_test([1, 2], [2, 3], method="t-test")
    with pytest.raises(ValueError, match="alternative"):
        S.paired_score_test([1, 2], [2, 3], alternative="smaller")
    with pytest.raises(ValueError, match="n_resamples"):
        S.paired_score_test([1, 2], [2, 3], method="permutation", n_resamples=0)


# ------------------------------------------------------------------------- Holm


def test_holm_hand_computed():
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> 0.06 (monotone)
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert S.holm([0.01, np.nan, 0.02]) == pytest.approx([0.02, np.nan, 0.02], nan_ok=True)  # family of 2
    assert S.holm([]).size == 0


def test_holm_is_monotone_and_never_below_raw():
    p = np.random.default_rng(2).random(30) ** 3
    adj = S.holm(p)
    order = np.argsort(p)
    assert np.all(np.diff(adj[order]) >= 0)
    assert np.all(adj >= p) and np.all(adj <= 1)
    with pytest.raises(ValueError):
        S.holm([0.2, 1.5])


# ----------------------------------------------------------------- effect sizes


def test_cohens_dz():
    assert S.cohens_dz([1, 2, 3, 4], [2, 4, 4, 6]) == pytest.approx(1.5 / math.sqrt(1 / 3))
    assert S.cohens_dz([1, 2, 3], [2, 3, 4]) == math.inf  # constant shift, no noise
    assert S.cohens_dz([1, 2, 3], [1, 2, 3]) == 0.0
    assert math.isnan(S.cohens_dz([1.0], [2.0]))
    assert S.cohens_dz([1, 2, np.nan, 4], [2, 3, 9, 6]) == pytest.approx(S.cohens_dz([1, 2, 4], [2, 3, 6]))


def test_cliffs_delta_hand_computed_and_brute_force():
    assert S.cliffs_delta([1, 2, 3], [3, 4, 5]) == pytest.approx(8 / 9)  # y larger: positive
    assert S.cliffs_delta([3, 4, 5], [1, 2, 3]) == pytest.approx(-8 / 9)
    assert S.cliffs_delta([2, 2], [2, 2, 2]) == 0.0
    assert math.isnan(S.cliffs_delta([], [1.0]))
    rng = np.random.default_rng(4)
    x, y = rng.integers(0, 5, 40), rng.integers(1, 6, 30)  # many ties
    brute = np.mean(np.sign(y[None, :] - x[:, None]))
    assert S.cliffs_delta(x, y) == pytest.approx(brute)


def test_risk_difference_and_odds_ratio():
    assert S.risk_difference(30, 100, 45, 100) == pytest.approx(0.15)
    assert S.odds_ratio(2, 10, 5, 10) == pytest.approx((5 / 5) / (2 / 8))
    assert S.odds_ratio(0, 10, 5, 10) == pytest.approx((5.5 / 5.5) / (0.5 / 10.5))  # Haldane
    assert math.isnan(S.odds_ratio(0, 0, 1, 2)) and math.isnan(S.risk_difference(1, 2, 0, 0))


# ------------------------------------------------------------- two-sample tests


def test_mann_whitney_matches_scipy_with_candidate_second():
    rng = np.random.default_rng(8)
    x, y = rng.normal(0, 1, 40), rng.normal(-1.0, 1, 35)
    for alt in ("two-sided", "less", "greater"):
        res = S.mann_whitney(x, y, alternative=alt)
        ref = st.mannwhitneyu(y, x, alternative=alt)
        assert (res.statistic, res.pvalue) == pytest.approx((ref.statistic, ref.pvalue), rel=1e-12)
    res = S.mann_whitney(x, y, alternative="less")
    assert res.pvalue < 0.05 and res.effect_size == pytest.approx(S.cliffs_delta(x, y)) and res.effect_size < 0
    assert res.effect_size == pytest.approx(2 * res.statistic / (x.size * y.size) - 1)  # rank-biserial


def test_mann_whitney_edge_cases():
    res = S.mann_whitney([1.0, 1.0], [1.0, 1.0, np.nan])
    assert (res.pvalue, res.effect_size) == (1.0, 0.0)
    assert math.isnan(S.mann_whitney([], [1.0, 2.0]).pvalue)


def test_two_proportions_z_test_equals_uncorrected_chi_square():
    res = S.two_proportions_test(45, 100, 60, 100)
    table = [[45, 55], [60, 40]]
    assert res.test == "z"
    assert res.pvalue == pytest.approx(st.chi2_contingency(table, correction=False).pvalue, rel=1e-9)
    assert res.effect_size == pytest.approx(0.15)
    assert S.two_proportions_test(60, 100, 45, 100, alternative="less").pvalue == pytest.approx(res.pvalue / 2)
    assert S.two_proportions_test(60, 100, 45, 100, alternative="greater").pvalue > 0.95


def test_two_proportions_uses_fisher_for_small_counts():
    res = S.two_proportions_test(9, 10, 3, 10, alternative="less")
    assert res.test == "fisher"
    ref = st.fisher_exact([[3, 7], [9, 1]], alternative="less")
    assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12)
    assert S.two_proportions_test(0, 50, 0, 80, method="z").pvalue == 1.0  # both rates 0
    assert math.isnan(S.two_proportions_test(0, 0, 3, 10).pvalue)
    with pytest.raises(ValueError):
        S.two_proportions_test(3, 10, 11, 10)


def exact_two_sample_pvalue(x, y, alternative):
    """Permutation p-value of mean(y) - mean(x) by enumeration in exact rational arithmetic."""
    pooled = [Fraction(str(v)) for v in (*x, *y)]
    nx, ny, total = len(x), len(y), sum(pooled)

    def diff(sum_y):
        return sum_y / ny - (total - sum_y) / nx

    observed = diff(sum(pooled[nx:]))
    null = [diff(sum(pooled[i] for i in idx)) for idx in combinations(range(nx + ny), ny)]
    extreme = {
        "greater": lambda v: v >= observed,
        "less": lambda v: v <= observed,
        "two-sided": lambda v: abs(v) >= abs(observed),
    }[alternative]
    return sum(map(extreme, null)) / len(null)


@pytest.mark.parametrize(
    ("x", "y"), [([0.1, 0.7], [0.2, 0.6]), ([0.1, 0.2], [0.4, 0.7]), ([0.3, 0.1, 0.6], [0.4]), ([1, 2, 3], [4, 5, 6])]
)
@pytest.mark.parametrize("alternative", ["two-sided", "less", "greater"])
def test_two_sample_permutation_exact_matches_rational_enumeration(x, y, alternative):
    # decimal inputs make mathematically equal splits differ in the last bit
    res = S.permutation_test_two_sample(x, y, alternative=alternative)
    assert res.pvalue == pytest.approx(exact_two_sample_pvalue(x, y, alternative), rel=1e-12)


def test_two_sample_permutation_exact_and_monte_carlo():
    res = S.permutation_test_two_sample([1, 2, 3], [4, 5, 6], alternative="greater")
    assert res.pvalue == pytest.approx(1 / 20)  # 1 of C(6, 3) splits is as extreme
    assert res.statistic == pytest.approx(3.0)
    assert S.permutation_test_two_sample([1, 2, 3], [4, 5, 6]).pvalue == pytest.approx(2 / 20)
    assert S.permutation_test_two_sample([2, 2, 2], [2, 2]).pvalue == 1.0
    rng = np.random.default_rng(9)
    x, y = rng.normal(0, 1, 9), rng.normal(0.8, 1, 8)  # C(17, 8) = 24310 splits
    exact = S.permutation_test_two_sample(x, y, n_resamples=30_000).pvalue
    runs = [S.permutation_test_two_sample(x, y, n_resamples=5000, seed=s).pvalue for s in (3, 3, 4)]
    assert runs[0] == runs[1] != runs[2]
    assert runs[0] == pytest.approx(exact, abs=0.015)  # Monte Carlo SE is ~0.004 here
    assert math.isnan(S.permutation_test_two_sample([], [1.0]).pvalue)
    with pytest.raises(ValueError, match="n_resamples"):
        S.permutation_test_two_sample(x, y, n_resamples=0)


# -------------------------------------------------------------------- bootstrap


def test_mean_ci_matches_scipy_bootstrap():
    # Skewed scores, where BCa's bias and acceleration corrections move the upper end by
    # ~11 % of the width; with 50k resamples the Monte Carlo error is < 1 % of the width.
    x = np.random.default_rng(3).beta(0.5, 4, 30)
    results = {}
    for method, scipy_method in [("bca", "BCa"), ("percentile", "percentile")]:
        ref = st.bootstrap(
            (x,), np.mean, n_resamples=50_000, method=scipy_method, random_state=np.random.default_rng(7)
        ).confidence_interval
        results[method] = S.mean_ci(x, method=method, n_resamples=50_000, seed=7)
        width = ref.high - ref.low
        assert results[method] == pytest.approx((ref.low, ref.high), abs=0.03 * width)
    assert results["bca"][1] - results["percentile"][1] > 0.08 * width


def test_bca_counts_bootstrap_ties_with_the_estimate_half():
    # Mostly-zero symmetric differences, as when two variants agree on most rows: ~30 % of
    # bootstrap means equal the estimate 0. Counted half, there is no spurious bias
    # correction and the interval is symmetric; counted as "above" it would be (-0.125, 0.075).
    d = [0] * 36 + [1, -1] * 2
    assert S.mean_ci(d) == pytest.approx((-0.1, 0.1))


def test_paired_bootstrap_ci_resamples_rows_jointly():
    rng = np.random.default_rng(1)
    a = rng.random(300)
    b = np.clip(a + rng.normal(0.01, 0.1, 300), 0, 1)
    ci = S.paired_bootstrap_ci(a, b, n_resamples=5000, seed=5)
    assert ci == S.mean_ci(b - a, n_resamples=5000, seed=5)
    ref = st.bootstrap(
        (a, b),
        lambda x, y, axis: np.mean(y, axis=axis) - np.mean(x, axis=axis),
        paired=True,
        n_resamples=5000,
        method="BCa",
        random_state=np.random.default_rng(5),
    ).confidence_interval
    assert ci == pytest.approx((ref.low, ref.high), abs=0.03 * (ref.high - ref.low))
    unpaired = S.paired_bootstrap_ci(a, rng.permutation(b), n_resamples=5000, seed=5)
    assert unpaired[1] - unpaired[0] > 3 * (ci[1] - ci[0])  # pairing removes the row-difficulty variance


def test_bootstrap_memory_is_bounded_by_blocks():
    rng = np.random.default_rng(0)
    a, b = rng.random(1000), rng.random(1000)
    tracemalloc.start()
    try:
        S.paired_bootstrap_ci(a, b, n_resamples=10_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40e6  # one block is ~16 MB; the whole 10k x 1000 index matrix alone is 80 MB


def test_bootstrap_reproducible_and_seed_dependent():
    rng = np.random.default_rng(12)
    a, b = rng.random(50), rng.random(50)
    first = S.paired_bootstrap_ci(a, b, seed=3)
    assert S.paired_bootstrap_ci(a, b, seed=3) == first
    assert S.paired_bootstrap_ci(a, b, seed=np.random.default_rng(3)) == first
    assert S.paired_bootstrap_ci(a, b, seed=4) != first
    assert first[0] < b.mean() - a.mean() < first[1]


def test_bootstrap_edge_cases():
    for ci in (S.mean_ci([]), S.mean_ci([0.7]), S.paired_bootstrap_ci([1.0], [2.0])):
        assert all(math.isnan(v) for v in ci)
    assert S.mean_ci([0.4, 0.4, 0.4]) == pytest.approx((0.4, 0.4))  # no variability in the sample
    assert S.paired_bootstrap_ci([1, 2, 3], [1.5, 2.5, 3.5]) == pytest.approx((0.5, 0.5))
    a, b = [0.1, 0.5, np.nan, 0.9, 0.3], [0.2, np.nan, 0.4, 0.8, 0.6]
    assert S.paired_bootstrap_ci(a, b) == S.paired_bootstrap_ci([0.1, 0.9, 0.3], [0.2, 0.8, 0.6])
    with pytest.raises(ValueError):
        S.mean_ci([1, 2], method="basic")
    with pytest.raises(ValueError):
        S.mean_ci([1, 2], n_resamples=0)


# ------------------------------------------------------ comparison and the gate


def test_compare_paired_binary():
    a, b = paired_table(both=59, only_a=16, only_b=6, neither=80)
    a = np.append(a.astype(float), np.nan)
    b = np.append(b, 1)
    c = S.compare_paired(a, b, kind="binary")
    mc = S.mcnemar_exact(a, b)
    assert (c.n, c.n_missing, c.test) == (161, 1, "mcnemar-exact")
    assert c.delta == pytest.approx(-10 / 161) and c.mean_a == pytest.approx(75 / 161)
    assert (c.pvalue, c.pvalue_regression, c.effect_size) == (mc.pvalue, mc.pvalue_less, mc.odds_ratio)
    assert (c.ci_low, c.ci_high) == S.paired_proportion_diff_ci(a, b)
    improved = S.compare_paired(b, a, kind="binary")  # swapped: b is now the better one
    assert improved.pvalue_regression == S.mcnemar_exact(b, a).pvalue_less > 0.95
    with pytest.raises(ValueError, match="pass/fail"):
        S.compare_paired([0.5, 1], [1, 1], kind="binary")
    with pytest.raises(ValueError):
        S.compare_paired(a, b, kind="binary", method="wilcoxon")


@pytest.mark.parametrize("method", ["wilcoxon", "permutation"])
def test_compare_paired_score(method):
    rng = np.random.default_rng(6)
    a = rng.random(60)
    b = a - 0.05 + rng.normal(0, 0.05, 60)
    c = S.compare_paired(a, b, kind="score", method=method, n_resamples=2000, seed=1)
    less = S.paired_score_test(a, b, method=method, alternative="less", n_resamples=2000, seed=1)
    assert c.test == method and c.pvalue_regression == less.pvalue < 0.01
    assert c.pvalue == S.paired_score_test(a, b, method=method, n_resamples=2000, seed=1).pvalue
    assert (c.ci_low, c.ci_high) == S.paired_bootstrap_ci(a, b, n_resamples=2000, seed=1)
    assert c.ci_low < c.delta < c.ci_high < 0
    assert (c.effect_name, c.effect_size) == ("cohens_dz", S.cohens_dz(a, b))


def test_compare_paired_without_rows_fails_the_gate():
    c = S.compare_paired([np.nan, 1.0], [1.0, np.nan], kind="score")
    assert (c.n, c.n_missing) == (0, 2)
    assert all(math.isnan(v) for v in (c.mean_a, c.delta, c.ci_low, c.pvalue, c.pvalue_regression))
    verdict = S.no_regression(c)
    assert not verdict and "no paired rows" in verdict.reason
    with pytest.raises(ValueError, match="kind"):
        S.compare_paired([1], [1], kind="ordinal")


def test_no_regression_semantics():
    base = S.compare_paired(*paired_table(both=300, only_a=30, only_b=10, neither=60), kind="binary")
    assert base.delta == pytest.approx(-0.05) and base.pvalue_regression < 0.01

    verdict = S.no_regression(base, max_drop=0.02, alpha=0.05)
    assert not verdict.ok and not verdict and verdict.reason.startswith("regression")
    assert S.no_regression(base, max_drop=-base.delta)  # the drop must exceed max_drop, not equal it
    assert S.no_regression(base, max_drop=0.0, alpha=base.pvalue_regression)  # p must be < alpha
    holm_adjusted = dataclasses.replace(base, pvalue_regression=0.2)
    verdict = S.no_regression(holm_adjusted)
    assert verdict and "no significant drop" in verdict.reason
    improved = dataclasses.replace(base, delta=0.05, pvalue_regression=0.99)
    assert S.no_regression(improved)
    for kwargs in ({"alpha": 0.0}, {"max_drop": -0.01}):
        with pytest.raises(ValueError):
            S.no_regression(base, **kwargs)


# ------------------------------------------------------------- simulation model


def test_simulate_paired_binary_matches_its_stated_model():
    a0, b0 = S.simulate_paired_binary(400, seed=3)
    a1, b1 = S.simulate_paired_binary(400, drop=0.05, seed=3)
    assert np.array_equal(a0, a1)
    flipped = b0 & ~b1
    assert flipped.sum() == 20 and np.all(a0[flipped]) and np.array_equal(b1 | flipped, b0)
    rng = np.random.default_rng(0)
    draws = [S.simulate_paired_binary(1000, pass_rate=0.7, agreement=0.85, seed=rng) for _ in range(200)]
    assert np.mean([np.mean(a == b) for a, b in draws]) == pytest.approx(0.85, abs=0.005)
    assert np.mean([np.mean(b) for _, b in draws]) == pytest.approx(0.7, abs=0.005)
    with pytest.raises(ValueError, match="agreement"):
        S.simulate_paired_binary(100, pass_rate=0.9, agreement=0.7)  # 0.9 pass rate forces >= 82 % agreement


# --------------------------------------------------------------- validity sims
#
# Model: simulate_paired_binary with pass_rate 0.75 and 90 % A/A agreement (rows
# vary in difficulty; most are always passed or always failed). A/A uses the
# strictest gate (max_drop=0, any significant drop flags); power uses a realistic
# tolerance (max_drop=0.02), which can only lower it. Tolerances: an A/A rate
# within mc_upper() is what a procedure whose true rate is alpha exceeds with
# probability <= 0.1 %; power must exceed 80 % at 99.9 % confidence.

ALPHA = 0.05


def test_binary_aa_false_regression_rate_is_at_most_alpha():
    n_sims = 10_000
    rng = np.random.default_rng(2024)
    flagged = sum(
        not S.no_regression(S.compare_paired(*S.simulate_paired_binary(400, seed=rng), kind="binary"), alpha=ALPHA)
        for _ in range(n_sims)
    )
    assert flagged / n_sims <= mc_upper(n_sims, ALPHA)


def test_binary_five_point_drop_at_n400_is_caught_at_least_80_percent():
    n_sims = 5000
    rng = np.random.default_rng(2025)
    caught = sum(
        not S.no_regression(
            S.compare_paired(*S.simulate_paired_binary(400, drop=0.05, seed=rng), kind="binary"),
            max_drop=0.02,
            alpha=ALPHA,
        )
        for _ in range(n_sims)
    )
    assert mc_lower_bound(caught, n_sims) >= 0.80


@pytest.mark.parametrize("method", ["wilcoxon", "permutation"])
def test_score_aa_false_regression_rate_is_at_most_alpha(method):
    # Rubric-like scores in [0, 1] with steps of 0.1: rows vary in quality, both
    # variants score each row with the same noise; clipping and rounding make many
    # zero and tied differences.
    n_sims, n = 1000, 100
    rng = np.random.default_rng(7)
    flagged = 0
    for _ in range(n_sims):
        quality = rng.beta(2, 2, n)
        a, b = np.round(np.clip(quality + rng.normal(0, 0.15, (2, n)), 0, 1), 1)
        c = S.compare_paired(a, b, kind="score", method=method, n_resamples=200, seed=rng)
        flagged += not S.no_regression(c, alpha=ALPHA)
    assert flagged / n_sims <= mc_upper(n_sims, ALPHA)
