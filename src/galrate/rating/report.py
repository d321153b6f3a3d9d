"""The rating report: one self-contained HTML file.

Figures are embedded as base64 PNG ``data:`` URIs; there are no scripts and no
external files, so the report can be mailed or archived as is. Every number in
it also lies in ``results.json`` next to it. Intervals read
``value [low, high]`` (the bootstrap interval at the configured level).

A report is a list of sections ``(title, content)``; content is an HTML
string, a DataFrame (rendered as a table), a matplotlib Figure, or a list of
these. Sections without content are left out.
"""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from typing import Mapping, Sequence, Union

import pandas as pd
from matplotlib.figure import Figure

from .figures import figure_png

log = logging.getLogger(__name__)

__all__ = ["Content", "Section", "build_html", "write_report", "standard_sections",
           "format_estimate", "ranking_table", "sanity_table", "tests_table",
           "matched_table", "mass_bin_table", "paired_table", "correlation_table",
           "between_table", "figure_img"]

Content = Union[str, pd.DataFrame, Figure, Sequence["Content"]]
Section = tuple[str, Content]

_CSS = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
       line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
td.text, th.text { text-align: left; }
img { max-width: 100%; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
"""


# ----------------------------------------------------------------------
# rendering
def format_estimate(est: Mapping | None, digits: int = 3) -> str:
    """``"0.120 [0.100, 0.140]"`` from an Estimate dict (``"n/a"`` when missing)."""
    if not est or est.get("value") is None:
        return "n/a"
    text = f"{est['value']:.{digits}f}"
    if est.get("low") is not None and est.get("high") is not None:
        text += f" [{est['low']:.{digits}f}, {est['high']:.{digits}f}]"
    return text


def figure_img(fig: Figure, alt: str = "figure") -> str:
    """An ``<img>`` tag with the figure as a base64 PNG data URI."""
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _render(content: Content, title: str) -> str:
    """HTML for a content item; empty string when there is nothing to show."""
    if content is None:
        return ""
    if isinstance(content, Figure):
        return figure_img(content, alt=title)
    if isinstance(content, pd.DataFrame):
        if content.empty:
            return ""
        return content.to_html(index=False, border=0, escape=True, na_rep="n/a",
                               float_format=lambda v: f"{v:.4g}")
    if isinstance(content, str):
        return content.strip()
    parts = [(item, _render(item, title)) for item in content]
    if all(isinstance(item, _Note) for item, part in parts if part):
        return ""                  # notes alone do not make a section
    return "\n".join(part for _, part in parts if part)


def build_html(sections: Sequence[Section], title: str = "galrate rating",
               intro: str = "") -> str:
    """The report as one HTML string; empty sections are left out."""
    body = []
    for name, content in sections:
        inner = _render(content, name)
        if not inner:
            log.info("report: section %r has no content and is left out", name)
            continue
        body.append(f"<section>\n<h2>{html.escape(name)}</h2>\n{inner}\n</section>")
    intro_html = f'<p class="note">{intro}</p>' if intro else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
            f"<body>\n<h1>{html.escape(title)}</h1>\n{intro_html}\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def write_report(path: str | Path, sections: Sequence[Section],
                 title: str = "galrate rating", intro: str = "") -> Path:
    """Write the HTML report to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_html(sections, title, intro), encoding="utf-8")
    return path


class _Note(str):
    """An explanatory paragraph; a section holding only notes is left out."""


def _note(text: str) -> _Note:
    return _Note(f'<p class="note">{html.escape(text)}</p>')


# ----------------------------------------------------------------------
# tables from the results dict
def ranking_table(results: Mapping) -> pd.DataFrame:
    """One row per ranked suite, best first."""
    rows = []
    for r in results.get("ranking", []):
        rows.append({"rank": r["rank"], "suite": r["suite"], "images": r["n_images"],
                     "galaxies": r["n_galaxies"],
                     "median A": format_estimate(r["median"], 4),
                     "anomaly rate": format_estimate(r["anomaly_rate"]),
                     "overlap": format_estimate(r.get("overlap")),
                     "mass-matched rate": _fmt(r.get("matched_rate")),
                     "KS p (galaxy means)": _fmt(r.get("ks_p_galaxy"), "{:.2g}")})
    return pd.DataFrame(rows)


def sanity_table(results: Mapping) -> pd.DataFrame:
    rows = [{"sanity set": s["source"], "images": s["n_images"],
             "anomaly rate": format_estimate(s["anomaly_rate"]),
             "median A": format_estimate(s["median"], 4),
             "flagged": "yes" if s["flagged"] else "NO"}
            for s in results.get("sanity", [])]
    return pd.DataFrame(rows)


def tests_table(results: Mapping) -> pd.DataFrame:
    rows = []
    for name, s in results.get("suites", {}).items():
        t = s.get("tests") or {}
        if t.get("ks_stat") is None:
            continue
        rows.append({"suite": name, "KS D (images)": t["ks_stat"],
                     "KS p (images)": t["ks_p"],
                     "KS D (galaxy means)": t.get("ks_stat_galaxy"),
                     "KS p (galaxy means)": t.get("ks_p_galaxy"),
                     "AD stat": t.get("ad_stat"),
                     "AD p": _fmt(t.get("ad_p"), "{:.3g}") + (" (clipped)" if
                                                              t.get("ad_p_clipped") else ""),
                     "Wasserstein": t.get("wasserstein")})
    return pd.DataFrame(rows)


def matched_table(results: Mapping) -> pd.DataFrame:
    rows = []
    for name, s in results.get("suites", {}).items():
        m = s.get("matched")
        if not m:
            continue
        rows.append({"suite": name, "suite median A": s["median"]["value"],
                     "matched observed median A": m["reference_median"],
                     "suite rate": s["anomaly_rate"]["value"],
                     "matched observed rate": m["reference_rate"],
                     "rate vs matched 95th pct": m["matched_rate"],
                     "unmatched fraction": m["unmatched_fraction"],
                     "effective N (observed)": m["effective_n"]})
    return pd.DataFrame(rows)


def mass_bin_table(results: Mapping) -> pd.DataFrame:
    rows = []
    for name, s in results.get("suites", {}).items():
        for label, b in (s.get("mass_bins") or {}).items():
            rows.append({"suite": name, "log M* bin": label, "images": b["n_images"],
                         "galaxies": b["n_galaxies"],
                         "median A": format_estimate(b.get("median"), 4),
                         "anomaly rate": format_estimate(b.get("anomaly_rate")),
                         "overlap": format_estimate(b.get("overlap"))})
    return pd.DataFrame(rows)


def paired_table(results: Mapping) -> pd.DataFrame:
    rows = [{"A": p["a"], "B": p["b"], "shared galaxies": p["n_galaxies"],
             "mean d (B-A)": format_estimate(p.get("mean_difference"), 4),
             "median d": format_estimate(p.get("median_difference"), 4),
             "fraction d>0": p.get("fraction_positive"), "sign p": p.get("sign_p"),
             "Wilcoxon p": p.get("wilcoxon_p")}
            for p in results.get("paired", [])]
    return pd.DataFrame(rows)


def correlation_table(results: Mapping) -> pd.DataFrame:
    rows = []
    for name, s in results.get("suites", {}).items():
        for c in s.get("correlations") or []:
            rows.append({"suite": name, "property": c["property"], "n": c["n"],
                         "Spearman r": _ci(c, "spearman"),
                         "Spearman p": c["spearman_p"],
                         "Spearman r (galaxy means)": c.get("spearman_r_galaxy"),
                         "Pearson r": _ci(c, "pearson"), "Pearson p": c["pearson_p"]})
    return pd.DataFrame(rows)


def between_table(results: Mapping) -> pd.DataFrame:
    rows = [{"suite A": b["a"], "suite B": b["b"], "KS D": b.get("ks_stat"),
             "KS p": b.get("ks_p"), "AD p": b.get("ad_p"),
             "Wasserstein": b.get("wasserstein")}
            for b in results.get("between_suites", [])]
    return pd.DataFrame(rows)


def _ci(c: Mapping, name: str) -> str:
    return format_estimate({"value": c[f"{name}_r"], "low": c.get(f"{name}_low"),
                            "high": c.get(f"{name}_high")})


def _fmt(value, pattern: str = "{:.3f}") -> str:
    return "n/a" if value is None else pattern.format(value)


# ----------------------------------------------------------------------
def standard_sections(results: Mapping, figures: Mapping[str, Content],
                      galleries: Content = ()) -> list[Section]:
    """The report's sections from the results and the drawn figures.

    ``figures`` maps ``"ranking"``, ``"histograms"``, ``"mass"``,
    ``"properties"`` and ``"scaling"`` to Figures (absent keys are skipped).
    """
    cfg = results.get("config", {})
    obs = results.get("observed", {})
    level = cfg.get("level", 0.95)
    pct = cfg.get("percentile", 95.0)
    thr = obs.get("threshold") if obs.get("reference") == "source" else None
    ref_note = (f"Anomaly rate: fraction of a suite's images above the observed "
                f"{pct:g}th percentile of A "
                f"({'n/a' if thr is None else format(thr, '.4g')}); {100 - pct:g}% "
                f"under the null. Intervals: {level:.0%} bootstrap over galaxies "
                f"(all projections of a drawn galaxy together), "
                f"{cfg.get('n_boot')} replicates. Suites ranked by "
                f"{cfg.get('rank_by')}.")
    if obs.get("reference") == "pct_column":
        ref_note = (f"No observed source in the tables: anomaly rate = fraction with "
                    f"{cfg.get('pct_column')} > {pct:g}. " + ref_note)
    overlap_note = ("Overlap: sum over bins of min(suite, observed) of the two "
                    "normalised histograms, divided by the suite's sum; common "
                    f"bins ({cfg.get('hist_bins')}) over the scores of the observed "
                    "galaxies and the ranked suites pooled; scores beyond that range "
                    "count in the end bins.")
    tests_note = ("KS (images) treats every image as independent and is "
                  "overconfident when galaxies have several projections; KS "
                  "(galaxy means) uses one mean score per galaxy. AD: "
                  "scipy.stats.anderson_ksamp (midrank); its p-value is clipped "
                  "to [0.001, 0.25]. Wasserstein distance in units of A.")
    matched_note = ("The observed images reweighted to the suite's stellar-mass "
                    "distribution (bins of "
                    f"{cfg.get('match_bin_width_dex')} dex): what the suite's "
                    "median and anomaly rate would be if it differed from the "
                    "observed galaxies only in mass; 'rate vs matched 95th pct' is "
                    "5% under the null.")
    paired_note = ("Suites that share galaxies, compared galaxy by galaxy: d is "
                   "the difference of per-galaxy mean A (B minus A); sign test "
                   "and Wilcoxon signed-rank test on d.")
    corr_note = ("p-values treat images as independent; intervals resample "
                 "galaxies; the galaxy-means column uses one point per galaxy.")
    prov = results.get("provenance", {})
    sections: list[Section] = [
        ("Ranking of suites", [_note(ref_note), ranking_table(results),
                               figures.get("ranking")]),
        ("Sanity checks", [_note("Each sanity set should be flagged: anomaly rate >= "
                                 f"{cfg.get('sanity_min_rate')}."),
                           sanity_table(results)] if results.get("sanity") else []),
        ("Score distributions", [_note(overlap_note), figures.get("histograms")]),
        ("Two-sample tests against the observed galaxies",
         [_note(tests_note), tests_table(results)] if not tests_table(results).empty
         else []),
        ("Anomaly score and stellar mass", [figures.get("mass")]),
        ("Mass-matched comparison",
         [_note(matched_note), matched_table(results)] if not matched_table(
             results).empty else []),
        ("Per mass bin", mass_bin_table(results)),
        ("Paired comparison of suites sharing galaxies",
         [_note(paired_note), paired_table(results)] if results.get("paired") else []),
        ("Correlations with properties",
         [_note(corr_note), correlation_table(results), figures.get("properties")]
         if not correlation_table(results).empty else figures.get("properties")),
        ("Scaling relations coloured by A", [figures.get("scaling")]),
        ("Galleries", galleries),
        ("Between suites", [_note("Two-sample tests between pairs of suites "
                                  "(images, see the note on independence above)."),
                            between_table(results)] if results.get("between_suites")
         else []),
        ("Warnings", "<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in
                                      results.get("warnings", [])) + "</ul>"
         if results.get("warnings") else ""),
        ("Provenance", "<pre>" + html.escape(json.dumps(
            {"configuration": cfg} | dict(prov), indent=2, default=str)) + "</pre>"
         if prov or cfg else ""),
    ]
    return sections
