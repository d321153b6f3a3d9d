"""Statistics of anomaly scores with uncertainties that resample galaxies.

Projections of one simulated galaxy are not independent images, so every
confidence interval here comes from a *cluster bootstrap*: galaxies are drawn
with replacement and each drawn galaxy brings all of its images. Drawing a
galaxy ``k`` times is the same as giving each of its images the weight ``k``,
so a bootstrap replicate is a row of frequency weights over the images and the
statistics below are written for weights ``w`` of shape ``(B, N)``: all ``B``
replicates are evaluated at once with array operations.

All functions are pure: they take arrays and return numbers, arrays or small
dataclasses, and never read files.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats as sps

log = logging.getLogger(__name__)

__all__ = ["Estimate", "cluster_bootstrap", "bootstrap_weights", "weighted_mean",
           "weighted_quantile", "weighted_median", "anomaly_threshold", "anomaly_rate",
           "fraction_above", "histogram_edges", "histogram_overlap", "overlap_statistic",
           "two_sample_tests", "galaxy_means", "reweight_to_mass", "matched_comparison",
           "paired_differences", "correlations", "mass_bin_labels", "assign_mass_bins",
           "between_suites", "PAPER_MASS_BINS"]

#: log10 stellar-mass bin edges (Msun) used by Jin et al. 2024
PAPER_MASS_BINS = (9.0, 10.29, 11.39, 12.5)

#: a statistic evaluated on values ``x`` (N,) or (N, k) with weights ``w`` (B, N)
Statistic = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: largest B*N block evaluated at once (bounds memory to ~100 MB of float64)
_BLOCK = 4_000_000


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a confidence interval.

    Attributes
    ----------
    value : float
        The statistic on the full sample.
    low, high : float
        Bounds of the percentile bootstrap interval (NaN when not computed).
    level : float
        Confidence level of the interval (e.g. 0.95).
    """

    value: float
    low: float = float("nan")
    high: float = float("nan")
    level: float = 0.95

    def to_dict(self) -> dict:
        return {"value": _num(self.value), "low": _num(self.low),
                "high": _num(self.high), "level": self.level}

    def format(self, digits: int = 3) -> str:
        """``"0.120 [0.100, 0.140]"``; the interval is left out when absent."""
        if not np.isfinite(self.value):
            return "n/a"
        text = f"{self.value:.{digits}g}" if abs(self.value) >= 1e4 else \
            f"{self.value:.{digits}f}"
        if np.isfinite(self.low) and np.isfinite(self.high):
            text += f" [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return text

    def __str__(self) -> str:
        return self.format()


def _num(x) -> float | None:
    """A JSON-safe float (None for NaN/inf)."""
    x = float(x)
    return x if np.isfinite(x) else None


# ----------------------------------------------------------------------
# the cluster bootstrap
def _group_index(groups: Sequence | np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """Integer galaxy index (N,) and the number of galaxies."""
    if groups is None:
        return np.arange(n), n
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise ValueError(f"groups: expected shape ({n},) like the values, got "
                         f"{groups.shape}")
    _, inverse = np.unique(groups, return_inverse=True)
    return inverse.ravel(), int(inverse.max()) + 1 if n else 0


def bootstrap_weights(groups: Sequence | np.ndarray | None, n: int, n_boot: int,
                      seed: int | np.random.Generator | None = 0) -> np.ndarray:
    """Frequency weights ``(n_boot, n)`` of a cluster bootstrap over galaxies.

    Each replicate draws as many galaxies as there are, with replacement; an
    image's weight is the number of times its galaxy was drawn.

    Parameters
    ----------
    groups : array (N,) or None
        Galaxy of each image; None makes every image its own galaxy.
    n : int
        Number of images N.
    n_boot : int
        Number of replicates B.
    seed : int or Generator
        Random seed; equal seeds give equal replicates.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot: must be >= 1, got {n_boot}")
    index, n_gal = _group_index(groups, n)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_gal, size=(n_boot, n_gal))
    draws += n_gal * np.arange(n_boot)[:, None]
    counts = np.bincount(draws.ravel(), minlength=n_boot * n_gal).reshape(n_boot, n_gal)
    return counts[:, index].astype(np.float64)


def cluster_bootstrap(values: np.ndarray, groups: Sequence | np.ndarray | None,
                      statistic: str | Statistic = "median", *, n_boot: int = 1000,
                      seed: int | np.random.Generator | None = 0,
                      level: float = 0.95, weights: np.ndarray | None = None) -> Estimate:
    """A statistic with a percentile confidence interval that resamples galaxies.

    Parameters
    ----------
    values : array (N,) or (N, k)
        Per-image values (e.g. anomaly scores A).
    groups : array (N,) or None
        Galaxy identifier of each image. Images of a galaxy are drawn together;
        None treats every image as its own galaxy (the ordinary bootstrap).
    statistic : {"median", "mean"} or callable
        A callable is ``statistic(values, w) -> (B,)`` with frequency weights
        ``w`` of shape ``(B, N)`` (see :func:`weighted_mean`); it must give the
        plain statistic when all weights are one.
    n_boot : int
        Number of bootstrap replicates.
    seed : int or Generator
        Seed of the replicates; equal seeds resample the same galaxies, so
        statistics of one suite share their replicates.
    level : float
        Confidence level, in (0, 1).
    weights : array (B, N), optional
        Replicate weights from :func:`bootstrap_weights`, to share one set of
        replicates between several statistics; ``groups``, ``n_boot`` and
        ``seed`` are then not used.

    Returns
    -------
    Estimate
        Value on the full sample, and the ``(1 - level)/2`` and
        ``(1 + level)/2`` percentiles of the replicates.

    Notes
    -----
    The replicates are evaluated in blocks of at most ``4e6`` weights, so
    memory stays bounded for large tables.
    """
    if not 0 < level < 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    stat = _resolve_statistic(statistic)
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n == 0:
        return Estimate(float("nan"), level=level)
    value = float(stat(values, np.ones((1, n)))[0])
    if weights is None:
        weights = bootstrap_weights(groups, n, n_boot, seed)
    elif weights.ndim != 2 or weights.shape[1] != n:
        raise ValueError(f"weights: expected shape (B, {n}), got {weights.shape}")
    n_boot = len(weights)
    block = max(1, _BLOCK // max(n, 1))
    reps = np.concatenate([stat(values, weights[i:i + block])
                           for i in range(0, n_boot, block)])
    reps = reps[np.isfinite(reps)]
    if len(reps) == 0:
        return Estimate(value, level=level)
    low, high = np.percentile(reps, [50 * (1 - level), 50 * (1 + level)])
    return Estimate(value, float(low), float(high), level)


def _resolve_statistic(statistic: str | Statistic) -> Statistic:
    if callable(statistic):
        return statistic
    named = {"median": weighted_median, "mean": weighted_mean}
    if statistic not in named:
        raise ValueError(f"statistic: expected one of {sorted(named)} or a callable, "
                         f"got {statistic!r}")
    return named[statistic]


# ----------------------------------------------------------------------
# weighted statistics: x (N,), w (B, N) -> (B,)
def weighted_mean(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean of ``x`` (N,) for each row of weights ``w`` (B, N)."""
    w = np.atleast_2d(w)
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ np.asarray(x, dtype=np.float64)) / total


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> np.ndarray:
    """Quantile ``q`` (0-1) of ``x`` (N,) for each row of frequency weights ``w``.

    The weights are read as counts: with integer weights the result equals
    ``np.quantile`` (linear interpolation) of the sample in which image ``i``
    appears ``w[i]`` times; real weights act as fractional counts.

    Returns
    -------
    array (B,)
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q: quantile must be in [0, 1], got {q}")
    x = np.asarray(x, dtype=np.float64)
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    order = np.argsort(x, kind="stable")
    xs = x[order]
    cum = np.cumsum(w[:, order], axis=1)
    total = cum[:, -1]
    h = np.maximum(total - 1, 0) * q
    lo = np.floor(h)
    frac = h - lo
    n = len(xs)
    k_lo = np.minimum((cum <= lo[:, None]).sum(axis=1), n - 1)
    k_hi = np.minimum((cum <= lo[:, None] + 1).sum(axis=1), n - 1)
    out = xs[k_lo] + frac * (xs[k_hi] - xs[k_lo])
    out[total <= 0] = np.nan
    return out


def weighted_median(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted median (see :func:`weighted_quantile`)."""
    return weighted_quantile(x, w, 0.5)


def fraction_above(threshold: float) -> Statistic:
    """Statistic: weighted fraction of values strictly above ``threshold``."""
    def statistic(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return weighted_mean((np.asarray(x) > threshold).astype(np.float64), w)
    return statistic


# ----------------------------------------------------------------------
# anomaly rate
def anomaly_threshold(reference_scores: np.ndarray, percentile: float = 95.0) -> float:
    """The ``percentile`` of the observed reference scores (``np.percentile``, linear).

    Under the null hypothesis (a suite drawn like the observed galaxies) a
    fraction ``1 - percentile/100`` of its images lie above it.
    """
    ref = np.asarray(reference_scores, dtype=np.float64)
    ref = ref[np.isfinite(ref)]
    if len(ref) == 0:
        raise ValueError("reference_scores: no finite observed scores to set the "
                         "anomaly threshold")
    if not 0 < percentile < 100:
        raise ValueError(f"percentile: must be in (0, 100), got {percentile}")
    return float(np.percentile(ref, percentile))


def anomaly_rate(scores: np.ndarray, threshold: float) -> float:
    """Fraction of ``scores`` strictly above ``threshold`` (NaN when empty)."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(np.mean(scores > threshold)) if len(scores) else float("nan")


# ----------------------------------------------------------------------
# histogram overlap
def histogram_edges(*samples: np.ndarray, bins: int | str | np.ndarray = 30) -> np.ndarray:
    """Common bin edges from the pooled samples.

    ``bins`` is a number of equal-width bins spanning the pooled range, a numpy
    rule name (``"fd"``, ``"auto"``...) applied to the pooled values, or the
    edges themselves.
    """
    if isinstance(bins, np.ndarray) or isinstance(bins, (list, tuple)):
        edges = np.asarray(bins, dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bins: explicit edges must be increasing, at least 2")
        return edges
    pooled = np.concatenate([np.asarray(s, dtype=np.float64).ravel() for s in samples])
    pooled = pooled[np.isfinite(pooled)]
    if len(pooled) == 0:
        raise ValueError("histogram_edges: no finite values in the samples")
    return np.histogram_bin_edges(pooled, bins=bins)


def histogram_overlap(suite: np.ndarray, observed: np.ndarray,
                      bins: int | str | np.ndarray = 30) -> float:
    """Overlap of a suite's score histogram with the observed one.

    Both histograms are normalised to unit sum on common bins taken from the
    pooled values (see :func:`histogram_edges`), or on the ``bins`` edges given;
    values beyond the edges count in the end bins. The overlap is the sum of
    the bin-wise minima divided by the sum of the suite's histogram: 1 for
    identical histograms, 0 for disjoint ones.

    Notes
    -----
    The value depends on the binning: finer bins lower the overlap of two
    finite samples drawn from the same distribution. Compare suites only on
    the same bins (the rating uses one set of edges, from all scores pooled).
    """
    edges = histogram_edges(suite, observed, bins=bins)
    return float(overlap_statistic(edges, observed)(
        np.asarray(suite, dtype=np.float64), np.ones((1, len(suite))))[0])


def overlap_statistic(edges: np.ndarray, observed: np.ndarray) -> Statistic:
    """Statistic: histogram overlap of weighted values with a fixed observed histogram.

    Values outside ``edges`` are counted in the first or last bin (in both
    histograms), so a suite far beyond the observed range has a small overlap
    rather than an empty histogram.
    """
    edges = np.asarray(edges, dtype=np.float64)
    n_bins = len(edges) - 1
    observed = np.asarray(observed, dtype=np.float64)
    obs_counts = np.bincount(_bin_index(observed[np.isfinite(observed)], edges),
                             minlength=n_bins)
    obs_hist = obs_counts / max(obs_counts.sum(), 1)

    def statistic(x: np.ndarray, w: np.ndarray) -> np.ndarray:
        idx = _bin_index(x, edges)
        onehot = np.zeros((len(idx), n_bins))
        onehot[np.arange(len(idx)), idx] = 1.0
        counts = np.atleast_2d(w) @ onehot
        total = counts.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            hist = counts / total
            return np.minimum(hist, obs_hist).sum(axis=1) / hist.sum(axis=1)
    return statistic


def _bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value, with values beyond the edges in the end bins."""
    x = np.asarray(x, dtype=np.float64)
    idx = np.searchsorted(edges, x, side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


# ----------------------------------------------------------------------
# two-sample tests
def two_sample_tests(a: np.ndarray, b: np.ndarray) -> dict:
    """Kolmogorov-Smirnov, Anderson-Darling and Wasserstein between two samples.

    Returns
    -------
    dict
        ``ks_stat``, ``ks_p`` (``scipy.stats.ks_2samp``; asymptotic p-value
        when ``n_a * n_b > 1e6``), ``ad_stat``, ``ad_p``
        (``scipy.stats.anderson_ksamp``, midrank variant; its p-value is
        interpolated from tables and clipped to [0.001, 0.25], flagged by
        ``ad_p_clipped``), ``wasserstein`` (in units of the values), ``n_a``,
        ``n_b``.

    Notes
    -----
    The tests assume independent draws. For images that include several
    projections of each galaxy they are overconfident; see
    :func:`galaxy_means` for the per-galaxy version.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    out = {"n_a": int(len(a)), "n_b": int(len(b))}
    if len(a) < 2 or len(b) < 2:
        return out | {"ks_stat": None, "ks_p": None, "ad_stat": None, "ad_p": None,
                      "ad_p_clipped": None, "wasserstein": None}
    # the exact KS p-value costs O(n_a n_b); beyond 1e6 pairs the asymptotic one is
    # accurate to far better than the test's own meaning
    ks = sps.ks_2samp(a, b, method="asymp" if len(a) * len(b) > 1e6 else "auto")
    out |= {"ks_stat": float(ks.statistic), "ks_p": float(ks.pvalue)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ad = sps.anderson_ksamp([a, b], variant="midrank")
        ad_p = float(ad.pvalue)
        out |= {"ad_stat": float(ad.statistic), "ad_p": ad_p,
                "ad_p_clipped": bool(ad_p <= 0.001 or ad_p >= 0.25)}
    except ValueError:              # all values identical
        out |= {"ad_stat": None, "ad_p": None, "ad_p_clipped": None}
    out["wasserstein"] = float(sps.wasserstein_distance(a, b))
    return out


def galaxy_means(values: np.ndarray, groups: Sequence | np.ndarray) -> pd.DataFrame:
    """Per-galaxy mean, standard deviation and number of images.

    Returns
    -------
    DataFrame
        Indexed by galaxy, columns ``mean``, ``std`` (over projections, ddof=0)
        and ``n``.
    """
    df = pd.DataFrame({"g": np.asarray(groups), "x": np.asarray(values, dtype=float)})
    grouped = df.groupby("g", sort=True)["x"]
    return pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0),
                         "n": grouped.size()})


# ----------------------------------------------------------------------
# mass binning and property matching
def mass_bin_labels(edges: Sequence[float]) -> list[str]:
    """``["9.00-10.29", ...]`` for bin edges in log10 Msun."""
    edges = _check_edges(edges, "mass_bins")
    return [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(edges[:-1], edges[1:])]


def assign_mass_bins(mass: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin index of each mass (-1 outside the edges; the last bin is closed)."""
    edges = _check_edges(edges, "mass_bins")
    mass = np.asarray(mass, dtype=np.float64)
    idx = np.searchsorted(edges, mass, side="right") - 1
    idx[mass == edges[-1]] = len(edges) - 2
    idx[(idx < 0) | (idx >= len(edges) - 1) | ~np.isfinite(mass)] = -1
    return idx


def _check_edges(edges, name: str) -> np.ndarray:
    edges = np.asarray(edges, dtype=np.float64)
    if edges.ndim != 1 or len(edges) < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"{name}: expected at least two increasing edges, got "
                         f"{edges.tolist()}")
    return edges


def reweight_to_mass(reference_mass: np.ndarray, target_mass: np.ndarray,
                     bin_width: float = 0.25) -> tuple[np.ndarray, float]:
    """Weights that give the reference sample the target's stellar-mass distribution.

    Masses are binned on a common grid of ``bin_width`` dex; a reference image
    in bin ``j`` gets the weight ``p_target(j) / p_reference(j)``. Target
    galaxies in bins without reference images cannot be matched.

    Parameters
    ----------
    reference_mass : array (N_ref,)
        log10 stellar mass (Msun) of the observed reference images.
    target_mass : array (N_target,)
        log10 stellar mass (Msun) of the suite's images.
    bin_width : float
        Width of the matching bins in dex.

    Returns
    -------
    weights : array (N_ref,)
        Non-negative weights with mean 1 over the reference (NaN masses get 0).
    unmatched : float
        Fraction of target images in bins where the reference is empty.
    """
    if bin_width <= 0:
        raise ValueError(f"bin_width: must be > 0 dex, got {bin_width}")
    ref = np.asarray(reference_mass, dtype=np.float64)
    tgt = np.asarray(target_mass, dtype=np.float64)
    tgt = tgt[np.isfinite(tgt)]
    ok = np.isfinite(ref)
    if not ok.any() or len(tgt) == 0:
        raise ValueError("reweight_to_mass: need finite masses in both samples")
    lo = np.floor(min(ref[ok].min(), tgt.min()) / bin_width) * bin_width
    hi = max(ref[ok].max(), tgt.max()) + bin_width
    edges = np.arange(lo, hi + bin_width / 2, bin_width)
    ref_counts, _ = np.histogram(ref[ok], edges)
    tgt_counts, _ = np.histogram(tgt, edges)
    p_ref = ref_counts / ref_counts.sum()
    p_tgt = tgt_counts / tgt_counts.sum()
    unmatched = float(p_tgt[ref_counts == 0].sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(ref_counts > 0, p_tgt / p_ref, 0.0)
    idx = np.clip(np.searchsorted(edges, ref, side="right") - 1, 0, len(ratio) - 1)
    weights = np.where(ok, ratio[idx], 0.0)
    if weights.sum() <= 0:
        raise ValueError("reweight_to_mass: the mass ranges of the reference and the "
                         "target do not overlap")
    return weights * (len(weights) / weights.sum()), unmatched


def matched_comparison(suite_scores: np.ndarray, suite_mass: np.ndarray,
                       reference_scores: np.ndarray, reference_mass: np.ndarray,
                       threshold: float, percentile: float = 95.0,
                       bin_width: float = 0.25) -> dict:
    """Compare a suite with the observed reference reweighted to the suite's masses.

    Returns
    -------
    dict
        ``reference_median``: median A of the mass-matched reference;
        ``reference_rate``: fraction of the matched reference above the global
        ``threshold`` (what the suite's anomaly rate should be under the null,
        given its masses); ``matched_threshold``: the ``percentile`` of the
        matched reference; ``matched_rate``: fraction of the suite above
        ``matched_threshold`` (``1 - percentile/100`` under the null);
        ``unmatched_fraction``: suite images in mass bins empty in the reference;
        ``effective_n``: Kish effective sample size of the weights.
    """
    weights, unmatched = reweight_to_mass(reference_mass, suite_mass, bin_width)
    ref = np.asarray(reference_scores, dtype=np.float64)
    w = weights[None, :]
    matched_threshold = float(weighted_quantile(ref, w, percentile / 100)[0])
    return {
        "reference_median": float(weighted_median(ref, w)[0]),
        "reference_rate": float(weighted_mean((ref > threshold).astype(float), w)[0]),
        "matched_threshold": matched_threshold,
        "matched_rate": anomaly_rate(suite_scores, matched_threshold),
        "unmatched_fraction": unmatched,
        "effective_n": float(weights.sum() ** 2 / np.sum(weights ** 2)),
        "bin_width_dex": bin_width,
    }


# ----------------------------------------------------------------------
# paired comparison of suites that share galaxies
def paired_differences(a_values: np.ndarray, a_groups: Sequence | np.ndarray,
                       b_values: np.ndarray, b_groups: Sequence | np.ndarray, *,
                       n_boot: int = 1000, seed: int | None = 0,
                       level: float = 0.95) -> dict:
    """Galaxy-by-galaxy difference of mean scores between two suites (B minus A).

    Each galaxy present in both suites contributes one difference
    ``d = mean_B - mean_A`` of its per-galaxy mean scores (over projections).

    Returns
    -------
    dict
        ``n_galaxies``; ``mean_difference`` and ``median_difference`` as
        :class:`Estimate` dicts (bootstrap over galaxies); ``fraction_positive``;
        ``sign_p`` (two-sided binomial sign test, zero differences dropped);
        ``wilcoxon_stat``, ``wilcoxon_p`` (``scipy.stats.wilcoxon``);
        ``differences``: DataFrame galaxy -> ``mean_a``, ``mean_b``, ``d``
        (not JSON; dropped by the rating).
    """
    ma = galaxy_means(a_values, a_groups)["mean"]
    mb = galaxy_means(b_values, b_groups)["mean"]
    both = pd.concat({"mean_a": ma, "mean_b": mb}, axis=1, join="inner").dropna()
    both["d"] = both["mean_b"] - both["mean_a"]
    d = both["d"].to_numpy()
    out: dict = {"n_galaxies": int(len(d)), "differences": both}
    if len(d) == 0:
        return out | {"mean_difference": None, "median_difference": None,
                      "fraction_positive": None, "sign_p": None,
                      "wilcoxon_stat": None, "wilcoxon_p": None}
    out["mean_difference"] = cluster_bootstrap(d, None, "mean", n_boot=n_boot,
                                               seed=seed, level=level).to_dict()
    out["median_difference"] = cluster_bootstrap(d, None, "median", n_boot=n_boot,
                                                 seed=seed, level=level).to_dict()
    n_pos, n_neg = int(np.sum(d > 0)), int(np.sum(d < 0))
    out["fraction_positive"] = n_pos / len(d)
    out["sign_p"] = float(sps.binomtest(n_pos, n_pos + n_neg).pvalue) \
        if n_pos + n_neg else None
    if n_pos + n_neg >= 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            w = sps.wilcoxon(d, zero_method="wilcox")
        out["wilcoxon_stat"], out["wilcoxon_p"] = float(w.statistic), float(w.pvalue)
    else:
        out["wilcoxon_stat"], out["wilcoxon_p"] = None, None
    return out


# ----------------------------------------------------------------------
# correlations with properties
def _weighted_pearson(xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted Pearson r of the two columns of ``xy`` (N, 2), weights (B, N)."""
    w = np.atleast_2d(w)
    total = w.sum(axis=1)
    mx = (w @ xy[:, 0]) / total
    my = (w @ xy[:, 1]) / total
    sxy = (w @ (xy[:, 0] * xy[:, 1])) / total - mx * my
    sxx = (w @ xy[:, 0] ** 2) / total - mx ** 2
    syy = (w @ xy[:, 1] ** 2) / total - my ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return sxy / np.sqrt(np.clip(sxx, 0, None) * np.clip(syy, 0, None))


def _weighted_midranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (1-based) of ``x`` in the sample repeated by weights (B, N)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    which = np.cumsum(np.r_[True, xs[1:] != xs[:-1]]) - 1   # unique value per sorted pos
    wu = np.add.reduceat(w[:, order], starts, axis=1)          # weight per unique value
    below = np.cumsum(wu, axis=1) - wu
    rank_u = below + (wu + 1) / 2
    ranks = np.empty_like(w)
    ranks[:, order] = rank_u[:, which]
    return ranks


def _pearson_statistic(xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _weighted_pearson(xy, w)


def _spearman_statistic(xy: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = np.atleast_2d(w)
    rx = _weighted_midranks(xy[:, 0], w)
    ry = _weighted_midranks(xy[:, 1], w)
    total = w.sum(axis=1)
    mx = np.sum(w * rx, axis=1) / total
    my = np.sum(w * ry, axis=1) / total
    sxy = np.sum(w * rx * ry, axis=1) / total - mx * my
    sxx = np.sum(w * rx ** 2, axis=1) / total - mx ** 2
    syy = np.sum(w * ry ** 2, axis=1) / total - my ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return sxy / np.sqrt(np.clip(sxx, 0, None) * np.clip(syy, 0, None))


def correlations(table: pd.DataFrame, score_column: str, properties: Sequence[str],
                 group_column: str | None = None, *, n_boot: int = 1000,
                 seed: int | None = 0, level: float = 0.95) -> pd.DataFrame:
    """Spearman and Pearson correlations of the score with each property.

    Parameters
    ----------
    table : DataFrame
        One row per image.
    score_column : str
        The score (e.g. ``score_latent``).
    properties : sequence of str
        Numeric property columns; those with fewer than 3 distinct finite
        values (in rows where the score is finite) are skipped.
    group_column : str, optional
        Galaxy column for the cluster bootstrap; None: images are independent.

    Returns
    -------
    DataFrame
        One row per property: ``property``, ``n``, ``spearman_r``,
        ``spearman_p``, ``spearman_low``, ``spearman_high``, ``pearson_r``,
        ``pearson_p``, ``pearson_low``, ``pearson_high``, and ``spearman_r_galaxy``,
        ``spearman_p_galaxy`` on per-galaxy means.

    Notes
    -----
    ``*_p`` treat images as independent and are overconfident when galaxies
    have several projections; the intervals resample galaxies, and the
    ``*_galaxy`` columns use one point per galaxy.
    """
    rows = []
    for k, prop in enumerate(properties):
        cols = [score_column, prop] + ([group_column] if group_column else [])
        sub = table[cols].dropna()
        x = sub[prop].to_numpy(dtype=np.float64)
        y = sub[score_column].to_numpy(dtype=np.float64)
        if len(np.unique(x)) < 3 or len(np.unique(y)) < 3:
            continue
        groups = sub[group_column].to_numpy() if group_column else None
        xy = np.column_stack([x, y])
        weights = bootstrap_weights(groups, len(x), n_boot, _derive_seed(seed, k))
        sp = cluster_bootstrap(xy, groups, _spearman_statistic, level=level,
                               weights=weights)
        pe = cluster_bootstrap(xy, groups, _pearson_statistic, level=level,
                               weights=weights)
        row = {"property": prop, "n": int(len(x)),
               "spearman_r": sp.value, "spearman_p": float(sps.spearmanr(x, y).pvalue),
               "spearman_low": sp.low, "spearman_high": sp.high,
               "pearson_r": pe.value, "pearson_p": float(sps.pearsonr(x, y).pvalue),
               "pearson_low": pe.low, "pearson_high": pe.high,
               "spearman_r_galaxy": np.nan, "spearman_p_galaxy": np.nan}
        if groups is not None:
            g = sub.groupby(group_column)[[prop, score_column]].mean()
            if len(g) >= 3 and g[prop].nunique() >= 3 and g[score_column].nunique() >= 3:
                res = sps.spearmanr(g[prop], g[score_column])
                row["spearman_r_galaxy"] = float(res.statistic)
                row["spearman_p_galaxy"] = float(res.pvalue)
        rows.append(row)
    return pd.DataFrame(rows, columns=_CORR_COLUMNS)


_CORR_COLUMNS = ["property", "n", "spearman_r", "spearman_p", "spearman_low",
                 "spearman_high", "pearson_r", "pearson_p", "pearson_low",
                 "pearson_high", "spearman_r_galaxy", "spearman_p_galaxy"]


def _derive_seed(seed: int | None, k: int) -> int | None:
    """A distinct, reproducible seed for the k-th of several bootstraps."""
    if seed is None:
        return None
    return int(np.random.SeedSequence([int(seed), k]).generate_state(1)[0])


def between_suites(samples: Mapping[str, np.ndarray]) -> list[dict]:
    """:func:`two_sample_tests` for every pair of named samples."""
    return [{"a": a, "b": b} | two_sample_tests(samples[a], samples[b])
            for a, b in combinations(samples, 2)]
