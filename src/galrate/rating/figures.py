"""Figures of the rating, drawn with matplotlib's object API (no pyplot state).

Each function draws on the Axes (or, for multi-panel figures, the Figure) it is
given and returns what it drew, so figures can be composed, tested and saved
by the caller. :func:`new_figure` makes a Figure bound to the Agg canvas, which
works without a display; :func:`figure_png` renders one to PNG bytes.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["new_figure", "figure_png", "gallery", "score_histograms", "score_vs_mass",
           "score_vs_property", "scaling_relation", "ranking", "panel_grid",
           "SCORE_LABEL"]

#: axis label of the paper's anomaly score
SCORE_LABEL = "anomaly score A"

_OBSERVED_COLOUR = "0.55"


def new_figure(width_in: float = 6.0, height_in: float = 4.0, dpi: int = 110) -> Figure:
    """A Figure on the Agg canvas (no display, no global pyplot state)."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure, dpi: int | None = None) -> bytes:
    """The figure rendered as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi or fig.dpi)
    return buf.getvalue()


def panel_grid(fig: Figure, n: int, ncols: int = 4, **kwargs) -> list[Axes]:
    """``n`` Axes on a grid of at most ``ncols`` columns (sharing kwargs)."""
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    axes = fig.subplots(nrows, ncols, squeeze=False, **kwargs).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return list(axes[:n])


# ----------------------------------------------------------------------
def _as_display(image: np.ndarray) -> np.ndarray:
    """An RGB image (H, W, 3) as floats in [0, 1] for imshow."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.clip(image.astype(np.float32), 0.0, 1.0)


def _residual_map(residual: np.ndarray) -> np.ndarray:
    """|residual| (H, W), averaged over colour channels when there are any."""
    r = np.abs(np.asarray(residual, dtype=np.float32))
    if r.ndim == 3:
        r = r.mean(axis=-1) if r.shape[-1] in (1, 3) else r.mean(axis=0)
    return r


def gallery(fig: Figure, originals: np.ndarray, reconstructions: np.ndarray | None = None,
            residuals: np.ndarray | None = None, row_labels: Sequence[str] | None = None,
            title: str | None = None) -> np.ndarray:
    """Rows of original | reconstruction | residual images.

    Parameters
    ----------
    fig : Figure
        Figure to draw on (its panels are created here).
    originals : array (n, H, W, 3)
        uint8 RGB, or floats in [0, 1].
    reconstructions : array (n, H, W, 3), optional
        The detector's reconstructions; the column is left out when None.
    residuals : array (n, H, W) or (n, H, W, 3), optional
        Residuals (original - reconstruction); shown as |residual| averaged over
        channels, on one grey scale shared by the rows. Left out when None.
    row_labels : sequence of str, optional
        One label per row (e.g. ``"low A = 0.012"``).
    title : str, optional
        Figure title.

    Returns
    -------
    array of Axes, shape (n, n_columns)
    """
    originals = np.asarray(originals)
    n = len(originals)
    if n == 0:
        raise ValueError("gallery: no images to show")
    columns = [("original", originals)]
    if reconstructions is not None:
        columns.append(("reconstruction", np.asarray(reconstructions)))
    if residuals is not None:
        columns.append(("|residual|", np.asarray(residuals)))
    for name, arr in columns[1:]:
        if len(arr) != n:
            raise ValueError(f"gallery: {n} originals but {len(arr)} {name} images")
    axes = fig.subplots(n, len(columns), squeeze=False)
    vmax = None
    if residuals is not None:
        vmax = float(max(_residual_map(r).max() for r in residuals)) or 1.0
    for i in range(n):
        for j, (name, arr) in enumerate(columns):
            ax = axes[i, j]
            if name == "|residual|":
                ax.imshow(_residual_map(arr[i]), cmap="gray_r", vmin=0, vmax=vmax,
                          interpolation="nearest")
            else:
                ax.imshow(_as_display(arr[i]), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


def score_histograms(ax: Axes, suites: Mapping[str, np.ndarray], observed: np.ndarray | None,
                     edges: np.ndarray, threshold: float | None = None,
                     density: bool = True) -> list:
    """Score histograms of suites (steps) over the observed one (filled grey).

    Parameters
    ----------
    suites : mapping name -> scores (N,)
    observed : array (N_obs,) or None
    edges : array
        Common bin edges (as used for the overlap).
    threshold : float, optional
        The anomaly threshold (observed 95th percentile), drawn as a dashed line.

    Scores beyond the edges are drawn in the end bins, as the overlap counts them.

    Returns
    -------
    list of artists (patches of each histogram, then the threshold line).
    """
    drawn = []
    if observed is not None and len(observed):
        _, _, patches = ax.hist(np.clip(observed, edges[0], edges[-1]), bins=edges,
                                density=density, color=_OBSERVED_COLOUR, alpha=0.5,
                                label="observed")
        drawn.append(patches)
    for name, scores in suites.items():
        _, _, patches = ax.hist(np.clip(scores, edges[0], edges[-1]), bins=edges,
                                density=density, histtype="step",
                                linewidth=1.4, label=name)
        drawn.append(patches)
    if threshold is not None and np.isfinite(threshold):
        drawn.append(ax.axvline(threshold, color="k", linestyle="--", linewidth=0.8,
                                label="observed 95th pct"))
    ax.set_xlabel(SCORE_LABEL)
    ax.set_ylabel("density" if density else "images")
    ax.legend(fontsize=7, frameon=False)
    return drawn


def score_vs_mass(ax: Axes, galaxies: Mapping[str, pd.DataFrame],
                  observed_mass: np.ndarray | None = None,
                  observed_score: np.ndarray | None = None,
                  mass_edges: Sequence[float] | None = None) -> list:
    """Per-galaxy mean A against stellar mass over the observed density.

    Parameters
    ----------
    galaxies : mapping name -> DataFrame
        Columns ``log_mstar`` (log10 Msun), ``mean`` (mean A over projections)
        and ``std`` (scatter over projections, drawn as error bars).
    observed_mass, observed_score : arrays (N_obs,), optional
        Observed images, drawn as a 2-d density (hexagonal bins).
    mass_edges : sequence, optional
        Mass-bin edges, drawn as dotted vertical lines.

    Returns
    -------
    list of artists.
    """
    drawn = []
    if observed_mass is not None and observed_score is not None and len(observed_mass):
        ok = np.isfinite(observed_mass) & np.isfinite(observed_score)
        if ok.sum() >= 3:
            drawn.append(ax.hexbin(observed_mass[ok], observed_score[ok], gridsize=25,
                                   cmap="Greys", mincnt=1, linewidths=0))
    for name, g in galaxies.items():
        drawn.append(ax.errorbar(g["log_mstar"].to_numpy(float), g["mean"].to_numpy(float),
                                 yerr=g["std"].to_numpy(float), fmt="o",
                                 markersize=3, elinewidth=0.8, capsize=0, label=name))
    for edge in mass_edges or ():
        drawn.append(ax.axvline(edge, color="0.3", linestyle=":", linewidth=0.7))
    ax.set_xlabel(r"$\log_{10} M_\star / M_\odot$")
    ax.set_ylabel(f"per-galaxy mean {SCORE_LABEL}")
    if galaxies:
        ax.legend(fontsize=7, frameon=False)
    return drawn


def score_vs_property(fig: Figure, x: Mapping[str, np.ndarray], y: Mapping[str, np.ndarray],
                      x_label: str, bins: int = 30) -> dict[str, Axes]:
    """A against one property, with marginal distributions on both axes.

    Parameters
    ----------
    fig : Figure
    x, y : mapping name -> array (N,)
        The property and the score of each sample (e.g. ``"observed"`` and
        the suites); ``"observed"`` is drawn in grey below the others.
    x_label : str
        The property, with its unit.

    Returns
    -------
    dict with the Axes ``"main"``, ``"top"`` and ``"right"``.
    """
    grid = fig.add_gridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4))
    main = fig.add_subplot(grid[1, 0])
    top = fig.add_subplot(grid[0, 0], sharex=main)
    right = fig.add_subplot(grid[1, 1], sharey=main)
    xs = [np.asarray(v, dtype=float) for v in x.values()]
    ys = [np.asarray(v, dtype=float) for v in y.values()]
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    x_edges = np.histogram_bin_edges(x_all[np.isfinite(x_all)], bins)
    y_edges = np.histogram_bin_edges(y_all[np.isfinite(y_all)], bins)
    for name, xv, yv in zip(x.keys(), xs, ys):
        obs = name == "observed"
        colour = _OBSERVED_COLOUR if obs else None
        main.scatter(xv, yv, s=4 if obs else 8, alpha=0.4 if obs else 0.8, c=colour,
                     label=name, linewidths=0, zorder=1 if obs else 2)
        kind = dict(color=colour, alpha=0.5) if obs else dict(histtype="step")
        top.hist(xv[np.isfinite(xv)], bins=x_edges, density=True, **kind)
        right.hist(yv[np.isfinite(yv)], bins=y_edges, density=True,
                   orientation="horizontal", **kind)
    main.set_xlabel(x_label)
    main.set_ylabel(SCORE_LABEL)
    top.tick_params(labelbottom=False)
    right.tick_params(labelleft=False)
    top.set_yticks([])
    right.set_xticks([])
    if len(x) <= 10:
        main.legend(fontsize=7, frameon=False, markerscale=2)
    return {"main": main, "top": top, "right": right}


def scaling_relation(ax: Axes, x: np.ndarray, y: np.ndarray, score: np.ndarray,
                     x_label: str, y_label: str, vmax: float | None = None):
    """A scaling relation (e.g. size-mass, colour-mass) coloured by A.

    Returns
    -------
    The scatter (PathCollection); its colour bar is attached to ``ax``.
    """
    order = np.argsort(score)          # anomalous points on top
    sc = ax.scatter(np.asarray(x)[order], np.asarray(y)[order], c=np.asarray(score)[order],
                    s=8, cmap="viridis", vmax=vmax, linewidths=0)
    ax.figure.colorbar(sc, ax=ax, label=SCORE_LABEL)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    return sc


def ranking(ax: Axes, names: Sequence[str], values: Sequence[float],
            lows: Sequence[float], highs: Sequence[float], x_label: str,
            null_value: float | None = None):
    """Suites ranked top to bottom with their confidence intervals.

    Parameters
    ----------
    names, values, lows, highs : sequences
        In rank order (best first); NaN bounds draw no error bar.
    x_label : str
        The ranking statistic.
    null_value : float, optional
        The value expected under the null (e.g. 0.05 for the anomaly rate),
        drawn as a dashed line.

    Returns
    -------
    The ErrorbarContainer.
    """
    values = np.asarray(values, dtype=float)
    lows = np.asarray(lows, dtype=float)
    highs = np.asarray(highs, dtype=float)
    pos = np.arange(len(names))[::-1]
    err = np.vstack([np.nan_to_num(values - lows), np.nan_to_num(highs - values)])
    drawn = ax.errorbar(values, pos, xerr=err, fmt="o", color="C0", capsize=2,
                        markersize=4)
    ax.set_yticks(pos, labels=list(names), fontsize=8)
    if null_value is not None:
        ax.axvline(null_value, color="0.4", linestyle="--", linewidth=0.8)
    ax.set_xlabel(x_label)
    ax.grid(axis="x", alpha=0.3)
    return drawn
