"""A miniature ``galrate demo``: every step runs and the outputs hang together."""

import json
from html.parser import HTMLParser

import pytest

from galrate.cli import main
from galrate.demo import DemoConfig, demo


class _Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.srcs, self.headings = [], []
        self._in_h = False

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.srcs.append(dict(attrs).get("src", ""))
        self._in_h = tag in ("h2", "h3")

    def handle_data(self, data):
        if self._in_h and data.strip():
            self.headings.append(data.strip())
            self._in_h = False


TINY = dict(n_observed=60, n_suite=10, projections=2, n_sanity=6,
            families=("compact",), levels=(0, 3), seeds=(0,), epochs=1, ngf=8, nz=16,
            batch_size=16, n_boot=20, n_perm=20, workers=1)


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    results = demo(out, DemoConfig(**TINY))
    return out, results


def test_demo_writes_every_step(tiny_demo):
    out, results = tiny_demo
    assert (out / "sky" / "sky.json").exists()
    assert (out / "model-seed0" / "model.safetensors").exists()
    names = {p.stem for p in (out / "scores-seed0").glob("*.parquet")}
    assert {"observed", "null", "compact-3", "sanity-photo", "sanity-blank"} <= names
    summary = json.loads((out / "demo-summary.json").read_text())
    sources = [r["source"] for r in summary["verdict"]["verdict"]]
    assert "null" in sources and "compact-3" in sources and "observed" not in sources
    saved = json.loads((out / "report" / "results.json").read_text())
    assert saved["verdict"]["checks"].keys() >= {"null_detected", "grows_with_level",
                                                 "detected_at_top_level"}


def test_demo_report_leads_with_the_verdict(tiny_demo):
    out, _ = tiny_demo
    page = _Images()
    page.feed((out / "report" / "report.html").read_text())
    assert page.headings[0].startswith("Verdict")
    assert page.srcs and all(s.startswith("data:image/png;base64,") for s in page.srcs)


def test_demo_resumes_without_redoing_work(tiny_demo):
    out, _ = tiny_demo
    model = out / "model-seed0" / "model.safetensors"
    before = model.stat().st_mtime_ns
    demo(out, DemoConfig(**TINY))
    assert model.stat().st_mtime_ns == before


def test_demo_cli_help_names_the_steps(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    text = capsys.readouterr().out
    assert "--seeds" in text and "resumes" in text
