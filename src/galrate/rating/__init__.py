"""Rating: statistics, representation-space tests, figures and reports over score tables.

``rate`` turns score tables into statistics with intervals over galaxies, figures
and a self-contained HTML report; the statistics themselves are pure functions in
:mod:`galrate.rating.stats`.
"""

from .rate import RateConfig, load_tables, originals_from_imageset, rate

__all__ = ["RateConfig", "load_tables", "originals_from_imageset", "rate"]
