"""Known-answer tests of the representation-space two-sample tests."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from galrate.rating import twosample as ts


def gaussian_sides(rng, n_ref, n_sim, d=1, shift=0.0):
    """One image per galaxy on each side; the simulated side shifted along x0."""
    x_ref = rng.normal(size=(n_ref, d))
    x_sim = rng.normal(size=(n_sim, d))
    x_sim[:, 0] += shift
    g_ref = np.array([f"obs{i}" for i in range(n_ref)])
    g_sim = np.array([f"sim{i}" for i in range(n_sim)])
    return x_ref, x_sim, g_ref, g_sim


def projected_side(rng, n_gal, n_proj, d, tag, spread=0.6):
    """Galaxies with ``n_proj`` correlated projections; unit variance per image."""
    centre = rng.normal(scale=np.sqrt(1 - spread**2), size=(n_gal, d))
    x = np.repeat(centre, n_proj, axis=0) + spread * rng.normal(size=(n_gal * n_proj, d))
    g = np.repeat([f"{tag}{i}" for i in range(n_gal)], n_proj)
    return x, g


def exact_moments(rng, n, mean, cov):
    """Samples whose empirical mean and covariance (ddof=1) equal the targets."""
    d = len(mean)
    z = rng.normal(size=(n, d))
    z -= z.mean(axis=0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.atleast_2d(np.cov(z, rowvar=False)))).T
    return mean + z @ np.linalg.cholesky(cov).T


# ----------------------------------------------------------------------
# classifier test

def test_classifier_auroc_matches_theory_for_mean_shift(rng):
    # for a 1-d unit-variance mean shift delta the best AUROC is Phi(delta / sqrt 2)
    delta = 1.0
    x_ref, x_sim, g_ref, g_sim = gaussian_sides(rng, 600, 600, shift=delta)
    res = ts.classifier_test(x_ref, x_sim, g_ref, g_sim, seed=1, n_boot=200)
    theory = stats.norm.cdf(delta / np.sqrt(2))
    np.testing.assert_allclose(res.auroc, theory, atol=0.035)
    assert res.ci[0] < res.auroc < res.ci[1]
    assert res.ci[0] > 0.5
    assert res.p_value < 1e-10
    assert (res.n_ref_gal, res.n_sim_gal, res.n_ref_img, res.n_sim_img) == (600,) * 4


def test_auroc_helpers_match_sklearn(rng):
    s_ref, s_sim = rng.normal(size=50).round(1), rng.normal(0.5, size=40).round(1)
    y = np.r_[np.zeros(50), np.ones(40)]
    expect = roc_auc_score(y, np.r_[s_ref, s_sim])
    np.testing.assert_allclose(ts._auroc(s_ref, s_sim), expect, rtol=1e-12)
    w_ref, w_sim = rng.integers(0, 4, size=50), rng.integers(0, 4, size=40)
    got = ts._weighted_auroc(s_ref, w_ref[None].astype(float), s_sim,
                             w_sim[None].astype(float))
    weighted = roc_auc_score(y, np.r_[s_ref, s_sim], sample_weight=np.r_[w_ref, w_sim])
    np.testing.assert_allclose(got[0], weighted, rtol=1e-12)


def test_oof_probabilities_cover_every_image_and_rank_galaxies(rng):
    x_ref, x_sim, g_ref, g_sim = gaussian_sides(rng, 80, 80, shift=3.0)
    res = ts.classifier_test(x_ref, x_sim, g_ref, g_sim, n_boot=0)
    assert np.all(np.isfinite(res.oof_prob_ref)) and np.all(np.isfinite(res.oof_prob_sim))
    table = res.per_galaxy()
    assert len(table) == 160
    assert table["prob_sim"].is_monotonic_decreasing
    # the most simulated-looking galaxy is the simulated one furthest along x0
    top = table.iloc[0]
    assert top["side"] == "sim" and top["galaxy_id"] == g_sim[np.argmax(x_sim[:, 0])]


def test_size_of_classifier_and_mmd_under_the_null():
    # 40 null comparisons: simulated galaxies with 3 correlated projections each,
    # observed galaxies with one image, same marginal distribution. At alpha = 0.05
    # the count of rejections is Binomial(40, 0.05); P(X >= 7) = 0.003.
    rejections = {"classifier": 0, "mmd": 0}
    for rep in range(40):
        rng = np.random.default_rng(1000 + rep)
        x_ref, g_ref = projected_side(rng, 90, 1, 3, "o", spread=0.0)
        x_sim, g_sim = projected_side(rng, 30, 3, 3, "s")
        clf = ts.classifier_test(x_ref, x_sim, g_ref, g_sim, n_boot=0, seed=rep)
        mmd = ts.mmd_test(x_ref, x_sim, g_ref, g_sim, n_perm=100, seed=rep)
        rejections["classifier"] += clf.p_value <= 0.05
        rejections["mmd"] += mmd.p_value <= 0.05
    assert rejections["classifier"] <= 6, rejections
    assert rejections["mmd"] <= 6, rejections


def test_grouped_folds_prevent_leakage_of_projections():
    # same distribution on both sides, 6 near-identical projections per galaxy:
    # with images split freely the classifier recognises galaxies seen in
    # training and the AUROC is inflated; with galaxy-grouped folds it is not
    grouped, free = [], []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        x_ref, g_ref = projected_side(rng, 50, 6, 50, "a", spread=0.05)
        x_sim, g_sim = projected_side(rng, 50, 6, 50, "b", spread=0.05)
        grouped.append(ts.classifier_test(x_ref, x_sim, g_ref, g_sim, n_boot=0,
                                          seed=seed).auroc)
        free.append(ts.classifier_test(x_ref, x_sim, g_ref, g_sim, n_boot=0, seed=seed,
                                       group_folds=False).auroc)
    assert abs(np.mean(grouped) - 0.5) < 0.1, grouped
    assert np.mean(free) > 0.8, free
    assert all(f > g for f, g in zip(free, grouped))


def test_folds_keep_each_galaxy_in_one_fold_even_across_sides():
    y = np.r_[np.zeros(30, int), np.ones(40, int)]
    keys = np.r_[np.arange(30) % 10, 5 + np.arange(40) % 20]   # keys 5..9 on both sides
    folds = ts._folds(y, keys, 5, seed=3, grouped=True)
    seen = np.zeros(len(y), int)
    for train, test in folds:
        seen[test] += 1
        assert not set(keys[train]) & set(keys[test])
        assert set(y[test]) == {0, 1}
    assert np.all(seen == 1)


def test_cap_keeps_whole_galaxies(rng):
    g = np.repeat([f"g{i}" for i in range(50)], 4)
    keep = ts._cap_by_galaxy(g, 41, rng)
    assert len(keep) == 40
    counts = pd.Series(g[keep]).value_counts()
    assert (counts == 4).all()


@pytest.mark.parametrize("bad, match", [
    (dict(x_sim=np.zeros((10, 3))), "same number of columns"),
    (dict(x_ref=np.full((10, 2), np.nan)), "NaN or inf"),
    (dict(groups_sim=np.array(["a"] * 10)), "single galaxy"),
    (dict(groups_ref=np.array(["a", "b"])), "one galaxy id per image"),
])
def test_bad_input_is_refused(bad, match):
    args = dict(x_ref=np.zeros((10, 2)), x_sim=np.ones((10, 2)),
                groups_ref=np.arange(10), groups_sim=np.arange(10) + 100)
    args.update(bad)
    with pytest.raises(ValueError, match=match):
        ts.classifier_test(**args)


def test_too_few_galaxies_for_the_folds_and_unknown_model(rng):
    x_ref, x_sim, g_ref, g_sim = gaussian_sides(rng, 4, 20)
    with pytest.raises(ValueError, match="needs at least 5 galaxies per side"):
        ts.classifier_test(x_ref, x_sim, g_ref, g_sim)
    with pytest.raises(ValueError, match="model must be one of"):
        ts.classifier_test(x_ref, x_sim, g_ref, g_sim, n_folds=2, model="svm")


@pytest.mark.parametrize("model", ["knn", "gbt"])
def test_alternative_classifiers_detect_a_shift(rng, model):
    x_ref, x_sim, g_ref, g_sim = gaussian_sides(rng, 200, 200, d=2, shift=1.5)
    res = ts.classifier_test(x_ref, x_sim, g_ref, g_sim, model=model, n_boot=0)
    assert res.auroc > 0.75 and res.p_value < 1e-6


# ----------------------------------------------------------------------
# MMD

def test_mmd_matches_direct_double_sum(rng):
    # hand computation over pairs of different galaxies, fixed bandwidth
    x_ref, g_ref = projected_side(rng, 6, 2, 2, "r")
    x_sim, g_sim = projected_side(rng, 5, 3, 2, "s")
    g_sim[:3] = g_ref[:3]           # a galaxy present on both sides (paired suites)
    g_sim[3:6] = g_ref[2:4][[0, 0, 1]]
    res = ts.mmd_test(x_ref, x_sim, g_ref, g_sim, n_perm=0, bandwidth=1.3,
                      max_images=None)
    z = np.vstack([x_ref, x_sim])
    z = (z - z.mean(0)) / z.std(0)
    zr, zs = z[:len(x_ref)], z[len(x_ref):]

    def mean_k(a, ga, b, gb):
        vals = [np.exp(-np.sum((a[i] - b[j]) ** 2) / (2 * 1.3**2))
                for i in range(len(a)) for j in range(len(b)) if ga[i] != gb[j]]
        return np.mean(vals)

    expect = (mean_k(zr, g_ref, zr, g_ref) + mean_k(zs, g_sim, zs, g_sim)
              - 2 * mean_k(zr, g_ref, zs, g_sim))
    np.testing.assert_allclose(res.mmd2, expect, rtol=1e-10)


def test_mmd_detects_shift_and_interval_covers(rng):
    x_ref, x_sim, g_ref, g_sim = gaussian_sides(rng, 200, 200, d=3, shift=0.7)
    res = ts.mmd_test(x_ref, x_sim, g_ref, g_sim, n_perm=200, n_boot=100)
    assert res.p_value == pytest.approx(1 / 201)
    assert res.ci[0] > 0 and res.ci[0] < res.mmd2 < res.ci[1]


def test_mmd_is_centred_with_many_projections_per_galaxy():
    # pairs of one galaxy are excluded, so MMD^2 stays centred on zero even when
    # only the simulated side has correlated projections
    values = []
    for rep in range(20):
        rng = np.random.default_rng(rep)
        x_ref, g_ref = projected_side(rng, 60, 1, 2, "o", spread=0.0)
        x_sim, g_sim = projected_side(rng, 20, 4, 2, "s", spread=0.3)
        values.append(ts.mmd_test(x_ref, x_sim, g_ref, g_sim, n_perm=0).mmd2)
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(len(values))


# ----------------------------------------------------------------------
# Frechet distance

def test_frechet_1d_closed_form(rng):
    x1 = exact_moments(rng, 300, np.array([0.5]), np.array([[4.0]]))
    x2 = exact_moments(rng, 200, np.array([-1.0]), np.array([[1.0]]))
    res = ts.frechet_distance(x1, x2, ridge=0.0)
    np.testing.assert_allclose(res.distance, 1.5**2 + (2.0 - 1.0) ** 2, rtol=1e-9)


def test_frechet_commuting_covariances_closed_form(rng):
    d = 5
    q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    a, b = rng.uniform(0.5, 3.0, d), rng.uniform(0.5, 3.0, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    x1 = exact_moments(rng, 400, mu1, q @ np.diag(a) @ q.T)
    x2 = exact_moments(rng, 300, mu2, q @ np.diag(b) @ q.T)
    expect = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    res = ts.frechet_distance(x1, x2, ridge=0.0)
    np.testing.assert_allclose(res.distance, expect, rtol=1e-8)
    np.testing.assert_allclose(res.mean_term, np.sum((mu1 - mu2) ** 2), rtol=1e-10)


def test_frechet_fast_route_equals_sqrtm_and_interval_covers(rng):
    d = 6
    x1 = rng.normal(size=(150, d)) @ rng.normal(size=(d, d))
    x2 = rng.normal(size=(120, d)) @ rng.normal(size=(d, d)) + 0.3
    res = ts.frechet_distance(x1, x2, n_boot=60, ridge=1e-6)
    fast = ts._frechet_fast(x1.mean(0), np.cov(x1, rowvar=False), x2.mean(0),
                            np.cov(x2, rowvar=False), 1e-6)
    np.testing.assert_allclose(fast, res.distance, rtol=1e-8)
    # unit weights reproduce the unweighted moments
    m, c = ts._weighted_moments(x1, np.ones(len(x1)))
    np.testing.assert_allclose(c, np.cov(x1, rowvar=False), rtol=1e-12)
    assert res.ci[0] < res.distance < res.ci[1]
    assert np.isfinite(res.bootstrap_shift)


# ----------------------------------------------------------------------
# many sources, seeds, null calibration

def test_holm_known_values():
    np.testing.assert_allclose(ts.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    out = ts.holm([0.5, np.nan, 0.2])
    np.testing.assert_allclose(out, [0.5, np.nan, 0.4])


def test_compare_representations_table(rng):
    d = 4
    feats, groups = {}, {}
    feats["observed"], groups["observed"] = projected_side(rng, 150, 1, d, "o", 0.0)
    feats["null"], groups["null"] = projected_side(rng, 80, 3, d, "s")
    shifted, g = projected_side(rng, 80, 3, d, "s")
    shifted[:, 1] += 1.0
    feats["compact-3"], groups["compact-3"] = shifted, g
    df = ts.compare_representations(feats, groups, pairs=[("compact-3", "null")],
                                    representation="morphology", n_boot=100, n_perm=100,
                                    n_boot_frechet=20)
    assert list(df.columns) == list(ts.COMPARISON_COLUMNS)
    assert list(zip(df.source, df.reference)) == [("null", "observed"),
                                                  ("compact-3", "observed"),
                                                  ("compact-3", "null")]
    assert (df.representation == "morphology").all()
    assert df.detected.tolist() == [False, True, True]
    assert (df.auroc_p_holm >= df.auroc_p).all()
    assert df.n_sim_img.tolist() == [240, 240, 240]
    assert df.n_sim_gal.tolist() == [80, 80, 80]
    with pytest.raises(ValueError, match="reference 'obs' not among"):
        ts.compare_representations(feats, groups, reference="obs")
    with pytest.raises(ValueError, match="unknown source 'blue-1'"):
        ts.compare_representations(feats, groups, pairs=[("blue-1", "null")])


def test_ensemble_summary_and_ranking_agreement():
    a = pd.DataFrame({"source": ["x", "y", "z"], "auroc": [0.9, 0.6, 0.5],
                      "detected": [True, True, False]})
    b = pd.DataFrame({"source": ["z", "x", "y"], "auroc": [0.7, 0.8, 0.6],
                      "detected": [False, True, False]})
    s = ts.ensemble_summary([a, b], columns=("auroc", "detected", "absent"))
    s = s.set_index("source")
    np.testing.assert_allclose(s.loc["x", ["auroc_mean", "auroc_min", "auroc_max"]],
                               [0.85, 0.8, 0.9])
    np.testing.assert_allclose(s.loc["z", "auroc_std"], np.std([0.5, 0.7], ddof=1))
    np.testing.assert_allclose(s["detected_mean"], [1.0, 0.5, 0.0])
    assert (s["n_seeds"] == 2).all()

    agree = ts.ranking_agreement([a, b], "auroc")
    assert agree["rankings"] == [["x", "y", "z"], ["x", "z", "y"]]
    assert not agree["identical"]
    np.testing.assert_allclose(agree["mean_tau"], 1 / 3)   # one discordant pair of 3
    assert ts.ranking_agreement([a, a], "auroc")["identical"]


def test_null_calibration_on_split_draws(rng):
    x, g = projected_side(rng, 120, 2, 3, "o")
    draws = ts.split_null_draws(x, g, n_draws=6, seed=2)
    for xr, gr, xn, gn in zip(*draws.values()):
        assert not set(gr) & set(gn)
        assert len(xr) + len(xn) == len(x)
    out = ts.null_calibration(**draws, alpha=0.05, n_perm=50)
    assert out["n_draws"] == 6
    for test in ("classifier", "mmd"):
        r = out[test]
        assert r["rejections"] == sum(p <= 0.05 for p in r["p_values"])
        np.testing.assert_allclose(r["se_nominal"], np.sqrt(0.05 * 0.95 / 6))
        assert r["rejections"] <= 2
    with pytest.raises(ValueError, match="unknown test"):
        ts.null_calibration(**draws, tests=("ks",))
