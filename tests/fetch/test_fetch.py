"""fetch against a loopback server: retries, rejects, resume, split, packing."""

import json
import random

import numpy as np
import pandas as pd
import pytest
import requests
from conftest import CLIENT_TIMEOUT, jpeg_of, object_flux

from galrate.cli import main
from galrate.fetch import (FetchFailed, Journal, RetryPolicy, TokenBucket, fetch,
                           get_with_retries, select_catalogue)
from galrate.imageset.readers import decode_picture
from galrate.imageset.validate import assign_split
from galrate.survey import SDSS

FAST = dict(rate=None, workers=3, timeout=CLIENT_TIMEOUT, retries=2, backoff=0.01,
            max_backoff=0.05)


def ra_key(k: int) -> str:
    return f"{10 + k:.7f}"


def catalogue(tmp_path, n: int, name: str = "cat.csv") -> "Path":
    cat = pd.DataFrame({"objid": [f"G{k:02d}" for k in range(n)],
                        "ra": [10.0 + k for k in range(n)], "dec": [1.5] * n,
                        "log_mstar": [9.0 + 0.1 * k for k in range(n)]})
    path = tmp_path / name
    cat.to_csv(path, index=False)
    return path


# ----------------------------------------------------------------------
# rate limit and retries

def test_token_bucket_spaces_requests_at_the_rate():
    now = [0.0]
    waits = []
    bucket = TokenBucket(10.0, burst=1, clock=lambda: now[0], sleep=waits.append)
    for _ in range(5):
        bucket.acquire()
    # the first token is there; the next four are reserved 0.1 s apart
    np.testing.assert_allclose(waits, [0.1, 0.2, 0.3, 0.4], atol=1e-12)
    now[0] = 10.0  # a long pause refills only up to the burst
    waits.clear()
    bucket.acquire()
    bucket.acquire()
    np.testing.assert_allclose(waits, [0.1], atol=1e-12)


def test_token_bucket_rejects_bad_rate():
    with pytest.raises(ValueError, match="rate must be >= 0"):
        TokenBucket(-1)


def test_retry_delay_backoff_jitter_and_retry_after():
    policy = RetryPolicy(backoff=1.0, max_backoff=5.0, max_retry_after=30.0)
    rng = random.Random(0)
    for attempt, base in ((0, 1.0), (1, 2.0), (2, 4.0)):
        d = [policy.delay(attempt, None, rng) for _ in range(200)]
        assert base * 0.5 <= min(d) and max(d) < min(base * 1.5, 5.0 + 1e-9)
    assert policy.delay(6, None, rng) == 5.0
    assert policy.delay(0, 12.0, rng) == 12.0
    assert policy.delay(0, 3600.0, rng) == 30.0


@pytest.mark.parametrize("script, attempts, slept", [
    (["500", "ok"], 2, 1),
    (["429", "ok"], 2, 1),
    (["timeout", "ok"], 2, 1),
    (["truncated", "truncated", "ok"], 3, 2),
])
def test_get_with_retries_recovers(server, script, attempts, slept):
    server.script[ra_key(0)] = list(script)
    sleeps = []
    with requests.Session() as s:
        resp = get_with_retries(s, server.url + "/getjpeg",
                                {"ra": ra_key(0), "dec": "0", "width": 64, "height": 64},
                                bucket=TokenBucket(None), sleep=sleeps.append,
                                policy=RetryPolicy(retries=3, backoff=0.01,
                                                   timeout=CLIENT_TIMEOUT))
    assert resp.attempts == attempts and len(sleeps) == slept
    assert resp.content_type == "image/jpeg"
    assert decode_picture(resp.body).rgb.shape == (64, 64, 3)
    assert server.counts[ra_key(0)] == attempts
    if script[0] == "429":
        assert sleeps == [0.05]  # the server's Retry-After


def test_get_with_retries_gives_up_with_the_reason(server):
    server.script[ra_key(0)] = ["500"] * 5
    server.script[ra_key(1)] = ["404"]
    with requests.Session() as s:
        kw = dict(bucket=TokenBucket(None), sleep=lambda t: None,
                  policy=RetryPolicy(retries=2, backoff=0.01, timeout=CLIENT_TIMEOUT))
        with pytest.raises(FetchFailed, match="HTTP 500") as info:
            get_with_retries(s, server.url + "/getjpeg",
                             {"ra": ra_key(0), "width": 64}, **kw)
        assert info.value.attempts == 3
        with pytest.raises(FetchFailed, match="HTTP 404") as info:
            get_with_retries(s, server.url + "/getjpeg",
                             {"ra": ra_key(1), "width": 64}, **kw)
        assert info.value.attempts == 1  # a client error is not retried
    assert server.counts[ra_key(0)] == 3 and server.counts[ra_key(1)] == 1


# ----------------------------------------------------------------------
# catalogue

def test_select_catalogue_cuts_ids_and_errors(tmp_path):
    from astropy.table import Table

    Table({"RA": [1.0, 2.0, 3.0], "DEC": [0.0, -1.0, 2.0], "mass": [8.5, 9.5, 10.0]}
          ).write(tmp_path / "c.fits")
    cat = select_catalogue(tmp_path / "c.fits", where="mass >= 9")
    assert cat["galaxy_id"].tolist() == ["J2.000000-1.000000", "J3.000000+2.000000"]
    assert list(cat.columns) == ["galaxy_id", "ra", "dec", "mass"]
    with pytest.raises(ValueError, match=r"c\.fits: cannot apply --where 'massx > 1'"):
        select_catalogue(tmp_path / "c.fits", where="massx > 1")
    with pytest.raises(ValueError, match="no column 'ra_deg'"):
        select_catalogue(tmp_path / "c.fits", ra_column="ra_deg")
    dup = pd.DataFrame({"id": ["a", "a"], "ra": [1, 2], "dec": [0, 0]})
    with pytest.raises(ValueError, match="duplicate galaxy ids"):
        select_catalogue(dup)
    bad = pd.DataFrame({"ra": [1, 400], "dec": [0, 0]})
    with pytest.raises(ValueError, match=r"ra outside \[0, 360\)"):
        select_catalogue(bad)


# ----------------------------------------------------------------------
# end to end

def test_fetch_skyserver_accounts_for_every_galaxy(tmp_path, server):
    cat = catalogue(tmp_path, 10)
    # G09 has log_mstar 9.9; G00 (9.0) passes, a galaxy below 9 is added and cut
    frame = pd.read_csv(cat)
    frame.loc[len(frame)] = ["LOW", 99.0, 1.5, 8.0]
    frame.to_csv(cat, index=False)
    script = {1: ["500", "ok"], 2: ["timeout", "ok"], 3: ["truncated", "ok"],
              4: ["html"] * 9, 5: ["blank"], 6: ["429", "ok"], 7: ["404"]}
    for k, actions in script.items():
        server.script[ra_key(k)] = actions
    seen = []
    summary, imageset = fetch(cat, tmp_path / "out", where="log_mstar >= 9",
                              base_url=server.url + "/getjpeg", seed=3,
                              progress=lambda d, t, w: seen.append(w), **FAST)

    good = ["G00", "G01", "G02", "G03", "G06", "G08", "G09"]
    assert sorted(imageset.manifest["image_id"]) == good
    rejects = imageset.rejects().set_index("image_id")["reason"]
    assert sorted(rejects.index) == ["G04", "G05", "G07"]
    assert rejects["G04"].startswith("failed: HTML page, not an image (content-type "
                                     "image/jpeg)")
    assert rejects["G05"] == "rejected: blank image: all pixels are zero"
    assert rejects["G07"] == "failed: HTTP 404"
    assert summary.selected == 10 and summary.fetched == 7
    assert summary.failed == {"HTML page, not an image": 1, "HTTP 404": 1}
    assert summary.rejected == {"blank image: all pixels are zero": 1}
    assert server.counts[f"{99:.7f}"] == 0  # cut by --where, never requested
    assert server.counts[ra_key(4)] == 1  # content problems are not retried in-run
    assert {"fetch", "ingest"} <= set(seen)

    m = imageset.manifest.set_index("image_id")
    np.testing.assert_allclose(m.loc["G03", "log_mstar"], 9.3)
    np.testing.assert_allclose(m.loc["G03", ["ra", "dec"]].astype(float), [13.0, 1.5])
    expected_split = assign_split(m.index, (0.8, 0.1, 0.1), seed=3)
    assert m["split"].tolist() == expected_split.tolist()
    # the stored pixels are the JPEG the server sent
    row = int(np.flatnonzero(imageset.manifest["image_id"] == "G02")[0])
    served = decode_picture(jpeg_of(SDSS.to_rgb(object_flux(ra_key(2))))).rgb
    np.testing.assert_array_equal(imageset.rgb([row])[0], served)
    meta = json.loads((tmp_path / "out" / "imageset.json").read_text())
    assert meta["fetch"]["service"] == "skyserver" and meta["size"] == 64


def test_fetch_resumes_without_losing_or_repeating_work(tmp_path, server):
    cat = catalogue(tmp_path, 10)
    server.script[ra_key(5)] = ["html"]  # fails once, then the server recovers
    out = tmp_path / "out"
    first, imageset = fetch(cat, out, base_url=server.url, max_images=4, **FAST)
    assert (first.fetched, first.deferred) == (4, 6)
    assert len(imageset) == 4
    assert (imageset.rejects()["reason"] == "not fetched yet (left for a later run)").sum() == 6

    second, imageset = fetch(cat, out, base_url=server.url, **FAST)
    assert (second.fetched, second.skipped) == (5, 4)
    assert second.failed == {"HTML page, not an image": 1}

    # an interruption after a file was written but before it was journaled
    journal = (out / "fetch-journal.jsonl").read_text().splitlines()
    last = json.loads(journal[-1])
    (out / "fetch-journal.jsonl").write_text("\n".join(journal[:-1]) + '\n{"id": "G0')
    third, imageset = fetch(cat, out, base_url=server.url, **FAST)
    assert third.adopted == (1 if last["status"] == "ok" else 0)
    assert len(imageset) == 10 and len(imageset.rejects()) == 0
    # every object requested exactly once, except the one that failed first
    assert {k: server.counts[ra_key(k)] for k in range(10)} == \
        {k: 2 if k == 5 else 1 for k in range(10)}

    fourth, _ = fetch(cat, out, base_url=server.url, **FAST)
    assert (fourth.fetched, fourth.skipped, fourth.http_requests) == (0, 10, 0)
    assert sum(server.counts.values()) == 11


def test_fetch_hips2fits_fits_bands(tmp_path, server):
    cat = catalogue(tmp_path, 3)
    server.script[f"{ra_key(1)}/r"] = ["500", "ok"]
    server.script[f"{ra_key(2)}/i"] = ["nan"]
    summary, imageset = fetch(cat, tmp_path / "out", service="hips2fits",
                              base_url=server.url + "/hips2fits", **FAST)
    assert imageset.manifest["image_id"].tolist() == ["G00", "G01"]
    assert imageset.metadata["has_flux"] is True
    np.testing.assert_allclose(imageset.flux(), np.stack([object_flux(ra_key(0)),
                                                          object_flux(ra_key(1))]))
    reason = imageset.rejects().set_index("image_id").loc["G02", "reason"]
    assert reason == "band i: rejected: 320 NaN/inf pixels (7.8% of 4096), most in band 0"
    assert server.counts[f"{ra_key(1)}/r"] == 2
    assert all(server.counts[f"{ra_key(k)}/{b}"] == 1 for k in (0, 2) for b in "gri")


def test_cli_fetch_prints_a_summary(tmp_path, server, capsys):
    cat = catalogue(tmp_path, 3)
    code = main(["fetch", str(cat), "--out", str(tmp_path / "out"), "--base-url",
                 server.url, "--rate", "50", "--timeout", str(CLIENT_TIMEOUT),
                 "--backoff", "0.01", "--split", "0.5,0.25,0.25", "--no-progress"])
    assert code == 0
    text = capsys.readouterr().out
    assert "selected 3, fetched 3" in text and "image set: 3 images" in text


def test_journal_ignores_a_line_cut_short(tmp_path):
    path = tmp_path / "j.jsonl"
    with Journal(path) as j:
        j.record("a", "", "ok", "cutouts/a.jpg", None, 1)
    path.write_text(path.read_text() + '{"id": "b", "ke')
    j = Journal(path)
    assert j.status("a", "")["status"] == "ok" and j.status("b", "") is None
    j.record("b", "", "failed", None, "HTTP 500", 3)
    j.close()
    assert Journal(path).status("b", "")["reason"] == "HTTP 500"


def test_kill_mid_run_then_resume(tmp_path, server):
    import os
    import signal
    import subprocess
    import sys
    import time

    cat = catalogue(tmp_path, 24)
    out = tmp_path / "out"
    code = (f"from galrate.fetch import fetch; fetch({str(cat)!r}, {str(out)!r}, "
            f"base_url={server.url!r}, rate=15, workers=2, timeout=2, pack=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    journal = out / "fetch-journal.jsonl"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 6:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    on_disk = {p.stem for p in (out / "cutouts").glob("*.jpg")}
    assert 6 <= len(on_disk) < 24, "the kill came too late to test a resume"
    assert not list((out / "cutouts").glob("*.jpg.*"))  # no half-written cutouts

    summary, imageset = fetch(cat, out, base_url=server.url, **FAST)
    assert len(imageset) == 24 and len(imageset.rejects()) == 0
    counts = {f"G{k:02d}": server.counts[ra_key(k)] for k in range(24)}
    # nothing written before the kill was asked for again ...
    assert all(counts[g] == 1 for g in on_disk)
    # ... and only requests in flight at the kill (one per worker) were repeated
    assert sum(counts.values()) - 24 <= 2
    assert summary.skipped + summary.fetched == 24
