"""The HTML report: self-contained, parseable, no empty sections."""

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from galrate.imageset import ArrayStoreWriter, write_imageset
from galrate.rating import RateConfig, rate
from galrate.rating import report as R
from galrate.rating.figures import new_figure

PNG = b"\x89PNG\r\n\x1a\n"


class ReportParser(HTMLParser):
    """Collects images, links, scripts and the content of each section."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.scripts = [], [], 0
        self.sections: list[dict] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append({"title": "", "tags": 0, "text": ""})
        elif tag == "h2":
            self._in_h2 = True
        elif tag == "script":
            self.scripts += 1
        elif self.sections:
            self.sections[-1]["tags"] += 1
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("a", "link") and "href" in attrs:
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self.sections:
            key = "title" if self._in_h2 else "text"
            self.sections[-1][key] += data.strip()


def parse(path) -> ReportParser:
    parser = ReportParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def score_table(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(60):
        m = rng.uniform(9, 12)
        rows.append({"image_id": f"o{i}", "source": "observed", "galaxy_id": f"o{i}",
                     "log_mstar": m, "g_r": 0.6 + 0.05 * rng.normal(),
                     "r_half_kpc": 3 * 10 ** (0.2 * (m - 10)),
                     "score_latent": rng.lognormal(0, 0.5)})
    for source, shift in (("null", 0.0), ("clumpy-2", 0.8), ("sanity-trail", 3.0)):
        for g in range(6):
            m = rng.uniform(9, 12)
            for p in range(2):
                rows.append({"image_id": f"{source}-{g}-{p}", "source": source,
                             "galaxy_id": f"g{g}", "projection": p, "log_mstar": m,
                             "g_r": 0.6 + 0.05 * rng.normal(),
                             "r_half_kpc": 3 * 10 ** (0.2 * (m - 10)),
                             "score_latent": rng.lognormal(shift, 0.3)})
    return pd.DataFrame(rows)


def fake_images(source, image_ids):
    n = len(image_ids)
    orig = np.full((n, 16, 16, 3), 100, np.uint8)
    recon = np.full((n, 16, 16, 3), 0.3, np.float32)
    return orig, recon, orig / 255.0 - recon


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    fig = new_figure(2, 2)
    fig.add_subplot().plot([0, 1], [1, 0])
    extra = [("Representation-space rating", "<p>classifier two-sample test</p>"),
             ("C2ST table", pd.DataFrame({"suite": ["null"], "auc": [0.51]})),
             ("C2ST figure", fig)]
    calls = []
    res = rate([score_table()], out, RateConfig(n_boot=40), extra_sections=extra,
               images_for=lambda s, ids: (calls.append(s), fake_images(s, ids))[1],
               progress=lambda done, total, what: calls.append((done, total)))
    return out, res, calls


def test_report_is_self_contained_and_every_image_is_png(report):
    out, _, _ = report
    parsed = parse(out / "report.html")
    assert len(parsed.images) >= 6
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert parsed.scripts == 0 and parsed.links == []


def test_report_has_no_empty_sections_and_extras_first(report):
    out, _, _ = report
    sections = parse(out / "report.html").sections
    titles = [s["title"] for s in sections]
    assert titles[:3] == ["Representation-space rating", "C2ST table", "C2ST figure"]
    for s in ("Ranking of suites", "Sanity checks", "Galleries", "Provenance"):
        assert s in titles
    for s in sections:
        assert s["tags"] > 0 or s["text"], f"empty section {s['title']!r}"


def test_report_tables_show_intervals(report):
    out, res, _ = report
    html = (out / "report.html").read_text()
    null = res["ranking"][0]
    assert null["suite"] == "null"
    assert R.format_estimate(null["anomaly_rate"]) in html
    assert "sanity-trail" in html


def test_results_json_next_to_report(report):
    out, res, calls = report
    on_disk = json.loads((out / "results.json").read_text())
    assert [r["suite"] for r in on_disk["ranking"]] == ["null", "clumpy-2"]
    assert on_disk["sanity"][0]["flagged"] is True
    assert on_disk["provenance"]["versions"]["numpy"] == np.__version__
    assert on_disk == res
    # galleries for observed, every suite and the sanity set; progress reached the end
    assert {"observed", "null", "clumpy-2", "sanity-trail"} <= set(calls)
    assert calls[-1][0] == calls[-1][1]


def with_imageset(tmp_path, sources=("observed", "null")) -> pd.DataFrame:
    """The tiny score table restricted to ``sources``, with a real image set."""
    table = score_table()
    table = table[table.source.isin(sources)].reset_index(drop=True)
    folder = tmp_path / "images"
    folder.mkdir()
    rgb = np.zeros((len(table), 8, 8, 3), np.uint8)
    rgb[:, :4] = 200
    with ArrayStoreWriter(folder / "pixels.h5", size=8) as store:
        rows = store.append(table["image_id"].tolist(), rgb)
    write_imageset(folder, table.assign(path="pixels.h5", index=list(rows)),
                   {"kind": "rgb8", "size": 8})
    return table.assign(imageset=str(folder))


def test_galleries_from_imageset_column_without_model(tmp_path):
    table = with_imageset(tmp_path)
    out = tmp_path / "out"
    res = rate([table], out, RateConfig(n_boot=20, between_suites=False))
    parsed = parse(out / "report.html")
    galleries = next(s for s in parsed.sections if s["title"] == "Galleries")
    assert galleries["tags"] >= 2                       # observed and null
    folder = tmp_path / "images"
    assert list(res["provenance"]["manifests"]) == [str(folder / "manifest.parquet")]


def test_galleries_through_the_detector_when_a_model_is_given(tmp_path, monkeypatch):
    import galrate.detector as detector
    from galrate.imageset import file_sha256
    from galrate.rating import figures

    model = tmp_path / "model.safetensors"
    model.write_bytes(b"weights")
    seen = {}
    monkeypatch.setattr(detector, "load_model", lambda path: seen.setdefault("m", path))
    monkeypatch.setattr(detector, "reconstruct", lambda net, rgb: (
        rgb // 2, np.ones(rgb.shape[:3], np.float32)))
    drawn = []
    real_gallery = figures.gallery
    monkeypatch.setattr(figures, "gallery", lambda fig, o, r, d, *a, **k: (
        drawn.append((o, r, d)), real_gallery(fig, o, r, d, *a, **k))[1])
    res = rate([with_imageset(tmp_path)], tmp_path / "out",
               RateConfig(n_boot=20, between_suites=False), model=model)
    assert seen["m"] == model
    assert res["provenance"]["model_sha256"] == file_sha256(model)
    orig, recon, resid = drawn[0]
    assert orig.shape == (3, 8, 8, 3) and orig[0, 0, 0, 0] == 200
    np.testing.assert_array_equal(recon, orig // 2)
    assert resid.shape == (3, 8, 8)


def test_build_html_leaves_out_empty_sections():
    html = R.build_html([("Empty", ""), ("No rows", pd.DataFrame()),
                         ("Notes only", [R._note("a note"), None]),
                         ("Kept", "<p>x</p>")])
    assert "Empty" not in html and "No rows" not in html and "Notes only" not in html
    assert "<h2>Kept</h2>" in html


def test_format_estimate():
    assert R.format_estimate({"value": 0.12, "low": 0.1, "high": 0.14}, 2) == \
        "0.12 [0.10, 0.14]"
    assert R.format_estimate({"value": 0.12, "low": None, "high": None}, 2) == "0.12"
    assert R.format_estimate(None) == "n/a"
