"""The verdict table and its checks against the injected truth."""

import numpy as np
import pandas as pd
import pytest

from galrate.verdict import level_trend, load_latents, paper_score_checks, verdict_table


def _latent_rows(aurocs: dict) -> pd.DataFrame:
    rows = []
    for name, a in aurocs.items():
        rows.append({"source": name, "reference": "observed", "representation": "latent",
                     "auroc": a, "auroc_lo": a - 0.05, "auroc_hi": a + 0.05,
                     "mmd_p": 0.01, "detected": a - 0.05 > 0.5})
    return pd.DataFrame(rows)


def _ensemble(latent: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"key": latent["source"] + " vs observed",
                         "auroc_mean": latent["auroc"], "auroc_std": np.nan,
                         "auroc_lo_mean": latent["auroc_lo"],
                         "auroc_hi_mean": latent["auroc_hi"]})


def test_verdict_table_and_checks_by_hand():
    aurocs = {"null": 0.50, "compact-1": 0.52, "compact-2": 0.70, "compact-3": 0.90,
              "smooth-1": 0.50, "smooth-3": 0.51, "sanity-photo": 1.0}
    latent = _latent_rows(aurocs)
    morph = pd.DataFrame({"source": ["smooth-3", "compact-3"], "reference": "observed",
                          "auroc": [0.80, 0.60], "auroc_lo": [0.75, 0.55],
                          "auroc_hi": [0.85, 0.65], "detected": [True, True],
                          "fail_frac": [0.0, 0.0]})
    table = verdict_table(_ensemble(latent), latent, morph, {})
    assert list(table["source"]) == list(aurocs)
    got = dict(zip(table["source"], table["detected"]))
    # latent detects compact-2, compact-3 and the photos; morphology adds smooth-3
    assert got == {"null": False, "compact-1": False, "compact-2": True,
                   "compact-3": True, "smooth-1": False, "smooth-3": True,
                   "sanity-photo": True}
    checks = level_trend(table)
    assert checks["null_detected"] is False
    assert checks["detected_at_top_level"] == {"compact": True, "smooth": True}
    # the best AUROC per level: compact 0.52, 0.70, 0.90 grows; smooth 0.50 -> 0.80 too
    assert checks["grows_with_level"] == {"compact": True, "smooth": True}
    assert checks["sanity_detected"] == {"sanity-photo": True}


def test_level_trend_flags_a_falling_family():
    latent = _latent_rows({"null": 0.5, "blue-1": 0.9, "blue-2": 0.7, "blue-3": 0.6})
    table = verdict_table(_ensemble(latent), latent, pd.DataFrame(), {})
    assert level_trend(table)["grows_with_level"] == {"blue": False}


def test_load_latents_aligns_rows_and_names_missing_sidecar(tmp_path):
    import h5py

    df = pd.DataFrame({"image_id": ["a", "b", "c"], "galaxy_id": ["1", "2", "3"]})
    df.to_parquet(tmp_path / "s.parquet")
    with pytest.raises(ValueError, match="s.arrays.h5 missing"):
        load_latents(tmp_path / "s.parquet")
    with h5py.File(tmp_path / "s.arrays.h5", "w") as h5:
        h5["image_id"] = np.array(["c", "a", "b"], dtype=object).astype("S")
        h5["latent_i"] = np.array([[3.0], [1.0], [2.0]])
    got, lat = load_latents(tmp_path / "s.parquet")
    np.testing.assert_array_equal(lat[:, 0], [1.0, 2.0, 3.0])


def test_paper_score_checks_by_hand():
    def suite(median, rate=0.05):
        return {"median": {"value": median}, "anomaly_rate": {"value": rate},
                "tests": {"ks_p": 0.5, "ks_p_galaxy": 0.6}}

    results = {"suites": {"null": suite(1.0), "red-1": suite(1.1), "red-3": suite(0.9),
                          "compact-1": suite(1.2), "compact-3": suite(1.5),
                          "sanity-blank": suite(9.0, 1.0)},
               "sanity": [{"source": "sanity-blank", "flagged": True}]}
    got = paper_score_checks(results)
    assert got["median_by_level"]["red"] == {0: 1.0, 1: 1.1, 3: 0.9}
    assert got["grows_with_level"] == {"red": False, "compact": True}
    assert got["null"]["ks_p"] == 0.5
    assert got["sanity_flagged"] == {"sanity-blank": True}
