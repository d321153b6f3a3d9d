"""Known-answer tests of the rating statistics."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from galrate.rating import stats as S

# a 6-image suite against a 20-image observed reference, checked by hand below
OBSERVED = np.arange(1.0, 21.0)                       # 1, 2, ..., 20
SUITE = np.array([1.0, 5.0, 19.0, 19.5, 20.0, 25.0])


def test_median_mean_and_anomaly_rate_by_hand():
    est = S.cluster_bootstrap(SUITE, None, "median", n_boot=50)
    assert est.value == pytest.approx((19.0 + 19.5) / 2)
    assert S.cluster_bootstrap(SUITE, None, "mean", n_boot=50).value == \
        pytest.approx(89.5 / 6)
    # 95th percentile of 1..20, linear: position 19 * 0.95 = 18.05 -> 19.05
    threshold = S.anomaly_threshold(OBSERVED, 95)
    assert threshold == pytest.approx(19.05)
    # above 19.05: 19.5, 20, 25
    assert S.anomaly_rate(SUITE, threshold) == pytest.approx(3 / 6)
    rate = S.cluster_bootstrap(SUITE, None, S.fraction_above(threshold), n_boot=50)
    assert rate.value == pytest.approx(0.5)


def test_histogram_overlap_by_hand():
    suite = np.array([0.5, 1.0, 1.5, 3.0, 5.0, 5.5])   # bins [0,2,4,6]: 3, 1, 2
    observed = np.array([1.0, 3.0, 3.0, 5.0])          # 1, 2, 1
    # normalised: suite (1/2, 1/6, 1/3), observed (1/4, 1/2, 1/4)
    # minima (1/4, 1/6, 1/4) -> 2/3
    assert S.histogram_overlap(suite, observed, bins=[0, 2, 4, 6]) == pytest.approx(2 / 3)
    # three equal bins over the pooled range 0.5-5.5 put the values in the same bins
    assert S.histogram_overlap(suite, observed, bins=3) == pytest.approx(2 / 3)
    assert S.histogram_overlap(observed, observed, bins=7) == pytest.approx(1.0)


def test_overlap_counts_values_beyond_the_edges_in_the_end_bins():
    edges = [0.0, 2.0, 4.0, 6.0]
    assert S.histogram_overlap([10.0, 11.0], [5.0], bins=edges) == pytest.approx(1.0)
    assert S.histogram_overlap([10.0, 11.0], [1.0], bins=edges) == pytest.approx(0.0)


@pytest.mark.parametrize("q", [0.0, 0.05, 0.5, 0.9, 1.0])
def test_weighted_quantile_equals_quantile_of_repeated_sample(rng, q):
    x = rng.normal(size=23)
    w = rng.integers(0, 4, size=(6, 23)).astype(float)
    w[:, 0] += 1                                          # no empty replicate
    expected = [np.quantile(np.repeat(x, wi.astype(int)), q) for wi in w]
    np.testing.assert_allclose(S.weighted_quantile(x, w, q), expected, rtol=0, atol=1e-12)


def test_weighted_correlations_equal_scipy_on_repeated_sample(rng):
    x = np.round(rng.normal(size=30), 1)                  # ties on purpose
    y = x + rng.normal(size=30)
    w = rng.integers(0, 3, size=(5, 30)).astype(float)
    xy = np.column_stack([x, y])
    rep = [(np.repeat(x, wi.astype(int)), np.repeat(y, wi.astype(int))) for wi in w]
    np.testing.assert_allclose(S._spearman_statistic(xy, w),
                               [sps.spearmanr(a, b).statistic for a, b in rep], atol=1e-12)
    np.testing.assert_allclose(S._pearson_statistic(xy, w),
                               [sps.pearsonr(a, b).statistic for a, b in rep], atol=1e-12)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent(rng):
    covered = 0
    for rep in range(200):
        # n = 100: the percentile interval's small-sample undercoverage is ~1%
        sample = rng.normal(loc=3.0, scale=2.0, size=100)
        est = S.cluster_bootstrap(sample, None, "mean", n_boot=400, seed=rep)
        covered += est.low <= 3.0 <= est.high
    assert 0.90 <= covered / 200 <= 0.99


def test_cluster_bootstrap_resamples_galaxies(rng):
    # 12 galaxies with 6 identical projections each: 72 images but 12 independent values
    galaxy_values = rng.normal(size=12)
    values = np.repeat(galaxy_values, 6)
    groups = np.repeat(np.arange(12), 6)
    clustered = S.cluster_bootstrap(values, groups, "mean", n_boot=2000, seed=1)
    images = S.cluster_bootstrap(values, None, "mean", n_boot=2000, seed=1)
    galaxies = S.cluster_bootstrap(galaxy_values, None, "mean", n_boot=2000, seed=1)
    width = lambda e: e.high - e.low  # noqa: E731
    assert width(clustered) > 2.0 * width(images)           # sqrt(6) ~ 2.45 expected
    assert width(clustered) == pytest.approx(width(galaxies), rel=0.15)
    assert clustered.value == pytest.approx(galaxy_values.mean())


def test_bootstrap_weights_give_each_image_its_galaxy_count():
    groups = np.array(["a", "a", "b", "c", "c", "c"])
    w = S.bootstrap_weights(groups, 6, n_boot=100, seed=3)
    np.testing.assert_array_equal(w[:, 0], w[:, 1])
    np.testing.assert_array_equal(w[:, 3], w[:, 5])
    # three galaxies drawn per replicate
    np.testing.assert_array_equal(w[:, [0, 2, 3]].sum(axis=1), 3)


def test_equal_seeds_give_equal_intervals(rng):
    x = rng.normal(size=50)
    assert S.cluster_bootstrap(x, None, n_boot=100, seed=7) == \
        S.cluster_bootstrap(x, None, n_boot=100, seed=7)


def test_estimate_format():
    est = S.Estimate(0.12, 0.10, 0.14)
    assert est.format(2) == "0.12 [0.10, 0.14]"
    assert S.Estimate(0.5).format(1) == "0.5"
    assert est.to_dict() == {"value": 0.12, "low": 0.10, "high": 0.14, "level": 0.95}
    assert S.Estimate(float("nan")).to_dict()["value"] is None


def test_two_sample_tests_known_answers(rng):
    a = rng.normal(size=300)
    same = S.two_sample_tests(a, a)
    assert same["ks_stat"] == 0.0 and same["wasserstein"] == 0.0
    shifted = S.two_sample_tests(a, a + 1.0)
    assert shifted["wasserstein"] == pytest.approx(1.0)
    assert shifted["ks_stat"] == pytest.approx(sps.ks_2samp(a, a + 1.0).statistic)
    assert shifted["ad_p"] == pytest.approx(0.001) and shifted["ad_p_clipped"]
    assert shifted["n_a"] == shifted["n_b"] == 300


def test_galaxy_means():
    g = S.galaxy_means([1.0, 3.0, 10.0], ["x", "x", "y"])
    np.testing.assert_allclose(g.loc["x", ["mean", "std", "n"]], [2.0, 1.0, 2])
    np.testing.assert_allclose(g.loc["y", ["mean", "std", "n"]], [10.0, 0.0, 1])


def test_reweight_to_mass_by_hand():
    ref_mass = np.array([9.1, 9.1, 10.1, 10.1])
    ref_scores = np.array([1.0, 2.0, 10.0, 20.0])
    weights, unmatched = S.reweight_to_mass(ref_mass, np.full(3, 10.1), bin_width=0.25)
    np.testing.assert_allclose(weights, [0, 0, 2, 2])
    assert unmatched == 0.0
    m = S.matched_comparison(np.array([30.0, 5.0, 16.0]), np.full(3, 10.1), ref_scores,
                             ref_mass, threshold=15.0, percentile=50)
    assert m["reference_median"] == pytest.approx(15.0)     # median of 10, 10, 20, 20
    assert m["reference_rate"] == pytest.approx(0.5)        # 20 > 15
    assert m["matched_threshold"] == pytest.approx(15.0)
    assert m["matched_rate"] == pytest.approx(2 / 3)         # 30, 16
    assert m["effective_n"] == pytest.approx(2.0)
    _, unmatched = S.reweight_to_mass(ref_mass, [10.1, 11.6], bin_width=0.25)
    assert unmatched == pytest.approx(0.5)


def test_paired_differences_by_hand():
    groups = np.repeat([f"g{i}" for i in range(8)], 2)
    a = np.arange(16.0)
    res = S.paired_differences(a, groups, a + 1.0, groups, n_boot=200)
    assert res["n_galaxies"] == 8
    assert res["mean_difference"]["value"] == pytest.approx(1.0)
    assert res["mean_difference"]["low"] == pytest.approx(1.0)
    assert res["fraction_positive"] == 1.0
    assert res["sign_p"] == pytest.approx(2 * 0.5 ** 8)
    assert res["wilcoxon_p"] == pytest.approx(2 / 2 ** 8)     # exact, all ranks positive
    # galaxies in one suite only are left out
    res = S.paired_differences(a[:4], groups[:4], a + 1.0, groups, n_boot=10)
    assert res["n_galaxies"] == 2


def test_correlations_monotone_and_constant(rng):
    x = np.repeat(rng.uniform(9, 12, 20), 2)              # two projections per galaxy
    table = pd.DataFrame({"score": np.exp(x), "log_mstar": x, "flat": 1.0,
                          "noise": rng.normal(size=40),
                          "galaxy_id": np.repeat(np.arange(20), 2)})
    c = S.correlations(table, "score", ["log_mstar", "flat", "noise"], "galaxy_id",
                       n_boot=200).set_index("property")
    assert "flat" not in c.index                              # constant: skipped
    assert c.loc["log_mstar", "spearman_r"] == pytest.approx(1.0)
    assert c.loc["log_mstar", "spearman_low"] == pytest.approx(1.0)
    assert c.loc["log_mstar", "spearman_r_galaxy"] == pytest.approx(1.0)
    assert 0.9 < c.loc["log_mstar", "pearson_r"] < 1.0
    assert c.loc["noise", "spearman_low"] < 0 < c.loc["noise", "spearman_high"]


def test_mass_bins():
    edges = S.PAPER_MASS_BINS
    assert S.mass_bin_labels(edges) == ["9.00-10.29", "10.29-11.39", "11.39-12.50"]
    np.testing.assert_array_equal(
        S.assign_mass_bins([8.9, 9.0, 10.29, 11.0, 12.5, 12.6, np.nan], edges),
        [-1, 0, 1, 1, 2, -1, -1])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="statistic"):
        S.cluster_bootstrap([1.0, 2.0], None, "mode")
    with pytest.raises(ValueError, match="mass_bins"):
        S.assign_mass_bins([10.0], [10, 9])
    with pytest.raises(ValueError, match="groups"):
        S.cluster_bootstrap([1.0, 2.0], ["a"], "mean")
    with pytest.raises(ValueError, match="reference_scores"):
        S.anomaly_threshold([np.nan])
