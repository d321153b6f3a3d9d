"""Two-sample tests in a representation space: can simulated images be told apart?

The paper's anomaly score compresses an image to one number and can miss, or
even invert, a mismatch (a suite of too-extended galaxies may be scored *more*
normal than the observed test set). The tests here ask the broader question
"can the simulated galaxies be told apart from observed ones, and by what?"
on any representation given as an array ``X`` of shape ``(n_images, d)``
with one galaxy id per image: the detector's latent codes ``latent_i``, the
morphology features of :mod:`galrate.rating.morphology`, or anything else.

Three statistics are offered, each with uncertainties that resample
*galaxies*, never images (the projections of one simulated galaxy are not
independent draws):

* :func:`classifier_test` - cross-validated AUROC of a simple classifier
  (standardise + L2 logistic regression by default), folds grouped by galaxy;
  0.5 means indistinguishable.
* :func:`mmd_test` - unbiased maximum mean discrepancy with a Gaussian kernel
  and a permutation p-value that swaps whole galaxies.
* :func:`frechet_distance` - the Frechet distance between Gaussian fits (the
  FID formula applied to any representation).

:func:`compare_representations` runs all three for many sources against a
reference and returns one table row per comparison; :func:`ensemble_summary`
and :func:`ranking_agreement` summarise several detector seeds;
:func:`null_calibration` and :func:`split_null_draws` measure the
false-positive rate of the tests on null comparisons.

Galaxy ids shared by the two sides (two suites rendered from the same
galaxies) are treated as the same galaxy: such images always fall in the
same cross-validation fold, and pairs of images of one galaxy never enter
the MMD statistic.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import linalg, sparse, stats
from threadpoolctl import threadpool_limits

from ..provenance import ProgressCallback, no_progress

log = logging.getLogger(__name__)

__all__ = ["ClassifierResult", "MMDResult", "FrechetResult", "classifier_test",
           "mmd_test", "frechet_distance", "compare_representations",
           "ensemble_summary", "ranking_agreement", "null_calibration",
           "split_null_draws", "holm"]

#: classifiers accepted by :func:`classifier_test`
MODELS = ("logistic", "knn", "gbt")


# ----------------------------------------------------------------------
# results

@dataclass
class ClassifierResult:
    """Outcome of :func:`classifier_test`.

    Attributes
    ----------
    auroc : float
        AUROC of the out-of-fold probabilities, image level (0.5: the
        classifier cannot tell the sides apart).
    ci : (float, float)
        Bootstrap interval of ``auroc``, resampling galaxies within each side.
    p_value : float
        One-sided p-value for "simulated scored higher than reference"
        (Mann-Whitney U test on galaxy-mean out-of-fold probabilities).
    oof_prob_ref, oof_prob_sim : ndarray, shapes (n_ref,), (n_sim,)
        Out-of-fold probability that each image is simulated; NaN for images
        left out by the ``max_images`` cap.
    groups_ref, groups_sim : ndarray of str
        Galaxy id of each image.
    n_ref_gal, n_sim_gal, n_ref_img, n_sim_img : int
        Galaxies and images used on each side.
    auroc_galaxy : float
        AUROC of the galaxy-mean probabilities (the quantity the p-value tests).
    model : str
        The classifier used.
    """

    auroc: float
    ci: tuple[float, float]
    p_value: float
    oof_prob_ref: np.ndarray
    oof_prob_sim: np.ndarray
    groups_ref: np.ndarray
    groups_sim: np.ndarray
    n_ref_gal: int
    n_sim_gal: int
    n_ref_img: int
    n_sim_img: int
    auroc_galaxy: float = float("nan")
    model: str = "logistic"

    def per_galaxy(self) -> pd.DataFrame:
        """Galaxy-mean probability of "simulated", most simulated-looking first.

        Returns
        -------
        DataFrame
            Columns ``side`` ("ref"/"sim"), ``galaxy_id``, ``n_images``,
            ``prob_sim`` (mean out-of-fold probability of the galaxy's images).
        """
        parts = []
        for side, g, p in (("ref", self.groups_ref, self.oof_prob_ref),
                           ("sim", self.groups_sim, self.oof_prob_sim)):
            df = pd.DataFrame({"galaxy_id": g, "prob_sim": p}).dropna()
            agg = df.groupby("galaxy_id", sort=False)["prob_sim"].agg(["size", "mean"])
            agg = agg.rename(columns={"size": "n_images", "mean": "prob_sim"})
            parts.append(agg.reset_index().assign(side=side))
        out = pd.concat(parts, ignore_index=True)
        out = out[["side", "galaxy_id", "n_images", "prob_sim"]]
        return out.sort_values("prob_sim", ascending=False, ignore_index=True)


@dataclass
class MMDResult:
    """Outcome of :func:`mmd_test`.

    Attributes
    ----------
    mmd2 : float
        Unbiased squared MMD over pairs of images of different galaxies
        (dimensionless, kernel values lie in [0, 1]).
    p_value : float
        Permutation p-value, ``(1 + #{perm >= observed}) / (1 + n_perm)``.
    ci : (float, float)
        Bootstrap interval over galaxies; ``(nan, nan)`` when ``n_boot=0``.
    bandwidth : float
        Gaussian kernel width (median heuristic, standardised units).
    n_perm : int
    """

    mmd2: float
    p_value: float
    ci: tuple[float, float]
    bandwidth: float
    n_perm: int


@dataclass
class FrechetResult:
    """Outcome of :func:`frechet_distance`.

    Attributes
    ----------
    distance : float
        ``||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2))``, in squared units of
        the representation.
    ci : (float, float)
        Bootstrap interval over galaxies; ``(nan, nan)`` when ``n_boot=0``.
    mean_term, cov_term : float
        The two terms of ``distance``.
    bootstrap_shift : float
        Mean of the bootstrap replicates minus ``distance``: how much the
        finite-sample bias grows when the galaxies are resampled (NaN without
        bootstrap). A shift comparable to ``distance`` says the distance is
        dominated by sampling noise in the covariances.
    """

    distance: float
    ci: tuple[float, float]
    mean_term: float
    cov_term: float
    bootstrap_shift: float = float("nan")


# ----------------------------------------------------------------------
# input checks and galaxy bookkeeping

def _check_pair(x_ref, x_sim, groups_ref, groups_sim):
    """Validate the two sides; return float64 arrays and str group arrays."""
    out = []
    for name, x, g in (("x_ref", x_ref, groups_ref), ("x_sim", x_sim, groups_sim)):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or len(x) < 2:
            raise ValueError(f"{name} must be a (n_images, d) array with n_images >= 2; "
                             f"got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            bad = int((~np.isfinite(x)).any(axis=1).sum())
            raise ValueError(f"{name} has {bad} row(s) with NaN or inf; drop or impute "
                             f"them first")
        g = np.arange(len(x)).astype(str) if g is None else np.asarray(g).astype(str)
        if g.shape != (len(x),):
            raise ValueError(f"groups for {name} must have one galaxy id per image "
                             f"({len(x)}); got shape {g.shape}")
        out += [x, g]
    x_ref, g_ref, x_sim, g_sim = out
    if x_ref.shape[1] != x_sim.shape[1]:
        raise ValueError(f"x_ref and x_sim must have the same number of columns; got "
                         f"{x_ref.shape[1]} and {x_sim.shape[1]}")
    for name, g in (("groups_ref", g_ref), ("groups_sim", g_sim)):
        if len(np.unique(g)) < 2:
            raise ValueError(f"{name} holds a single galaxy; a two-sample test needs at "
                             f"least 2 galaxies per side")
    return x_ref, g_ref, x_sim, g_sim


@dataclass
class _Units:
    """Galaxy units of a two-sample problem.

    A unit is one galaxy on one side; ``key`` identifies the galaxy itself so
    that a galaxy present on both sides (paired suites) is recognised.
    """

    unit: np.ndarray        # (n_img,) unit index of each image
    side: np.ndarray        # (n_unit,) 0 reference, 1 simulated
    key: np.ndarray         # (n_unit,) galaxy code shared across sides
    size: np.ndarray        # (n_unit,) images per unit
    img_side: np.ndarray = field(default=None)  # (n_img,)

    @property
    def n(self) -> int:
        return len(self.side)


def _units(g_ref: np.ndarray, g_sim: np.ndarray) -> _Units:
    img_side = np.r_[np.zeros(len(g_ref), np.int64), np.ones(len(g_sim), np.int64)]
    keys = np.r_[g_ref, g_sim]
    key_code, _ = pd.factorize(keys)
    unit = np.unique(img_side * (key_code.max() + 1) + key_code, return_inverse=True)[1]
    n_unit = unit.max() + 1
    side = np.zeros(n_unit, np.int64)
    key = np.zeros(n_unit, np.int64)
    side[unit] = img_side
    key[unit] = key_code
    size = np.bincount(unit, minlength=n_unit)
    return _Units(unit=unit, side=side, key=key, size=size, img_side=img_side)


def _cap_by_galaxy(groups: np.ndarray, max_images: int | None,
                   rng: np.random.Generator) -> np.ndarray:
    """Indices of images kept when at most ``max_images`` are allowed.

    Whole galaxies are drawn at random until the cap is reached, so a galaxy
    is never split.
    """
    n = len(groups)
    if max_images is None or n <= max_images:
        return np.arange(n)
    codes, uniq = pd.factorize(groups)
    order = rng.permutation(len(uniq))
    sizes = np.bincount(codes, minlength=len(uniq))[order]
    keep_gal = order[np.cumsum(sizes) <= max_images]
    if len(keep_gal) < 2:
        keep_gal = order[:2]
    return np.flatnonzero(np.isin(codes, keep_gal))


def _unit_bootstrap_weights(u: _Units, n_boot: int, rng: np.random.Generator
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Resampling counts of units, galaxies drawn with replacement per side.

    Returns
    -------
    w_ref, w_sim : ndarray, shape (n_boot, n_unit)
        Multiplicity of each unit in each bootstrap replicate (zero for units
        of the other side).
    """
    out = []
    for s in (0, 1):
        idx = np.flatnonzero(u.side == s)
        w = np.zeros((n_boot, u.n))
        w[:, idx] = rng.multinomial(len(idx), np.full(len(idx), 1.0 / len(idx)),
                                    size=n_boot)
        out.append(w)
    return out[0], out[1]


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


# ----------------------------------------------------------------------
# AUROC helpers

def _auroc(s_ref: np.ndarray, s_sim: np.ndarray) -> float:
    """AUROC of scores, P(sim > ref) + 0.5 P(tie), via ranks."""
    ranks = stats.rankdata(np.r_[s_ref, s_sim])
    n_r, n_s = len(s_ref), len(s_sim)
    u = ranks[n_r:].sum() - n_s * (n_s + 1) / 2
    return float(u / (n_r * n_s))


def _weighted_auroc(s_ref: np.ndarray, w_ref: np.ndarray, s_sim: np.ndarray,
                    w_sim: np.ndarray) -> np.ndarray:
    """AUROC with image weights, vectorised over replicates.

    Parameters
    ----------
    s_ref, s_sim : ndarray, shapes (n_ref,), (n_sim,)
        Scores.
    w_ref, w_sim : ndarray, shapes (B, n_ref), (B, n_sim)
        Non-negative weights per replicate.

    Returns
    -------
    ndarray, shape (B,)
    """
    order = np.argsort(s_ref, kind="stable")
    sorted_ref = s_ref[order]
    cw = np.concatenate([np.zeros((len(w_ref), 1)), np.cumsum(w_ref[:, order], axis=1)],
                        axis=1)
    lo = np.searchsorted(sorted_ref, s_sim, side="left")
    hi = np.searchsorted(sorted_ref, s_sim, side="right")
    below = cw[:, lo]
    ties = cw[:, hi] - below
    num = np.sum(w_sim * (below + 0.5 * ties), axis=1)
    den = w_ref.sum(axis=1) * w_sim.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def _held_out_p(prob: np.ndarray, u: "_Units") -> float:
    """One-sided Mann-Whitney p-value of held-out galaxy-mean probabilities."""
    held = np.isfinite(prob)
    total = np.bincount(u.unit[held], weights=prob[held], minlength=u.n)
    count = np.bincount(u.unit[held], minlength=u.n)
    scored = count > 0
    means = total[scored] / count[scored]
    side = u.side[scored]
    if (side == 1).sum() == 0 or (side == 0).sum() == 0:
        return 1.0
    return float(stats.mannwhitneyu(means[side == 1], means[side == 0],
                                    alternative="greater", method="asymptotic").pvalue)


def _make_model(model: str, seed: int):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if model == "logistic":
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000)
    elif model == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        clf = KNeighborsClassifier(n_neighbors=15)
    elif model == "gbt":
        from sklearn.ensemble import HistGradientBoostingClassifier

        clf = HistGradientBoostingClassifier(max_iter=100, max_leaf_nodes=15,
                                             class_weight="balanced",
                                             random_state=seed)
    else:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}")
    return make_pipeline(StandardScaler(), clf)


def _folds(y: np.ndarray, keys: np.ndarray, n_folds: int, seed: int, grouped: bool
           ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test index pairs of a stratified cross-validation.

    With ``grouped``, whole galaxies (``keys``) are dealt to the folds: the
    galaxies of each kind (reference only, simulated only, on both sides) are
    shuffled and dealt in turn, so every fold receives the same share of each
    kind, and no galaxy has images in two folds.
    """
    rng = np.random.default_rng(seed)
    if grouped:
        n_key = keys.max() + 1
        has = np.zeros((n_key, 2), bool)
        has[keys, y] = True
        kind = has[:, 0] * 1 + has[:, 1] * 2
        fold_of_key = np.empty(n_key, np.int64)
        start = int(rng.integers(n_folds))
        for k in (1, 2, 3):
            members = rng.permutation(np.flatnonzero(kind == k))
            fold_of_key[members] = (start + np.arange(len(members))) % n_folds
            start = (start + len(members)) % n_folds
        fold = fold_of_key[keys]
    else:
        fold = np.empty(len(y), np.int64)
        for c in (0, 1):
            members = rng.permutation(np.flatnonzero(y == c))
            fold[members] = np.arange(len(members)) % n_folds
    return [(np.flatnonzero(fold != f), np.flatnonzero(fold == f)) for f in range(n_folds)]


# ----------------------------------------------------------------------
# classifier two-sample test

def classifier_test(x_ref, x_sim, groups_ref, groups_sim, *, n_folds: int = 5,
                    seed: int = 0, n_boot: int = 200, model: str = "logistic",
                    group_folds: bool = True, max_images: int | None = None,
                    ci_level: float = 0.95) -> ClassifierResult:
    """Classifier two-sample test: cross-validated AUROC of reference vs simulated.

    Parameters
    ----------
    x_ref, x_sim : array, shapes (n_ref, d), (n_sim, d)
        Representation of each image (latent codes, morphology features...).
    groups_ref, groups_sim : array of str, shapes (n_ref,), (n_sim,)
        Galaxy id of each image. A galaxy id present on both sides is the same
        galaxy (paired suites) and its images share a fold.
    n_folds : int
        Cross-validation folds (at least 2; each side needs that many galaxies).
    seed : int
        Seed of the fold assignment, the cap and the bootstrap.
    n_boot : int
        Bootstrap replicates for the AUROC interval (0: no interval).
    model : {"logistic", "knn", "gbt"}
        Standardisation followed by L2 logistic regression (C=1, balanced
        class weights), a 15-nearest-neighbour vote, or histogram gradient
        boosting (balanced class weights).
    group_folds : bool
        Keep all images of a galaxy in one fold (default). ``False`` splits
        images freely; it exists to show the leakage that grouping prevents
        and should not be used for a rating.
    max_images : int, optional
        Cap per side; whole galaxies are drawn at random to respect it.
    ci_level : float
        Coverage of the bootstrap interval.

    Returns
    -------
    ClassifierResult

    Raises
    ------
    ValueError
        Mismatched shapes, non-finite values, fewer galaxies than folds, or an
        unknown model.

    Notes
    -----
    The p-value is one-sided: only a classifier that ranks simulated images
    above reference ones counts as evidence (a cross-validated AUROC below 0.5
    is a known small-sample artefact, not a signal). It is the Mann-Whitney U
    test of galaxy-mean probabilities (a galaxy with many projections counts
    once) given by a classifier fit on a random half of the galaxies to the
    other half: the held-out half never informed the classifier, so under the
    null its U has exactly the Mann-Whitney distribution. Out-of-fold scores of
    the cross-validation are not used for it: each is scored by a classifier
    trained on the other folds' labels, which couples the folds and makes a
    Mann-Whitney test on them anti-conservative (a false-positive rate of 0.12
    at a nominal 0.05 over 80 null draws of Gaussian noise; 0.05 +- 0.025 with
    the held-out half). The price is power: the p-value uses half the galaxies,
    while the AUROC and its interval use all of them.

    The interval resamples galaxies with replacement within each side and
    recomputes the image-level AUROC of the fixed out-of-fold scores; it
    describes the evaluation noise, not the spread over refits.
    """
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}; got {model!r}")
    if int(n_folds) < 2:
        raise ValueError(f"n_folds must be at least 2; got {n_folds}")
    x_ref, g_ref, x_sim, g_sim = _check_pair(x_ref, x_sim, groups_ref, groups_sim)
    rng = np.random.default_rng(seed)
    keep_ref = _cap_by_galaxy(g_ref, max_images, rng)
    keep_sim = _cap_by_galaxy(g_sim, max_images, rng)
    xr, gr, xs, gs = x_ref[keep_ref], g_ref[keep_ref], x_sim[keep_sim], g_sim[keep_sim]

    u = _units(gr, gs)
    n_gal = np.bincount(u.side, minlength=2)
    if n_gal.min() < n_folds:
        raise ValueError(f"n_folds={n_folds} needs at least {n_folds} galaxies per side; "
                         f"got {n_gal[0]} reference and {n_gal[1]} simulated")

    x = np.vstack([xr, xs])
    y = u.img_side
    keys = u.key[u.unit]
    oof = np.full(len(y), np.nan)
    with warnings.catch_warnings():
        from sklearn.exceptions import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)
        for train, test in _folds(y, keys, n_folds, seed, group_folds):
            clf = _make_model(model, seed).fit(x[train], y[train])
            oof[test] = clf.predict_proba(x[test])[:, 1]
        # the p-value: a classifier fit on half of the galaxies scores the other half
        fit, held = next(iter(_folds(y, keys, 2, seed + 1, group_folds)))
        held_prob = np.full(len(y), np.nan)
        held_prob[held] = _make_model(model, seed).fit(x[fit], y[fit]).predict_proba(
            x[held])[:, 1]

    s_ref, s_sim = oof[y == 0], oof[y == 1]
    auroc = _auroc(s_ref, s_sim)

    unit_mean = np.bincount(u.unit, weights=oof, minlength=u.n) / u.size
    m_ref, m_sim = unit_mean[u.side == 0], unit_mean[u.side == 1]
    p_value = _held_out_p(held_prob, u)
    auroc_gal = _auroc(m_ref, m_sim)

    ci = (float("nan"), float("nan"))
    if n_boot > 0:
        w_ref, w_sim = _unit_bootstrap_weights(u, n_boot, rng)
        w_img_ref = w_ref[:, u.unit[y == 0]]
        w_img_sim = w_sim[:, u.unit[y == 1]]
        ci = _interval(_weighted_auroc(s_ref, w_img_ref, s_sim, w_img_sim), ci_level)

    prob_ref = np.full(len(x_ref), np.nan)
    prob_sim = np.full(len(x_sim), np.nan)
    prob_ref[keep_ref] = s_ref
    prob_sim[keep_sim] = s_sim
    return ClassifierResult(auroc=auroc, ci=ci, p_value=p_value, oof_prob_ref=prob_ref,
                            oof_prob_sim=prob_sim, groups_ref=g_ref, groups_sim=g_sim,
                            n_ref_gal=int(n_gal[0]), n_sim_gal=int(n_gal[1]),
                            n_ref_img=len(xr), n_sim_img=len(xs), auroc_galaxy=auroc_gal,
                            model=model)


# ----------------------------------------------------------------------
# maximum mean discrepancy

def _standardise_pooled(x: np.ndarray) -> np.ndarray:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    keep = sd > 0
    return (x[:, keep] - mu[keep]) / sd[keep]


def _sq_distances(z: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", z, z)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)
    np.maximum(d2, 0.0, out=d2)
    np.fill_diagonal(d2, 0.0)
    return d2


def _median_bandwidth(d2: np.ndarray, rng: np.random.Generator, max_n: int = 1000
                      ) -> float:
    n = len(d2)
    idx = rng.choice(n, size=max_n, replace=False) if n > max_n else np.arange(n)
    sub = d2[np.ix_(idx, idx)]
    iu = np.triu_indices(len(idx), k=1)
    med = float(np.sqrt(np.median(sub[iu])))
    return med if med > 0 else 1.0


def _unit_kernel_sums(k: np.ndarray, u: _Units) -> tuple[np.ndarray, np.ndarray]:
    """Kernel sums and pair counts between units, same-galaxy pairs removed.

    Returns
    -------
    g, npair : ndarray, shape (n_unit, n_unit)
        ``g[a, b]`` sums the kernel over image pairs of units a and b;
        ``npair[a, b]`` counts them. Both are zero where a and b are the same
        galaxy (including a == b).
    """
    n_img = len(u.unit)
    m = sparse.csr_matrix((np.ones(n_img), (np.arange(n_img), u.unit)),
                          shape=(n_img, u.n))
    a = np.asarray(m.T @ k)
    g = np.asarray(m.T @ a.T)
    same = u.key[:, None] == u.key[None, :]
    g[same] = 0.0
    npair = np.outer(u.size, u.size).astype(float)
    npair[same] = 0.0
    return g, npair


def _mmd2_from_weights(g: np.ndarray, npair: np.ndarray, w_a: np.ndarray,
                       w_b: np.ndarray) -> np.ndarray:
    """MMD^2 for unit weights of the two sides, vectorised over columns.

    ``w_a``, ``w_b`` have shape (n_unit, P).
    """
    ga, gb = g @ w_a, g @ w_b
    na, nb = npair @ w_a, npair @ w_b
    s_aa, s_bb, s_ab = (ga * w_a).sum(0), (gb * w_b).sum(0), (ga * w_b).sum(0)
    n_aa, n_bb, n_ab = (na * w_a).sum(0), (nb * w_b).sum(0), (na * w_b).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return s_aa / n_aa + s_bb / n_bb - 2.0 * s_ab / n_ab


def mmd_test(x_ref, x_sim, groups_ref, groups_sim, *, n_perm: int = 200, seed: int = 0,
             n_boot: int = 0, max_images: int | None = 2000, bandwidth: float | None = None,
             ci_level: float = 0.95) -> MMDResult:
    """Maximum mean discrepancy test with galaxy-level permutations.

    Parameters
    ----------
    x_ref, x_sim : array, shapes (n_ref, d), (n_sim, d)
        Representation of each image.
    groups_ref, groups_sim : array of str
        Galaxy id of each image.
    n_perm : int
        Permutations of whole galaxies between the sides (0: no p-value).
    seed : int
        Seed of the cap, permutations and bootstrap.
    n_boot : int
        Bootstrap replicates over galaxies for the interval of ``mmd2``.
    max_images : int or None
        Cap per side (whole galaxies drawn at random); the kernel matrix has
        ``(n_ref + n_sim)^2`` entries, 2000 per side is 128 MB.
    bandwidth : float, optional
        Kernel width in standardised units; the median pairwise distance of
        the pooled, standardised data by default.
    ci_level : float
        Coverage of the bootstrap interval.

    Returns
    -------
    MMDResult

    Notes
    -----
    The data are standardised with the pooled mean and standard deviation and
    the kernel is ``k(x, y) = exp(-|x - y|^2 / (2 h^2))``. The statistic is
    the unbiased MMD^2 (Gretton et al. 2012, JMLR 13, 723, eq. 3) computed
    over pairs of images of *different* galaxies only: projections of one
    galaxy are correlated, and keeping their pairs would bias MMD^2 upwards
    whenever a side has several images per galaxy. With that choice every
    pair that enters has the same expectation under the null, so the
    statistic is centred on zero for any number of projections, and bootstrap
    copies of one galaxy never pair with each other.
    """
    x_ref, g_ref, x_sim, g_sim = _check_pair(x_ref, x_sim, groups_ref, groups_sim)
    rng = np.random.default_rng(seed)
    keep_ref = _cap_by_galaxy(g_ref, max_images, rng)
    keep_sim = _cap_by_galaxy(g_sim, max_images, rng)
    u = _units(g_ref[keep_ref], g_sim[keep_sim])

    z = _standardise_pooled(np.vstack([x_ref[keep_ref], x_sim[keep_sim]]))
    d2 = _sq_distances(z)
    h = float(bandwidth) if bandwidth is not None else _median_bandwidth(d2, rng)
    k = np.exp(-d2 / (2.0 * h * h), out=d2)
    g, npair = _unit_kernel_sums(k, u)
    del k, d2

    side = u.side.astype(float)
    mmd2 = float(_mmd2_from_weights(g, npair, (1 - side)[:, None], side[:, None])[0])

    p_value = float("nan")
    if n_perm > 0:
        perm = np.stack([rng.permutation(side) for _ in range(n_perm)], axis=1)
        null = _mmd2_from_weights(g, npair, 1 - perm, perm)
        p_value = float((1 + np.sum(null >= mmd2 - 1e-12)) / (1 + n_perm))

    ci = (float("nan"), float("nan"))
    if n_boot > 0:
        w_ref, w_sim = _unit_bootstrap_weights(u, n_boot, rng)
        ci = _interval(_mmd2_from_weights(g, npair, w_ref.T, w_sim.T), ci_level)
    return MMDResult(mmd2=mmd2, p_value=p_value, ci=ci, bandwidth=h, n_perm=int(n_perm))


# ----------------------------------------------------------------------
# Frechet distance

def _ridge(cov: np.ndarray, ridge: float) -> np.ndarray:
    d = len(cov)
    scale = np.trace(cov) / d if np.trace(cov) > 0 else 1.0
    return cov + ridge * scale * np.eye(d)


def _frechet_fast(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray,
                  ridge: float) -> float:
    """Frechet distance via ``Tr (S1 S2)^(1/2) = sum sqrt(eig(L1^T S2 L1))``.

    ``L1`` is the Cholesky factor of ``S1`` (``S1 = L1 L1^T``); ``L1^T S2 L1``
    is symmetric and has the eigenvalues of ``S1 S2``.
    """
    s1, s2 = _ridge(s1, ridge), _ridge(s2, ridge)
    l1 = np.linalg.cholesky(s1)
    ev = np.linalg.eigvalsh(l1.T @ s2 @ l1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2.0 * np.sum(np.sqrt(np.clip(ev, 0, None))))


def _weighted_moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (reliability-weighted, frequency weights)."""
    wsum = w.sum()
    mu = w @ x / wsum
    xc = x - mu
    cov = (xc * w[:, None]).T @ xc / max(wsum - 1.0, 1.0)
    return mu, cov


def frechet_distance(x_ref, x_sim, groups_ref=None, groups_sim=None, *, n_boot: int = 0,
                     seed: int = 0, ridge: float = 1e-6, ci_level: float = 0.95
                     ) -> FrechetResult:
    """Frechet distance between Gaussian fits of two samples (as FID).

    Parameters
    ----------
    x_ref, x_sim : array, shapes (n_ref, d), (n_sim, d)
        Representation of each image.
    groups_ref, groups_sim : array of str, optional
        Galaxy ids for the bootstrap; each image is its own galaxy if omitted.
    n_boot : int
        Bootstrap replicates over galaxies (0: no interval).
    seed : int
        Seed of the bootstrap.
    ridge : float
        Added to the diagonal of each covariance, relative to its mean
        variance, so that ``sqrt(S1 S2)`` exists for rank-deficient fits.
    ci_level : float
        Coverage of the bootstrap interval.

    Returns
    -------
    FrechetResult

    Notes
    -----
    ``d = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2})`` (Dowson & Landau
    1982; Heusel et al. 2017). The point estimate uses
    :func:`scipy.linalg.sqrtm` and keeps its real part. The bootstrap uses the
    equivalent ``Tr (S1 S2)^{1/2} = sum sqrt(eig(L1^T S2 L1))`` with the
    Cholesky factor ``S1 = L1 L1^T``, which needs one symmetric eigenvalue
    problem and is several times faster.

    The estimate is biased upwards for finite samples (roughly by the
    trace of the covariances times ``d / n``), and resampling galaxies with
    replacement, which leaves fewer distinct galaxies, raises it further, so
    the bootstrap replicates sit above the estimate. The interval therefore
    describes the spread only: the central ``ci_level`` range of the replicates
    is moved so that their median falls on the estimate. The shift is returned
    as ``bootstrap_shift``. Compare distances computed with similar numbers of
    galaxies and dimensions.
    """
    x_ref, g_ref, x_sim, g_sim = _check_pair(x_ref, x_sim, groups_ref, groups_sim)
    mu1, mu2 = x_ref.mean(0), x_sim.mean(0)
    s1 = _ridge(np.atleast_2d(np.cov(x_ref, rowvar=False)), ridge)
    s2 = _ridge(np.atleast_2d(np.cov(x_sim, rowvar=False)), ridge)
    root = linalg.sqrtm(s1 @ s2)
    mean_term = float(np.sum((mu1 - mu2) ** 2))
    cov_term = float(np.trace(s1) + np.trace(s2) - 2.0 * np.trace(np.real(root)))
    distance = mean_term + cov_term
    ci = (float("nan"), float("nan"))
    bias = float("nan")
    if n_boot > 0:
        rng = np.random.default_rng(seed)
        u = _units(g_ref, g_sim)
        w_ref, w_sim = _unit_bootstrap_weights(u, n_boot, rng)
        iref, isim = u.unit[u.img_side == 0], u.unit[u.img_side == 1]
        # many small d x d problems: one BLAS thread avoids thread contention
        with threadpool_limits(limits=1, user_api="blas"):
            values = np.array([
                _frechet_fast(*_weighted_moments(x_ref, w_ref[b, iref]),
                              *_weighted_moments(x_sim, w_sim[b, isim]), ridge)
                for b in range(n_boot)])
        lo, hi = _interval(values, ci_level)
        centre = float(np.median(values))
        ci = (max(distance + lo - centre, 0.0), distance + hi - centre)
        bias = float(np.mean(values)) - distance
    return FrechetResult(distance=distance, ci=ci, mean_term=mean_term, cov_term=cov_term,
                         bootstrap_shift=bias)


# ----------------------------------------------------------------------
# many comparisons

def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN entries stay NaN).

    Parameters
    ----------
    p_values : sequence of float

    Returns
    -------
    ndarray
        Adjusted p-values, capped at 1, monotone in the order of the raw ones.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out[order] = np.minimum(adj, 1.0)
    return out


COMPARISON_COLUMNS = ("source", "reference", "representation", "auroc", "auroc_lo",
                      "auroc_hi", "auroc_p", "auroc_p_holm", "mmd2", "mmd_p",
                      "mmd_p_holm", "frechet", "frechet_lo", "frechet_hi", "n_ref_gal",
                      "n_sim_gal", "n_ref_img", "n_sim_img", "detected")


def compare_representations(features: Mapping[str, np.ndarray],
                            groups: Mapping[str, np.ndarray], reference: str = "observed",
                            pairs: Iterable[tuple[str, str]] | None = None, *,
                            representation: str = "latent", seed: int = 0,
                            n_boot: int = 200, n_perm: int = 200,
                            n_boot_frechet: int | None = 50, n_folds: int = 5,
                            model: str = "logistic", max_images: int | None = 2000,
                            alpha_detect: float = 0.01,
                            progress: ProgressCallback | None = None) -> pd.DataFrame:
    """Compare every source with a reference in one representation space.

    Parameters
    ----------
    features : mapping of source name -> array (n_images, d)
        One representation for every source, the reference included.
    groups : mapping of source name -> array (n_images,)
        Galaxy id of each image of each source.
    reference : str
        The source every other source is compared with.
    pairs : iterable of (source, reference) tuples, optional
        Extra suite-vs-suite comparisons, e.g. ``[("compact-3", "null")]``.
    representation : str
        Name written in the ``representation`` column (``"latent"``,
        ``"morphology"``...).
    seed : int
        Seed shared by every test (fold assignment, permutations, bootstrap).
    n_boot, n_perm : int
        Bootstrap replicates of the AUROC and MMD intervals and MMD permutations.
    n_boot_frechet : int or None
        Bootstrap replicates of the Frechet interval (each one needs two
        eigen-decompositions of a d x d matrix); ``None`` uses ``n_boot``.
    n_folds, model : see :func:`classifier_test`.
    max_images : int or None
        Cap per side for every test, whole galaxies drawn at random.
    alpha_detect : float
        Level of the ``detected`` decision on Holm-adjusted p-values.
    progress : callable, optional
        ``progress(done, total, what)`` after each comparison.

    Returns
    -------
    DataFrame
        One row per comparison with the columns of ``COMPARISON_COLUMNS``:
        ``auroc`` with its interval (``auroc_lo``, ``auroc_hi``) and p-value
        ``auroc_p``, ``mmd2`` with ``mmd_p``, ``frechet`` with its interval,
        galaxy and image counts, Holm-adjusted p-values across the rows
        (``auroc_p_holm``, ``mmd_p_holm``) and ``detected``.

    Notes
    -----
    ``detected`` is ``auroc_lo > 0.5 and auroc_p_holm < alpha_detect``. It
    uses the classifier test because its p-value is not bounded below; the
    smallest permutation p-value of MMD is ``1 / (n_perm + 1)``, which Holm's
    correction over tens of rows pushes above any usual level. Holm's method
    controls the family-wise error rate across all rows of the table.

    The linear algebra runs with one BLAS thread: the problems are small
    (d x d with d ~ 100) and several thread pools competing for two cores
    made the comparison three times slower than a single thread. About 25 s
    for 30 sources of 800 images against 1,000 reference images, d = 128.
    """
    if reference not in features:
        raise ValueError(f"reference {reference!r} not among the sources "
                         f"{sorted(features)}")
    missing = sorted(set(features) - set(groups))
    if missing:
        raise ValueError(f"groups has no galaxy ids for source(s) {missing}")
    jobs = [(s, reference) for s in features if s != reference]
    for a, b in pairs or ():
        for name in (a, b):
            if name not in features:
                raise ValueError(f"pair ({a!r}, {b!r}): unknown source {name!r}; "
                                 f"sources are {sorted(features)}")
        jobs.append((a, b))
    progress = progress or no_progress
    n_bf = n_boot if n_boot_frechet is None else n_boot_frechet

    rows = []
    t0 = time.perf_counter()
    for i, (sim, ref) in enumerate(jobs):
        xr, gr, xs, gs = features[ref], groups[ref], features[sim], groups[sim]
        with threadpool_limits(limits=1, user_api="blas"):
            clf = classifier_test(xr, xs, gr, gs, n_folds=n_folds, seed=seed,
                                  n_boot=n_boot, model=model, max_images=max_images)
            mmd = mmd_test(xr, xs, gr, gs, n_perm=n_perm, seed=seed,
                           max_images=max_images)
            fd = frechet_distance(xr, xs, gr, gs, n_boot=n_bf, seed=seed)
        rows.append({"source": sim, "reference": ref, "representation": representation,
                     "auroc": clf.auroc, "auroc_lo": clf.ci[0], "auroc_hi": clf.ci[1],
                     "auroc_p": clf.p_value, "mmd2": mmd.mmd2, "mmd_p": mmd.p_value,
                     "frechet": fd.distance, "frechet_lo": fd.ci[0],
                     "frechet_hi": fd.ci[1], "n_ref_gal": clf.n_ref_gal,
                     "n_sim_gal": clf.n_sim_gal, "n_ref_img": len(np.asarray(xr)),
                     "n_sim_img": len(np.asarray(xs))})
        progress(i + 1, len(jobs), f"compare ({representation})")
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    df["auroc_p_holm"] = holm(df["auroc_p"])
    df["mmd_p_holm"] = holm(df["mmd_p"])
    df["detected"] = (df["auroc_lo"] > 0.5) & (df["auroc_p_holm"] < alpha_detect)
    log.info("compared %d source(s) in %s space in %.1f s", len(df), representation,
             time.perf_counter() - t0)
    return df[list(COMPARISON_COLUMNS)]


# ----------------------------------------------------------------------
# detector seeds

def ensemble_summary(frames: Sequence[pd.DataFrame], key: str = "source",
                     columns: Sequence[str] = ("auroc", "auroc_lo", "auroc_hi",
                                               "mmd2", "frechet", "detected")
                     ) -> pd.DataFrame:
    """Mean, standard deviation, minimum and maximum of ratings over seeds.

    Parameters
    ----------
    frames : sequence of DataFrame
        One rating table per detector seed, each with a ``key`` column.
    key : str or list of str
        Column(s) identifying a row across seeds (``"source"``; use
        ``["source", "reference"]`` when a table holds suite pairs).
    columns : sequence of str
        Rating columns to summarise; missing ones are skipped. Boolean columns
        give the fraction of seeds where they hold.

    Returns
    -------
    DataFrame
        One row per key with ``<col>_mean``, ``<col>_std`` (ddof=1, NaN for a
        single seed), ``<col>_min``, ``<col>_max`` and ``n_seeds``.
    """
    if not frames:
        raise ValueError("frames is empty; pass one rating table per seed")
    keys = [key] if isinstance(key, str) else list(key)
    parts = []
    for i, f in enumerate(frames):
        miss = [k for k in keys if k not in f.columns]
        if miss:
            raise ValueError(f"frame {i} lacks key column(s) {miss}")
        parts.append(f.assign(_seed=i))
    data = pd.concat(parts, ignore_index=True)
    cols = [c for c in columns if c in data.columns]
    for c in cols:
        data[c] = data[c].astype(float)
    grouped = data.groupby(keys, sort=False)
    out = grouped[cols].agg(["mean", "std", "min", "max"])
    out.columns = [f"{c}_{s}" for c, s in out.columns]
    out["n_seeds"] = grouped["_seed"].nunique()
    return out.reset_index()


def ranking_agreement(frames: Sequence[pd.DataFrame], column: str, key: str = "source",
                      ascending: bool = False) -> dict:
    """How well the seeds agree on the ranking of sources by one column.

    Parameters
    ----------
    frames : sequence of DataFrame
        One rating table per seed.
    column : str
        The rating to rank by (e.g. ``"auroc"``).
    key : str
        Column naming the ranked items.
    ascending : bool
        Rank from the smallest value (default: largest first).

    Returns
    -------
    dict
        ``rankings`` (list of item lists, one per seed), ``kendall_tau``
        (seed x seed matrix as nested lists), ``mean_tau`` and ``min_tau``
        over seed pairs (NaN for one seed), ``identical`` (all rankings equal),
        ``items`` (the items common to all seeds).
    """
    if len(frames) == 0:
        raise ValueError("frames is empty; pass one rating table per seed")
    series = []
    for i, f in enumerate(frames):
        if column not in f.columns or key not in f.columns:
            raise ValueError(f"frame {i} lacks column {column!r} or key {key!r}")
        series.append(f.drop_duplicates(key).set_index(key)[column].astype(float))
    common = [k for k in series[0].index if all(k in s.index for s in series[1:])]
    rankings = [list(s.loc[common].sort_values(ascending=ascending, kind="stable").index)
                for s in series]
    n = len(series)
    tau = np.eye(n)
    pairs = []
    for a in range(n):
        for b in range(a + 1, n):
            t = stats.kendalltau(series[a].loc[common], series[b].loc[common]).statistic
            tau[a, b] = tau[b, a] = t
            pairs.append(t)
    return {"items": common, "rankings": rankings, "kendall_tau": tau.tolist(),
            "mean_tau": float(np.mean(pairs)) if pairs else float("nan"),
            "min_tau": float(np.min(pairs)) if pairs else float("nan"),
            "identical": all(r == rankings[0] for r in rankings)}


# ----------------------------------------------------------------------
# null calibration

def split_null_draws(x, groups, n_draws: int, seed: int = 0, fraction: float = 0.5
                     ) -> dict:
    """Split one sample against itself repeatedly, whole galaxies per half.

    Parameters
    ----------
    x : array, shape (n_images, d)
    groups : array of str, shape (n_images,)
    n_draws : int
        Number of random splits.
    seed : int
    fraction : float
        Share of galaxies on the reference side.

    Returns
    -------
    dict
        Keys ``x_ref``, ``groups_ref``, ``x_null_draws``, ``groups_null_draws``,
        each a list with one entry per split, ready for
        ``null_calibration(**split_null_draws(...))``.
    """
    x = np.asarray(x, dtype=float)
    g = np.asarray(groups).astype(str)
    if len(g) != len(x):
        raise ValueError(f"groups must have one id per row of x ({len(x)}); got {len(g)}")
    if not 0 < fraction < 1:
        raise ValueError(f"fraction must lie in (0, 1); got {fraction}")
    codes, uniq = pd.factorize(g)
    if len(uniq) < 4:
        raise ValueError(f"splitting needs at least 4 galaxies; got {len(uniq)}")
    rng = np.random.default_rng(seed)
    out = {"x_ref": [], "groups_ref": [], "x_null_draws": [], "groups_null_draws": []}
    n_ref = int(round(fraction * len(uniq)))
    for _ in range(int(n_draws)):
        on_ref = np.zeros(len(uniq), bool)
        on_ref[rng.choice(len(uniq), size=n_ref, replace=False)] = True
        mask = on_ref[codes]
        out["x_ref"].append(x[mask])
        out["groups_ref"].append(g[mask])
        out["x_null_draws"].append(x[~mask])
        out["groups_null_draws"].append(g[~mask])
    return out


def null_calibration(x_ref, groups_ref, x_null_draws: Sequence[np.ndarray],
                     groups_null_draws: Sequence[np.ndarray], alpha: float = 0.05, *,
                     tests: Sequence[str] = ("classifier", "mmd"), n_perm: int = 100,
                     n_folds: int = 5, model: str = "logistic", seed: int = 0,
                     max_images: int | None = 2000) -> dict:
    """False-positive rate of the two-sample tests on null comparisons.

    Parameters
    ----------
    x_ref : array (n_ref, d), or a list of arrays (one per draw)
        The reference sample, shared or one per draw (as from
        :func:`split_null_draws`).
    groups_ref : array or list of arrays
        Galaxy ids matching ``x_ref``.
    x_null_draws, groups_null_draws : list of arrays
        Samples drawn from the reference distribution (a null suite, or the
        other half of a split) and their galaxy ids.
    alpha : float
        Nominal level.
    tests : sequence of {"classifier", "mmd"}
    n_perm, n_folds, model, max_images : passed to the tests.
    seed : int
        Draw ``i`` uses seed ``seed + i``.

    Returns
    -------
    dict
        ``alpha``, ``n_draws`` and, per test, ``rejections``, ``rate``,
        ``se`` (binomial standard error of the rate, ``sqrt(r (1-r) / n)``),
        ``se_nominal`` (``sqrt(alpha (1-alpha) / n)``, the spread expected of a
        calibrated test), ``z`` ((rate - alpha) / se_nominal) and ``p_values``.
    """
    n = len(x_null_draws)
    if n == 0 or len(groups_null_draws) != n:
        raise ValueError(f"x_null_draws and groups_null_draws must be non-empty lists of "
                         f"equal length; got {n} and {len(groups_null_draws)}")
    unknown = sorted(set(tests) - {"classifier", "mmd"})
    if unknown:
        raise ValueError(f"unknown test(s) {unknown}; allowed: 'classifier', 'mmd'")
    per_draw = isinstance(x_ref, (list, tuple))
    if per_draw and len(x_ref) != n:
        raise ValueError(f"x_ref is a list of {len(x_ref)} arrays but there are {n} draws")
    pvals = {t: [] for t in tests}
    for i in range(n):
        xr = x_ref[i] if per_draw else x_ref
        gr = groups_ref[i] if per_draw else groups_ref
        xs, gs = x_null_draws[i], groups_null_draws[i]
        if "classifier" in tests:
            r = classifier_test(xr, xs, gr, gs, n_folds=n_folds, seed=seed + i, n_boot=0,
                                model=model, max_images=max_images)
            pvals["classifier"].append(r.p_value)
        if "mmd" in tests:
            r = mmd_test(xr, xs, gr, gs, n_perm=n_perm, seed=seed + i,
                         max_images=max_images)
            pvals["mmd"].append(r.p_value)
    out: dict = {"alpha": alpha, "n_draws": n}
    se_nom = float(np.sqrt(alpha * (1 - alpha) / n))
    for t, ps in pvals.items():
        ps = np.asarray(ps)
        k = int(np.sum(ps <= alpha))
        rate = k / n
        out[t] = {"rejections": k, "rate": rate,
                  "se": float(np.sqrt(rate * (1 - rate) / n)), "se_nominal": se_nom,
                  "z": (rate - alpha) / se_nom, "p_values": ps.tolist()}
    return out
