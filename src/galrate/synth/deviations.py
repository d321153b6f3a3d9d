"""Named physical deviations of the simulation suites.

A simulation suite is the synthetic population seen through a deliberate
flaw of known strength: level 0 is the null suite (the population itself),
levels 1-3 move one physical quantity further and further. The table
:data:`DEVIATIONS` is the single place that states, for every family, the
quantity it moves, how much at each level and why a simulation might be
wrong in that way. :func:`apply_deviation` changes exactly those columns and
recomputes what is derived from them (angular size from physical size, B-V
from g-r, component radii and global Sersic index from B/T); every other
column of every galaxy is left untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from .population import derive_properties

__all__ = ["Move", "Deviation", "DEVIATIONS", "FAMILIES", "apply_deviation",
           "deviation_table"]

Operation = Literal["scale", "shift", "raise_to", "set"]


@dataclass(frozen=True)
class Move:
    """One column moved by a deviation.

    Parameters
    ----------
    column : str
        Intrinsic population column (see :func:`draw_population`).
    operation : {"scale", "shift", "raise_to", "set"}
        ``scale``: multiply; ``shift``: add; ``raise_to``: ``max(value, x)``;
        ``set``: replace by ``x``.
    per_level : tuple of 3 floats
        The factor, shift or value at levels 1, 2 and 3 (units of the column).
    """

    column: str
    operation: Operation
    per_level: tuple[float, float, float]

    def apply(self, values: np.ndarray, level: int) -> np.ndarray:
        x = self.per_level[level - 1]
        if self.operation == "scale":
            return values * x
        if self.operation == "shift":
            return values + x
        if self.operation == "raise_to":
            return np.maximum(values, x)
        return np.full_like(values, x, dtype=float)


@dataclass(frozen=True)
class Deviation:
    """A family of simulation suites: what it moves, by how much and why.

    The first move is the named quantity; further moves keep it consistent
    (the r-i colour follows a g-r shift) or complete it (a smoother light
    distribution with fewer knots).
    """

    family: str
    moves: tuple[Move, ...]
    motivation: str

    @property
    def quantity(self) -> str:
        return self.moves[0].column


#: the deviation families (levels 1, 2, 3; level 0 is the null suite)
DEVIATIONS: dict[str, Deviation] = {d.family: d for d in (
    Deviation("compact", (Move("r_half_kpc", "scale", (0.85, 0.70, 0.50)),),
              "too little angular-momentum retention or feedback-driven expansion "
              "gives discs and spheroids smaller than observed"),
    Deviation("extended", (Move("r_half_kpc", "scale", (1.20, 1.45, 1.80)),),
              "over-efficient feedback or spurious heating puffs galaxies up beyond "
              "the observed mass-size relation"),
    Deviation("blue", (Move("g_r", "shift", (-0.10, -0.20, -0.30)),
                       Move("r_i", "shift", (-0.05, -0.10, -0.15))),
              "too much recent star formation (weak quenching) makes stellar "
              "populations younger and bluer at fixed mass"),
    Deviation("red", (Move("g_r", "shift", (0.10, 0.20, 0.30)),
                      Move("r_i", "shift", (0.05, 0.10, 0.15))),
              "over-quenching or too much dust reddens galaxies at fixed mass"),
    Deviation("bulgeless", (Move("bt", "scale", (2 / 3, 1 / 3, 0.0)),),
              "strong outflows remove low-angular-momentum gas so no central "
              "bulge forms (the NIHAO-like regime)"),
    Deviation("clumpy", (Move("knot_frac", "raise_to", (0.20, 0.35, 0.50)),),
              "star formation in unresolved dense clumps that feedback fails to "
              "disrupt puts a large share of disc light in knots"),
    Deviation("smooth", (Move("knot_frac", "scale", (0.5, 0.2, 0.0)),
                         Move("smoothing_kpc", "set", (0.25, 0.5, 1.0))),
              "low resolution (gravitational softening of a few hundred pc) "
              "erases clumps and blurs the light distribution"),
)}

FAMILIES = tuple(DEVIATIONS)


def apply_deviation(galaxies: pd.DataFrame, family: str, level: int) -> pd.DataFrame:
    """The same galaxies with deviation ``family`` at strength ``level``.

    Parameters
    ----------
    galaxies : DataFrame
        A population table from :func:`draw_population`.
    family : str
        One of :data:`FAMILIES`.
    level : int
        0 (unchanged: the null suite) to 3.

    Returns
    -------
    DataFrame
        A copy; the moved columns changed, derived columns recomputed, every
        other column identical.

    Raises
    ------
    ValueError
        Unknown family or level outside 0-3.
    """
    if family not in DEVIATIONS:
        raise ValueError(f"unknown deviation family {family!r}; "
                         f"known families: {', '.join(FAMILIES)}")
    if level not in (0, 1, 2, 3):
        raise ValueError(f"level must be 0, 1, 2 or 3; got {level!r}")
    out = galaxies.copy()
    if level == 0:
        return out
    for move in DEVIATIONS[family].moves:
        out[move.column] = move.apply(out[move.column].to_numpy(dtype=float), level)
    return derive_properties(out)


def deviation_table() -> pd.DataFrame:
    """:data:`DEVIATIONS` as a table (one row per family and moved column)."""
    rows = [{"family": d.family, "column": m.column, "operation": m.operation,
             "level_1": m.per_level[0], "level_2": m.per_level[1],
             "level_3": m.per_level[2], "motivation": d.motivation}
            for d in DEVIATIONS.values() for m in d.moves]
    return pd.DataFrame(rows)
