"""Tests for promptgauge.stats: known values, reproducibility, edge cases, and
simulations of the false-regression rate and power of ``no_regression``."""

import dataclasses
import math
import os
import subprocess
import sys
import tracemalloc
from fractions import Fraction
from itertools import combinations, product

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
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


# The signed-rank test is computed in numpy (exact null by a dynamic programme over doubled
# ranks); it replaced scipy.stats.wilcoxon(method="auto"), whose p-values it must reproduce in
# each of scipy's regimes: exact null (n <= 50, no ties), exhaustive sign-flip permutation test
# (n <= 13 with ties), tie-corrected normal approximation (otherwise).

ALTERNATIVES = ("two-sided", "less", "greater")


def _wilcoxon_cases() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    cases = {f"exact-{n}": rng.normal(0.2, 1, n) for n in (1, 2, 3, 7, 13, 14, 25, 50)}
    cases["exact-all-positive-50"] = rng.random(50) + 0.01  # p = 2^-50 at the far tail
    cases |= {f"normal-{n}": rng.normal(0.1, 1, n) for n in (51, 80, 400)}
    ties = {f"ties-{n}": rng.integers(-3, 4, 3 * n).astype(float) for n in (3, 6, 9, 13, 14, 20, 32, 50, 51, 300)}
    cases |= {k: d[d != 0][: int(k.split("-")[1])] for k, d in ties.items()}
    cases["ties-2"] = np.array([0.5, -0.5])
    cases["ties-10-all-equal"] = np.full(10, 0.1)
    cases["ties-half-ranks"] = np.array([0.3, -0.3, 0.7, 0.7, -0.7, 1.0, 2.0, -2.0])  # W+ = 17.5
    return cases


@pytest.mark.parametrize(("name", "d"), _wilcoxon_cases().items(), ids=list(_wilcoxon_cases()))
def test_wilcoxon_reproduces_scipy_auto_in_every_regime(name, d):
    zeros = np.zeros(d.size)
    ties = np.unique(np.abs(d)).size < d.size
    normal = d.size > (13 if ties else 50)
    for alt in ALTERNATIVES:
        res = S.paired_score_test(zeros, d, alternative=alt)
        ref = st.wilcoxon(d, alternative=alt)
        assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=0), alt
        if normal:  # large n: scipy's normal approximation with the tie correction
            assert res.pvalue == pytest.approx(st.wilcoxon(d, alternative=alt, method="asymptotic").pvalue, rel=1e-9)
        if alt != "two-sided":  # scipy reports min(W+, W-) for two-sided
            assert res.statistic == ref.statistic
    # zero differences are dropped before ranking (zero_method="wilcox" on the nonzero ones)
    padded_a, padded_b = np.zeros(d.size + 5), np.append(d, np.zeros(5))
    assert S.paired_score_test(padded_a, padded_b).pvalue == S.paired_score_test(zeros, d).pvalue


@pytest.mark.parametrize("n", [1, 5, 10, 20, 35, 50])
def test_wilcoxon_without_ties_equals_scipy_exact_method(n):
    d = np.random.default_rng(n).normal(0.3, 1, n)
    for alt in ALTERNATIVES:
        ref = st.wilcoxon(d, alternative=alt, method="exact").pvalue
        assert S.paired_score_test(np.zeros(n), d, alternative=alt).pvalue == pytest.approx(ref, rel=1e-12, abs=0)


def _wplus(d, axis=-1):
    return np.sum(np.where(d > 0, st.rankdata(np.abs(d), axis=axis), 0.0), axis=axis)


@pytest.mark.parametrize("seed", range(6))
def test_wilcoxon_with_ties_equals_exhaustive_permutation_test(seed):
    # With ties (and zeros, dropped), small n: the p-value is the exact sign-flip permutation
    # p-value of W+ over all 2^n sign patterns, i.e. scipy's permutation_test with
    # n_resamples >= 2^n (scipy.wilcoxon's own fallback, which ran it with a Python-level loop).
    rng = np.random.default_rng(seed)
    a = np.round(rng.random(32), 1)
    b = np.where(rng.random(32) < 0.65, a, np.round(np.clip(a + rng.normal(0.05, 0.2, 32), 0, 1), 1))
    a, b = a[:20], b[:20]  # 20 rows, 13 or fewer of them with a nonzero difference
    d = (b - a)[b != a]
    assert 0 < d.size <= 13 and np.unique(np.abs(d)).size < d.size  # ties
    for alt in ALTERNATIVES:
        ref = st.permutation_test(
            (d,), _wplus, permutation_type="samples", vectorized=True, n_resamples=2**d.size, alternative=alt
        )
        res = S.paired_score_test(a, b, alternative=alt)
        assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-12, abs=0)
        assert res.statistic == ref.statistic


def test_signed_rank_counts_equal_brute_force_enumeration_with_ties():
    # The dynamic programme is exact beyond the sizes the public test uses it for (n <= 13 with
    # ties): at n = 16 it equals counting all 65536 sign patterns.
    rng = np.random.default_rng(3)
    for n in (1, 4, 11, 16):
        ranks, _ = S._average_ranks(np.abs(rng.integers(1, 5, n)).astype(float))
        doubled = (2 * ranks).astype(np.int64)
        signs = (np.arange(2**n)[:, None] >> np.arange(n)) & 1
        brute = np.bincount(signs @ doubled, minlength=int(doubled.sum()) + 1)
        assert np.array_equal(S._signed_rank_counts(doubled), brute)
        assert S._signed_rank_counts(doubled).sum() == 2**n


def test_average_ranks_match_scipy_rankdata():
    x = np.random.default_rng(9).integers(0, 6, 200).astype(float)
    ranks, sizes = S._average_ranks(x)
    assert np.array_equal(ranks, st.rankdata(x))
    assert np.array_equal(sizes, np.unique(x, return_counts=True)[1])


def test_results_equal_the_scipy_based_implementation():
    # Values from promptgauge.stats at commit 3fff2b7 (scipy's wilcoxon, ndtri/ndtr and bdtr),
    # the implementation the numpy one replaced: the same seeds give the same results to 1e-9.
    rng = np.random.default_rng(31)
    a = np.round(rng.random(32), 1)  # rubric-like: 12 nonzero differences, with ties
    b = np.where(rng.random(32) < 0.6, a, np.round(np.clip(a + rng.normal(0.05, 0.2, 32), 0, 1), 1))
    x = rng.gamma(2, 1, 40)  # continuous: exact Wilcoxon null, BCa interpolates between resamples
    y = x + rng.normal(0.2, 0.5, 40)
    expected = {
        (0, 1): (0.009375, 0.109375, 0.04638671875, 0.979736328125),
        (2, 3): (0.03456354314659162, 0.3326445306528845, 0.09449897358172166, 0.9540879691758164),
    }
    for (i, j), values in expected.items():
        c = S.compare_paired((a, b, x, y)[i], (a, b, x, y)[j], kind="score")
        assert (c.ci_low, c.ci_high, c.pvalue, c.pvalue_regression) == pytest.approx(values, rel=1e-9)
    assert S.mean_ci(y, confidence=0.9, seed=5) == pytest.approx((1.8285378116290298, 2.554358565898085), rel=1e-9)
    assert S.mean_ci(y, method="percentile", seed=5) == pytest.approx((1.730762659749367, 2.585438366415559), rel=1e-9)
    assert S.paired_proportion_diff_ci(a > 0.5, b > 0.5) == pytest.approx(
        (-0.06906251157825585, 0.18969784767916195), rel=1e-9
    )
    assert S.proportion_ci(7, 32) == pytest.approx((0.11023836252604186, 0.3875499364924353), rel=1e-9)
    res = S.mcnemar_exact(x > 2, y > 2)
    assert (res.b01, res.b10) == (5, 1)
    assert (res.pvalue, res.pvalue_less, res.pvalue_greater) == (7 / 32, 63 / 64, 7 / 64)  # exact now
    assert (res.pvalue, res.pvalue_less, res.pvalue_greater) == pytest.approx(
        (0.21875000000000003, 0.984375, 0.10937500000000001), rel=1e-9
    )


def test_comparing_and_gating_do_not_import_scipy():
    # scipy.special (~0.25 s) and scipy.stats (~0.4 s more) used to be imported by every run;
    # a comparison, its CIs and a gate on ordinary data now need neither.
    code = (
        "import sys; from promptgauge import stats as s; "
        "s.compare_paired([0.1, 0.5, 0.2, 0.9], [0.3, 0.5, 0.1, 0.7], kind='score'); "
        "s.compare_paired([1, 0, 1, 1], [1, 1, 0, 1], kind='binary'); s.mean_ci([0.2, 0.4, 0.9]); "
        "s.proportion_ci(3, 10); s.holm([0.1, 0.2]); s.cliffs_delta([1, 2], [2, 3]); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'scipy'))"
    )
    src = os.path.dirname(os.path.dirname(S.__file__))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"


def test_normal_cdf_and_quantile_match_scipy_special():
    from scipy import special

    x = np.linspace(-30, 30, 6001)
    assert np.array([S._ndtr(v) for v in x]) == pytest.approx(special.ndtr(x), rel=1e-12, abs=0)
    p = np.concatenate([np.logspace(-300, np.log10(0.5), 2000), 1 - np.logspace(-16, np.log10(0.5), 2000)])
    assert np.array([S._ndtri(v) for v in p]) == pytest.approx(special.ndtri(p), rel=1e-13, abs=1e-15)
    assert (S._ndtri(0.0), S._ndtri(1.0), S._ndtri(0.5)) == (-math.inf, math.inf, 0.0)


def test_mcnemar_binomial_tail_is_exact():
    # Up to _EXACT_BINOMIAL_MAX discordant rows the tail is an exact integer sum, correctly rounded
    # (scipy.special.bdtr, used before, agrees to ~1e-11); beyond, scipy.special computes it as before.
    from scipy import special

    for m in range(40):
        for k in range(m + 1):
            exact = Fraction(sum(math.comb(m, i) for i in range(k + 1)), 2**m)
            assert S._binom_half_cdf(k, m) == float(exact)
    for m in (100, 777, S._EXACT_BINOMIAL_MAX):
        k = np.arange(m + 1)
        ref = special.bdtr(k, m, 0.5)
        mine = np.array([S._binom_half_cdf(int(v), m) for v in k])
        tiny = ref < 1e-290  # subnormal and underflowing tails: both ~0
        assert mine[~tiny] == pytest.approx(ref[~tiny], rel=1e-9, abs=0)
        assert np.all(mine[tiny] < 1e-280)
    for b01, b10 in [(990, 1010), (1000, 1001), (1030, 1000)]:  # either side of the switch
        a, b = paired_table(both=3, only_a=b10, only_b=b01, neither=2)
        m = b01 + b10
        res = S.mcnemar_exact(a, b)
        assert res.pvalue_less == pytest.approx(special.bdtrc(b10 - 1, m, 0.5), rel=1e-9)
        assert res.pvalue_greater == pytest.approx(special.bdtr(b10, m, 0.5), rel=1e-9)


# rubric-like scores (steps of 0.1: many zero and tied differences) and arbitrary floats
_grid = hs.integers(0, 10).map(lambda v: v / 10)
_real = hs.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False)
_pairs = hs.one_of(
    hs.lists(hs.tuples(_grid, _grid), max_size=70),
    hs.lists(hs.tuples(_real, _real), max_size=70),
    hs.lists(hs.tuples(_grid, _real), max_size=16),
)

@settings(max_examples=300, deadline=None, database=None)
@given(_pairs)
def test_wilcoxon_pvalues_are_probabilities_and_symmetric_under_swapping(pairs):
    a, b = (np.array([p[i] for p in pairs], dtype=float) for i in (0, 1))
    fwd = {alt: S.paired_score_test(a, b, alternative=alt).pvalue for alt in ALTERNATIVES}
    rev = {alt: S.paired_score_test(b, a, alternative=alt).pvalue for alt in ALTERNATIVES}
    if a.size == 0:
        assert all(math.isnan(p) for p in (*fwd.values(), *rev.values()))
        return
    assert all(0.0 <= p <= 1.0 for p in (*fwd.values(), *rev.values()))
    assert fwd["two-sided"] == rev["two-sided"]
    assert fwd["less"] == rev["greater"] and fwd["greater"] == rev["less"]
    assert fwd["two-sided"] == pytest.approx(min(1.0, 2 * min(fwd["less"], fwd["greater"])), rel=1e-12)

@settings(max_examples=40, deadline=None, database=None)
@given(_pairs, hs.sampled_from(ALTERNATIVES))
def test_wilcoxon_equals_scipy_on_arbitrary_data(pairs, alt):
    a, b = (np.array([p[i] for p in pairs], dtype=float) for i in (0, 1))
    d = (b - a)[b != a]
    if d.size == 0:
        return
    ref = st.wilcoxon(d, alternative=alt).pvalue
    assert S.paired_score_test(a, b, alternative=alt).pvalue == pytest.approx(ref, rel=1e-9, abs=0)


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
