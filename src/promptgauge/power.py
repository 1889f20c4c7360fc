"""Power of the gate's paired tests: the minimum detectable effect (MDE) and the rows a decision needs.

The gate's ``no_regression`` asks a one-sided paired test whether the candidate is worse (exact
McNemar for pass/fail rows, Wilcoxon signed-rank for scores; :mod:`promptgauge.stats`). Its
silence means "no regression" only if the test could have heard one: the **MDE** is the smallest
drop that the same test, at the rule's alpha, detects with probability ``power`` at the run's n
and the noise the run showed. A rule whose ``max_drop`` is below the MDE is *inconclusive*; then
:func:`rows_needed` says at what n (same noise) the MDE reaches ``max_drop``.

Models, the same the tests rest on (and :func:`promptgauge.stats.simulate_paired_binary` draws from):

- pass/fail: a fraction ``d`` of rows disagree by chance (half each way; ``d`` is the observed
  discordance, pass->fail plus fail->pass rows over n, which a real drop only inflates, so the MDE
  errs large); a drop ``delta`` turns ``delta * n`` more rows into pass->fail. The power is the
  exact one of the conditional McNemar test: the number of discordant rows ``m ~ Bin(n, d + delta)``,
  the pass->fail ones among them ``~ Bin(m, (d/2 + delta) / (d + delta))``, rejection when the exact
  binomial tail is below alpha. Exact sums up to :data:`EXACT_MAX` discordant rows, normal beyond.
- scores: the row differences have the observed standard deviation ``s``; a drop shifts them by
  ``delta``. MDE = (z(1-alpha) + z(power)) * s / sqrt(n * 0.864): the t-test's MDE divided by the
  square root of 0.864, the least asymptotic efficiency of the signed-rank test relative to the t-test
  over all distributions (Hodges & Lehmann 1956), so the claim errs on the safe side. Fewer rows than
  the exact signed-rank test needs to reach alpha at all (``2**-n >= alpha``), or zero variance (every
  row changed by the same amount: no noise to measure a drop against, a degenerate interval) has no MDE.

Pure numpy, no scipy: a gate on ordinary data stays fast (~1 ms per metric).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

#: The power a comparison's MDE column is stated at (a rule may declare its own).
DEFAULT_POWER = 0.8
#: Discordant rows up to which the McNemar power sums exact binomial probabilities.
EXACT_MAX = 2000
#: Asymptotic relative efficiency of the signed-rank test to the t-test: its minimum over distributions.
WILCOXON_ARE = 0.864
#: rows_needed searches up to this many rows; beyond, it says "more than".
MAX_ROWS = 10_000_000
_N = NormalDist()
_SPAN = 7.0  # standard deviations of m summed on each side of its mean


@dataclass(frozen=True)
class Detectability:
    """What a paired comparison can detect: the MDE at its n and noise, or why there is none."""

    kind: str  # binary | score
    n: int
    noise: float  # binary: observed discordance (rows that disagree / n); score: sd of the row differences
    alpha: float
    power: float
    mde: float | None  # the smallest drop detected with probability `power`; None: none can be
    why: str = ""  # when mde is None: why no drop can be detected

    def decidable(self, max_drop: float) -> bool:
        """Whether a drop of *max_drop* is detected with probability ``power`` (so silence means no such drop)."""
        return self.mde is not None and self.mde <= max_drop + 1e-12

    def describe(self) -> str:
        """``MDE 0.062 (n=400, 90.0 % agreement, alpha 0.05, power 0.8)`` for reasons and reports."""
        noise = (f"{(1 - self.noise):.1%} agreement" if self.kind == "binary"
                 else f"sd of differences {self.noise:.4g}")
        where = f"n={self.n}, {noise}, alpha {self.alpha:.3g}, power {self.power:.3g}"
        return f"MDE {self.mde:.4g} ({where})" if self.mde is not None else f"no MDE: {self.why} ({where})"


# ---------------------------------------------------------------------------------- pass/fail

_logfact = np.zeros(1)


def _log_factorials(n: int) -> np.ndarray:
    """log(k!) for k = 0..n (a table grown on demand)."""
    global _logfact
    if _logfact.size <= n:  # n <= EXACT_MAX + 1 here: the table stays small
        size = max(n + 1, min(2 * _logfact.size, EXACT_MAX + 2))
        _logfact = np.concatenate(([0.0], np.cumsum(np.log(np.arange(1, size, dtype=float)))))
    return _logfact


def _log_pmf(k: np.ndarray, m: np.ndarray, p: float) -> np.ndarray:
    """log P(X = k) for X ~ Bin(m, p), broadcast; -inf where k > m."""
    lf = _log_factorials(int(np.max(m)))
    kk = np.minimum(k, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = lf[m] - lf[kk] - lf[m - kk]
        out = out + (kk * math.log(p) if p > 0 else np.where(kk == 0, 0.0, -np.inf))
        out = out + ((m - kk) * math.log1p(-p) if p < 1 else np.where(kk == m, 0.0, -np.inf))
    return np.where(k <= m, out, -np.inf)


_lgamma = np.vectorize(math.lgamma, otypes=[float])


def _log_pmf_wide(k: np.ndarray, n: int, p: float) -> np.ndarray:
    """log P(X = k) for X ~ Bin(n, p) at the few k near its mean, for any n (lgamma: no table of n entries)."""
    if n <= EXACT_MAX:
        return _log_pmf(k, np.full_like(k, n), p)
    kf = k.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (math.lgamma(n + 1) - _lgamma(kf + 1) - _lgamma(n - kf + 1)
               + (kf * math.log(p) if p > 0 else np.where(k == 0, 0.0, -np.inf))
               + ((n - kf) * math.log1p(-p) if p < 1 else np.where(k == n, 0.0, -np.inf)))
    return out


def _tail_at(m: np.ndarray, k: np.ndarray, p: float) -> np.ndarray:
    """P(X >= k_i) for X ~ Bin(m_i, p), exact: sums of pmfs over k_i..m_i, vectorised over i."""
    out = np.zeros(m.size)
    live = k <= m
    if not live.any():
        return out
    m, k = m[live], k[live]
    width = int((m - k).max()) + 1
    j = k[:, None] + np.arange(width)[None, :]
    out[live] = np.exp(_log_pmf(j, m[:, None], p)).sum(axis=1)
    return out


_critical_cache: dict[float, dict[int, int]] = {}


def _critical(m: np.ndarray, alpha: float) -> np.ndarray:
    """Per m: the fewest pass->fail rows among m discordant ones whose exact one-sided McNemar p is below alpha
    (m + 1 when none is). Exact up to EXACT_MAX, normal beyond; cached per alpha."""
    z = _N.inv_cdf(1 - alpha)
    out = np.floor(m / 2 + 0.5 + z * np.sqrt(m) / 2).astype(int) + 1  # normal, for large m
    cache = _critical_cache.setdefault(alpha, {})
    for i, mm in enumerate(m.tolist()):
        if mm > EXACT_MAX:
            continue
        if mm not in cache:
            k = np.arange(mm + 2)
            tails = np.cumsum(np.exp(_log_pmf(k, np.full_like(k, mm), 0.5))[::-1])[::-1]
            cache[mm] = int(np.argmax(np.append(tails[: mm + 1] < alpha, True)))
        out[i] = cache[mm]
    return np.minimum(out, m + 1)


def mcnemar_power(n: int, discordance: float, drop: float, alpha: float) -> float:
    """Probability that the exact one-sided McNemar test at *alpha* declares the candidate worse, for n rows
    whose noise discordance is *discordance* and a real drop of *drop* (the model in the module docstring)."""
    d = min(max(discordance, 0.0), 1.0)
    psi = min(1.0, d + drop)
    if n < 1 or psi <= 0 or drop <= 0:
        return 0.0
    pi = min(1.0, (d / 2 + drop) / psi)
    mean, sd = n * psi, math.sqrt(n * psi * (1 - psi))
    lo, hi = max(0, int(mean - _SPAN * sd) - 1), min(n, int(mean + _SPAN * sd) + 2)
    m = np.arange(lo, hi + 1)
    weight = np.exp(_log_pmf_wide(m, n, psi))
    crit = _critical(m, alpha)
    hit = np.zeros(m.size)
    small = m <= EXACT_MAX
    if small.any():
        hit[small] = _tail_at(m[small], crit[small], pi)
    if (~small).any():
        mb, cb = m[~small].astype(float), crit[~small].astype(float)
        s = np.sqrt(mb * pi * (1 - pi))
        hit[~small] = [1 - _N.cdf((c - 0.5 - mm * pi) / sd_) if sd_ > 0 else float(c <= mm * pi)
                       for c, mm, sd_ in zip(cb, mb, s)]
    return float(np.clip(np.sum(weight * hit), 0.0, 1.0))


def _mde_binary(n: int, d: float, alpha: float, power: float) -> tuple[float | None, str]:
    top = 1.0 - d
    if n < 1:
        return None, "no paired rows"
    if top <= 0 or mcnemar_power(n, d, top, alpha) < power:
        return None, f"{n} rows cannot detect any drop at this agreement"
    lo, hi = 0.0, top
    while hi - lo > max(1e-4, 2e-3 * hi):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if mcnemar_power(n, d, mid, alpha) >= power else (mid, hi)
    return hi, ""


# -------------------------------------------------------------------------------------- scores


def _wilcoxon_min_n(alpha: float) -> int:
    """The fewest nonzero differences with which the exact signed-rank test can reach p < alpha."""
    return max(1, math.floor(math.log2(1 / alpha)) + 1)


def _z_sum(alpha: float, power: float) -> float:
    return _N.inv_cdf(1 - alpha) + _N.inv_cdf(power)


def _mde_score(n: int, sd: float, alpha: float, power: float) -> tuple[float | None, str]:
    if n < 2:
        return None, f"{n} paired row(s): a spread needs at least 2"
    if not sd > 0:
        return None, "zero variance: every row changed by the same amount, so there is no noise to measure a drop against"
    if n < _wilcoxon_min_n(alpha):
        return None, f"{n} rows: the signed-rank test needs at least {_wilcoxon_min_n(alpha)} to reach alpha"
    return _z_sum(alpha, power) * sd / math.sqrt(n * WILCOXON_ARE), ""


# -------------------------------------------------------------------------------------- the API


def detectability(a, b, *, kind: str, alpha: float = 0.05, power: float = DEFAULT_POWER) -> Detectability:
    """The MDE of the one-sided paired test that b is worse than a (both oriented higher-is-better; NaN rows
    dropped pairwise), at these rows' n and noise."""
    _check(alpha, power)
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    n = int(a.size)
    if kind == "binary":
        d = float(np.count_nonzero(a != b)) / n if n else 0.0
        mde, why = _mde_binary(n, d, alpha, power)
        return Detectability("binary", n, d, alpha, power, mde, why)
    if kind != "score":
        raise ValueError(f"kind must be 'binary' or 'score', got {kind!r}")
    sd = float(np.std(b - a, ddof=1)) if n >= 2 else 0.0
    mde, why = _mde_score(n, sd, alpha, power)
    return Detectability("score", n, sd, alpha, power, mde, why)


def at(det: Detectability, *, n: int | None = None, alpha: float | None = None,
       power: float | None = None) -> Detectability:
    """*det*'s MDE at another n (same noise), alpha or power."""
    n = det.n if n is None else n
    alpha = det.alpha if alpha is None else alpha
    power = det.power if power is None else power
    _check(alpha, power)
    if (n, alpha, power) == (det.n, det.alpha, det.power):
        return det
    mde, why = (_mde_binary(n, det.noise, alpha, power) if det.kind == "binary"
                else _mde_score(n, det.noise, alpha, power))
    return Detectability(det.kind, n, det.noise, alpha, power, mde, why)


def rows_needed(det: Detectability, max_drop: float) -> tuple[int | None, str]:
    """The fewest rows (at the same noise) whose MDE is at most *max_drop*, or None and why no number will do."""
    if max_drop <= 0:
        return None, ("max_drop 0: no number of rows rules out every drop; set max_drop to the largest drop "
                      "you can accept")
    if det.kind == "score":
        if not det.noise > 0:
            return None, det.why or "zero variance"
        need = math.ceil((_z_sum(det.alpha, det.power) * det.noise / max_drop) ** 2 / WILCOXON_ARE)
        return max(need, _wilcoxon_min_n(det.alpha), 2), ""
    if max_drop >= 1 - det.noise:
        return None, f"a drop of {max_drop:g} exceeds what rows agreeing {1 - det.noise:.1%} can show"
    # normal-approximation guess, then bisection on the exact power
    d = det.noise
    psi = d + max_drop
    z_a, z_b = _N.inv_cdf(1 - det.alpha), _N.inv_cdf(det.power)
    guess = max(2, math.ceil((z_a * math.sqrt(psi) + z_b * math.sqrt(max(psi - max_drop**2, 1e-12))) ** 2
                             / max_drop**2))

    def enough(n: int) -> bool:
        return mcnemar_power(n, d, max_drop, det.alpha) >= det.power

    lo, hi = 0, guess  # enough(0) is False
    while not enough(hi):
        lo, hi = hi, hi * 2
        if hi > MAX_ROWS:
            return None, f"more than {MAX_ROWS:,} rows"
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return hi, ""


def _check(alpha: float, power: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        raise ValueError(f"power must be in (0, 1), got {power}")
