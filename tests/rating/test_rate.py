"""``rate`` and ``galrate rate`` on tiny score tables."""

import json

import numpy as np
import pandas as pd
import pytest

from galrate.cli import main
from galrate.imageset import GalrateDataWarning
from galrate.rating import RateConfig, load_tables, rate
from galrate.rating import stats as S


def score_table(seed: int = 0, n_gal: int = 12, n_proj: int = 3) -> pd.DataFrame:
    """Observed galaxies plus a null suite, a shifted suite and a sanity set."""
    rng = np.random.default_rng(seed)
    n_obs = 120
    mass = rng.uniform(9.0, 12.0, n_obs)
    rows = [{"image_id": f"o{i}", "source": "observed", "galaxy_id": f"o{i}",
             "projection": 0, "log_mstar": mass[i], "g_r": 0.6 + rng.normal(0, 0.05),
             "r_half_kpc": 3.0 * 10 ** (0.2 * (mass[i] - 10)),
             "score_latent": rng.lognormal(0.0, 0.5), "pct_latent": 50.0}
            for i in range(n_obs)]
    gal_mass = rng.uniform(9.0, 12.0, n_gal)
    for source, shift in (("null", 0.0), ("compact-3", 1.0), ("sanity-blank", 4.0)):
        for g in range(n_gal):
            offset = rng.normal(0, 0.3)
            for p in range(n_proj):
                rows.append({"image_id": f"{source}-{g}-{p}", "source": source,
                             "galaxy_id": f"g{g}", "projection": p,
                             "log_mstar": gal_mass[g], "g_r": 0.6 + rng.normal(0, 0.05),
                             "r_half_kpc": 3.0 * 10 ** (0.2 * (gal_mass[g] - 10)),
                             "score_latent": rng.lognormal(shift + offset, 0.3),
                             "pct_latent": 50.0})
    return pd.DataFrame(rows)


FAST = dict(n_boot=60, figures=False)


def test_rate_numbers_match_direct_computation(tmp_path):
    table = score_table()
    res = rate([table], tmp_path, RateConfig(**FAST))
    obs = table.loc[table.source == "observed", "score_latent"].to_numpy()
    threshold = np.percentile(obs, 95)
    assert res["observed"]["threshold"] == pytest.approx(threshold)
    for name in ("null", "compact-3", "sanity-blank"):
        sc = table.loc[table.source == name, "score_latent"].to_numpy()
        s = res["suites"][name]
        assert s["n_images"] == 36 and s["n_galaxies"] == 12
        assert s["median"]["value"] == pytest.approx(np.median(sc))
        assert s["mean"]["value"] == pytest.approx(np.mean(sc))
        assert s["anomaly_rate"]["value"] == pytest.approx(np.mean(sc > threshold))
        assert s["median"]["low"] <= s["median"]["value"] <= s["median"]["high"]
        assert s["tests"]["ks_p_galaxy"] is not None
        assert set(s["mass_bins"]) <= {"9.00-10.29", "10.29-11.39", "11.39-12.50"}
    assert [r["suite"] for r in res["ranking"]] == ["null", "compact-3"]
    assert res["sanity"][0]["source"] == "sanity-blank" and res["sanity"][0]["flagged"]
    assert [(p["a"], p["b"]) for p in res["paired"]] == [("null", "compact-3")]
    assert res["paired"][0]["mean_difference"]["value"] > 0
    props = {c["property"] for c in res["suites"]["null"]["correlations"]}
    assert {"log_mstar", "g_r", "r_half_kpc"} <= props
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk["ranking"][0]["suite"] == "null"
    assert (tmp_path / "ranking.csv").exists() and (tmp_path / "run-rate.json").exists()


def test_rate_is_reproducible_and_seeded(tmp_path):
    table = score_table()
    a = rate([table], tmp_path / "a", RateConfig(**FAST, seed=3))
    b = rate([table], tmp_path / "b", RateConfig(**FAST, seed=3))
    c = rate([table], tmp_path / "c", RateConfig(**FAST, seed=4))
    assert a["suites"] == b["suites"]
    assert a["suites"]["null"]["median"] != c["suites"]["null"]["median"]


def test_external_csv_with_mapped_columns(tmp_path):
    table = score_table().rename(columns={"source": "simulation", "galaxy_id": "halo",
                                          "image_id": "name", "score_latent": "A",
                                          "log_mstar": "logMstar"})
    table["simulation"] = table["simulation"].replace("observed", "SDSS")
    table = table.drop(columns=["pct_latent"])
    path = tmp_path / "paper.csv"
    table.to_csv(path, index=False)
    config = RateConfig(score_column="A", observed="SDSS", source_column="simulation",
                        galaxy_column="halo", image_column="name",
                        mass_column="logMstar", **FAST)
    res = rate([path], tmp_path / "out", config)
    sc = table.loc[table.simulation == "compact-3", "A"].to_numpy()
    assert res["suites"]["compact-3"]["median"]["value"] == pytest.approx(np.median(sc))
    assert res["suites"]["compact-3"]["n_galaxies"] == 12
    assert res["suites"]["null"]["n_images"] == 36           # "null" is not NaN in CSV
    assert "matched" in res["suites"]["compact-3"]            # mass column mapped
    assert str(path.resolve()) in res["provenance"]["inputs"]


def test_missing_galaxy_column_warns_and_uses_images(tmp_path):
    table = score_table().drop(columns=["galaxy_id"])
    with pytest.warns(GalrateDataWarning, match="its own galaxy"):
        res = rate([table], tmp_path, RateConfig(**FAST))
    assert res["suites"]["null"]["n_galaxies"] == 36
    assert any("own galaxy" in w for w in res["warnings"])


def test_percentile_column_when_no_observed_source(tmp_path):
    table = score_table()
    table = table[table.source != "observed"].copy()
    table["pct_latent"] = np.where(table["projection"] == 0, 99.0, 10.0)
    res = rate([table], tmp_path, RateConfig(**FAST))
    assert res["observed"]["reference"] == "pct_column"
    assert res["suites"]["null"]["anomaly_rate"]["value"] == pytest.approx(1 / 3)
    assert "overlap" not in res["suites"]["null"]


def test_load_tables_concatenates_and_drops_missing_scores(tmp_path):
    a, b = score_table(0), score_table(1)
    b = b[b.source == "compact-3"].assign(source="compact-3-hires")
    b.loc[b.index[0], "score_latent"] = np.nan
    a.to_parquet(tmp_path / "a.parquet")
    with pytest.warns(GalrateDataWarning, match="1 image"):
        table, notes = load_tables([tmp_path / "a.parquet", b], RateConfig())
    assert len(table) == len(a) + len(b) - 1
    assert set(table.source) == {"observed", "null", "compact-3", "sanity-blank",
                                 "compact-3-hires"}


def test_bad_inputs_are_named(tmp_path):
    table = score_table()
    with pytest.raises(ValueError, match="no score column 'score_x'"):
        rate([table], tmp_path, RateConfig(score_column="score_x", **FAST))
    with pytest.raises(ValueError, match="no observed reference"):
        rate([table.drop(columns="pct_latent")], tmp_path,
             RateConfig(observed="SDSS", **FAST))
    with pytest.raises(ValueError, match="rank_by"):
        RateConfig(rank_by="best")
    with pytest.raises(ValueError, match="pairs: suite 'hires'"):
        rate([table], tmp_path, RateConfig(pairs=(("null", "hires"),), **FAST))


def test_mass_bins_are_configurable(tmp_path):
    res = rate([score_table()], tmp_path, RateConfig(mass_bins=(9, 10.5, 12), **FAST))
    assert set(res["suites"]["null"]["mass_bins"]) <= {"9.00-10.50", "10.50-12.00"}
    sub = score_table()
    sub = sub[(sub.source == "null") & (sub.log_mstar < 10.5)]
    if len(sub):
        assert res["suites"]["null"]["mass_bins"]["9.00-10.50"]["median"]["value"] == \
            pytest.approx(np.median(sub.score_latent))


def test_cli_writes_report_and_results(tmp_path, capsys):
    path = tmp_path / "scores.parquet"
    score_table().to_parquet(path)
    out = tmp_path / "rating"
    code = main(["rate", str(path), "--out", str(out), "--n-boot", "40", "--seed", "2",
                 "--mass-bins", "9,10.29,11.39,12.5", "--no-progress"])
    assert code == 0
    assert (out / "report.html").stat().st_size > 1000
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["n_boot"] == 40 and res["config"]["seed"] == 2
    assert "null" in capsys.readouterr().out


def test_cli_reports_bad_column_in_one_line(tmp_path, caplog):
    path = tmp_path / "scores.csv"
    score_table().to_csv(path, index=False)
    code = main(["rate", str(path), "--out", str(tmp_path / "o"), "--score-column", "B",
                 "--no-progress"])
    assert code == 2
    assert "no score column 'B'" in caplog.text


def test_anomaly_rate_of_null_is_near_five_percent(tmp_path):
    # a null suite drawn like the observed galaxies: 5% above the 95th percentile
    rng = np.random.default_rng(11)
    obs = pd.DataFrame({"source": "observed", "score_latent": rng.lognormal(size=4000),
                        "galaxy_id": [f"o{i}" for i in range(4000)]})
    null = pd.DataFrame({"source": "null", "score_latent": rng.lognormal(size=4000),
                         "galaxy_id": [f"n{i // 4}" for i in range(4000)]})
    res = rate([pd.concat([obs, null])], tmp_path, RateConfig(**FAST))
    rate_null = res["suites"]["null"]["anomaly_rate"]
    # binomial sd over 4000 images ~0.0034, plus the threshold's own scatter
    assert rate_null["value"] == pytest.approx(0.05, abs=0.015)
    assert 0.005 < rate_null["high"] - rate_null["low"] < 0.04
    assert rate_null["value"] == pytest.approx(S.anomaly_rate(
        null.score_latent, np.percentile(obs.score_latent, 95)))
