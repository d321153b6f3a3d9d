"""Figures: each function draws what it is given, on the Axes it is given."""

import numpy as np
import pandas as pd
import pytest

from galrate.rating import figures as F


def test_figure_png_is_png():
    fig = F.new_figure(2, 2)
    fig.add_subplot().plot([0, 1], [0, 1])
    assert F.figure_png(fig).startswith(b"\x89PNG\r\n\x1a\n")


def test_gallery_columns_and_labels(rng):
    orig = rng.integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    recon = rng.uniform(size=(3, 8, 8, 3))
    resid = rng.normal(size=(3, 8, 8, 3))
    fig = F.new_figure()
    axes = F.gallery(fig, orig, recon, resid, ["low", "median", "high"], title="null")
    assert axes.shape == (3, 3)
    assert [ax.get_title() for ax in axes[0]] == ["original", "reconstruction",
                                                  "|residual|"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["low", "median", "high"]
    np.testing.assert_allclose(axes[1, 0].images[0].get_array(), orig[1] / 255.0,
                               atol=1e-6)
    # residual panel: |residual| averaged over channels
    np.testing.assert_allclose(axes[2, 2].images[0].get_array(),
                               np.abs(resid[2]).mean(axis=-1), rtol=1e-5)


def test_gallery_originals_only_and_mismatch(rng):
    orig = rng.integers(0, 256, size=(2, 8, 8, 3), dtype=np.uint8)
    assert F.gallery(F.new_figure(), orig).shape == (2, 1)
    with pytest.raises(ValueError, match="2 originals but 1 reconstruction"):
        F.gallery(F.new_figure(), orig, orig[:1])


def test_score_histograms_heights(rng):
    observed = rng.normal(size=500)
    suite = rng.normal(1.0, size=300)
    edges = np.linspace(-4, 5, 19)
    ax = F.new_figure().add_subplot()
    drawn = F.score_histograms(ax, {"compact-3": suite}, observed, edges, threshold=1.6)
    expected, _ = np.histogram(observed, edges, density=True)
    np.testing.assert_allclose([p.get_height() for p in drawn[0]], expected)
    assert drawn[-1].get_xdata()[0] == pytest.approx(1.6)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == \
        ["observed", "compact-3", "observed 95th pct"]


def test_score_vs_mass_draws_galaxy_means_with_scatter(rng):
    g = pd.DataFrame({"log_mstar": [9.5, 10.5, 11.5], "mean": [1.0, 2.0, 3.0],
                      "std": [0.1, 0.2, 0.3]})
    ax = F.new_figure().add_subplot()
    drawn = F.score_vs_mass(ax, {"null": g}, rng.uniform(9, 12, 50),
                            rng.uniform(0, 3, 50), mass_edges=(9, 10.29, 11.39, 12.5))
    line = drawn[1].lines[0]
    np.testing.assert_allclose(line.get_xdata(), g["log_mstar"])
    np.testing.assert_allclose(line.get_ydata(), g["mean"])
    assert len(drawn) == 2 + 4                   # density, errorbar, four edge lines


def test_score_vs_property_has_marginals(rng):
    x = {"observed": rng.normal(size=50), "null": rng.normal(size=20)}
    y = {"observed": rng.uniform(size=50), "null": rng.uniform(size=20)}
    axes = F.score_vs_property(F.new_figure(), x, y, "sersic_n")
    assert set(axes) == {"main", "top", "right"}
    assert len(axes["main"].collections) == 2
    assert axes["main"].get_xlabel() == "sersic_n"


def test_scaling_relation_colours_by_score(rng):
    score = rng.uniform(size=30)
    ax = F.new_figure().add_subplot()
    sc = F.scaling_relation(ax, rng.normal(size=30), rng.normal(size=30), score,
                            "log M*", "log r")
    np.testing.assert_allclose(np.sort(sc.get_array()), np.sort(score))


def test_ranking_order_and_intervals():
    ax = F.new_figure().add_subplot()
    F.ranking(ax, ["null", "compact-1", "compact-3"], [0.05, 0.1, 0.4],
              [0.03, 0.07, 0.3], [0.07, 0.13, 0.5], "anomaly rate", null_value=0.05)
    labels = {t.get_text(): pos for t, pos in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert labels["null"] > labels["compact-1"] > labels["compact-3"]   # best on top
