"""Group-sequential boundaries: Lan-DeMets alpha spending over planned looks, by recursive numerical integration.

A pair's per-question differences are judged in batches and looked at only at planned numbers of
questions n_1 < ... < n_K = N (the looks). At look k the statistic is Z_k = mean / (sd / sqrt(n_k)).
For large n the Z_k behave as a Brownian motion observed at the information fractions t_k = n_k / N:
S_k = Z_k sqrt(t_k) has independent normal increments of variance t_k - t_{k-1} and mean
theta (t_k - t_{k-1}), theta being the drift (0 under "no difference").

Two-sided symmetric boundaries c_1 .. c_K are chosen so that the chance of first crossing at look k
under theta = 0 is exactly what the spending function allots to that look, alpha(t_k) - alpha(t_{k-1})
(Lan & DeMets 1983; spending functions of O'Brien-Fleming and Pocock type, and one of the
Hwang-Shih-DeCani family in between). The chances of crossing are computed by the recursive
numerical integration of Armitage, McPherson & Rowe (1969): the sub-density of S_k on the
continuation region, carried from look to look by convolving it with the normal increment,
integrated with Simpson's rule (the method of Jennison & Turnbull, "Group Sequential Methods",
2000, ch. 19, written here from the formulas).

The same recursion with a drift gives the chance of deciding at each look for a true gap, hence the
expected number of questions a decision needs (the cost forecast of --until-decided).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

SPENDING_FUNCTIONS = ("obf", "pocock", "hsd")
HSD_GAMMA = -2.0  # the Hwang-Shih-DeCani family's parameter: between Pocock (1) and O'Brien-Fleming (-4)
TAIL = 12.0  # an unbounded continuation region is cut at this many standard deviations
KERNEL_REACH = 10.0  # normal density beyond this many sd: below 1e-21, left out
BLOCK = 64  # new grid points computed together


def spent_alpha(spending: str, t: np.ndarray | float, alpha: float) -> np.ndarray:
    """Two-sided alpha spent by information fraction t (in [0, 1]); alpha at t = 1.

    obf: 2 - 2 Phi(z_{1-alpha/2} / sqrt(t)), little early and most at the end (O'Brien-Fleming-like, in
    Lan & DeMets' two-sided form);
    pocock: alpha log(1 + (e - 1) t), spread nearly evenly (Pocock-like);
    hsd: alpha (1 - exp(-gamma t)) / (1 - exp(-gamma)), gamma = -2 (Hwang, Shih & DeCani 1990), in between.
    """
    t = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    if spending == "obf":
        z = stats.norm.isf(alpha / 2)
        with np.errstate(divide="ignore"):
            return np.where(t > 0, 2 * stats.norm.sf(z / np.sqrt(np.maximum(t, 1e-300))), 0.0)
    if spending == "pocock":
        return alpha * np.log1p((math.e - 1) * t)
    if spending == "hsd":
        return alpha * np.expm1(-HSD_GAMMA * t) / math.expm1(-HSD_GAMMA)
    raise ValueError(f"unknown spending function {spending!r} (known: {', '.join(SPENDING_FUNCTIONS)})")


def _simpson(lo: float, hi: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Points and Simpson weights on [lo, hi], spaced at most `step` apart (an odd number, at least 101)."""
    intervals = max(100, 2 * math.ceil((hi - lo) / (2 * step)))
    x = np.linspace(lo, hi, intervals + 1)
    w = np.full(intervals + 1, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return x, w * (hi - lo) / (3 * intervals)


class _Recursion:
    """The sub-density of S_k on the continuation region, look by look (theta: the drift)."""

    def __init__(self, fractions: Sequence[float], theta: float) -> None:
        self.t = np.asarray(fractions, dtype=float)
        if len(self.t) == 0 or self.t[0] <= 0 or np.any(np.diff(self.t) <= 0):
            raise ValueError("information fractions must be positive and increasing")
        self.theta = theta
        self.k = 0  # looks passed
        self.x = np.zeros(1)  # grid of S after the looks passed (a point mass at 0 before the first)
        self.w = np.ones(1)  # f(x) times the integration weight

    def _increment(self) -> tuple[float, float]:
        previous = self.t[self.k - 1] if self.k else 0.0
        dt = self.t[self.k] - previous
        return self.theta * dt, math.sqrt(dt)

    def exit(self, c: float) -> tuple[float, float]:
        """Chances of first crossing above c and below -c (Z scale) at the next look."""
        if math.isinf(c):
            return 0.0, 0.0
        mean, sd = self._increment()
        b = c * math.sqrt(self.t[self.k])
        # special.ndtr is the normal cdf without scipy.stats' overhead: brentq calls this some 40 times a look
        up = float(self.w @ special.ndtr((self.x + mean - b) / sd))
        down = float(self.w @ special.ndtr((-b - self.x - mean) / sd))
        return up, down

    def advance(self, c: float) -> None:
        """Pass the next look with boundary c: the sub-density of S on (-c sqrt(t), c sqrt(t))."""
        mean, sd = self._increment()
        root = math.sqrt(self.t[self.k])
        centre = self.theta * self.t[self.k]
        b = c * root if math.isfinite(c) else abs(centre) + TAIL * root
        # points closer than an eighth of this increment's and the next one's sd: the density is smooth on
        # that scale and the next convolution's kernel is that wide, so Simpson's rule stays accurate
        following = math.sqrt(self.t[self.k + 1] - self.t[self.k]) if self.k + 1 < len(self.t) else sd
        x, weights = _simpson(-b, b, min(sd, following) / 8)
        density = np.empty_like(x)
        # the kernel is nil beyond KERNEL_REACH sd: each block of new points meets only a slice of the old
        # grid, which keeps many looks (small batches) from costing a dense points x points matrix each
        for start in range(0, len(x), BLOCK):
            block = x[start:start + BLOCK]
            lo, hi = np.searchsorted(self.x, [block[0] - mean - KERNEL_REACH * sd, block[-1] - mean + KERNEL_REACH * sd])
            z = (block[:, None] - self.x[None, lo:hi] - mean) / sd
            density[start:start + BLOCK] = np.exp(-0.5 * z * z) @ self.w[lo:hi]
        self.w = density / (sd * math.sqrt(2 * math.pi)) * weights
        self.x = x
        self.k += 1


def crossing_probabilities(fractions: Sequence[float], bounds: Sequence[float], theta: float = 0.0
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Per look, the chance that Z first crosses above +c_k and below -c_k there, for drift theta.

    theta is the mean of Z at t = 1: gap * sqrt(N) / sd for a true gap, N questions at t = 1.
    """
    if len(bounds) != len(fractions):
        raise ValueError("one boundary per look")
    rec = _Recursion(fractions, theta)
    up, down = np.zeros(len(bounds)), np.zeros(len(bounds))
    for k, c in enumerate(bounds):
        up[k], down[k] = rec.exit(float(c))
        if k + 1 < len(bounds):
            rec.advance(float(c))
    return up, down


@lru_cache(maxsize=64)
def _boundaries(fractions: tuple[float, ...], alpha: float, spending: str) -> tuple[float, ...]:
    allotted = np.diff(np.concatenate([[0.0], spent_alpha(spending, np.asarray(fractions), alpha)]))
    rec = _Recursion(fractions, 0.0)
    bounds: list[float] = []
    for k, share in enumerate(allotted):
        if share <= 1e-15:
            c = math.inf  # nothing to spend here: no decision at this look
        else:
            c = optimize.brentq(lambda c, share=share: sum(rec.exit(c)) - share, 1e-6, 40.0, xtol=1e-10)
        bounds.append(c)
        if k + 1 < len(allotted):
            rec.advance(c)
    return tuple(bounds)


def boundaries(fractions: Sequence[float], alpha: float, spending: str) -> np.ndarray:
    """Two-sided Z boundaries c_k at the information fractions (the last one 1), alpha spent by `spending`.

    Reject "no difference" at the first look with |Z_k| >= c_k; under no difference that happens at
    look k with chance alpha(t_k) - alpha(t_{k-1}) (for a normal statistic with known variance).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    spent_alpha(spending, 1.0, alpha)  # an unknown name fails here
    return np.asarray(_boundaries(tuple(float(t) for t in fractions), float(alpha), spending))


def student_bounds(bounds: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """The boundaries for a t statistic (variance estimated from n_k questions): the same tail chance at
    n_k - 1 degrees of freedom (Jennison & Turnbull's significance-level approach, ch. 11)."""
    counts = np.asarray(counts, dtype=float)
    tail = stats.norm.sf(np.asarray(bounds, dtype=float))
    return np.where(counts > 1, stats.t.isf(tail, np.maximum(counts - 1, 1)), np.inf)


def expected_questions(fractions: Sequence[float], bounds: Sequence[float], looks: Sequence[int], theta: float
                       ) -> tuple[float, float]:
    """(expected questions judged, chance of a decision by the last look) for drift theta; a run that
    decides nothing judges all looks[-1] questions."""
    up, down = crossing_probabilities(fractions, bounds, theta)
    stop = up + down
    decided = float(stop.sum())
    return float(np.dot(stop, looks) + (1 - decided) * looks[-1]), decided
