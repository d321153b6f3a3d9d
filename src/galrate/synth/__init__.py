"""The embedded synthetic SDSS-like sky.

An observed population of galaxies drawn from scaling relations of a
flux-limited SDSS sample, simulation suites of an independent draw of the
same population with named physical deviations at strength levels 0-3 (level
0: the null suite), and sanity sets (photographs, blank and spoilt cutouts),
all rendered with GalSim through the project's :class:`~galrate.survey.Survey`.

Main entry point: :func:`synth`. Lower-level pieces for tests and the mock
observer: :func:`draw_population`, :func:`draw_images`,
:func:`apply_deviation`, :func:`galaxy_profiles`, :func:`render_image`,
:func:`sanity_set`, :func:`contact_sheet`.
"""

from .contact import contact_sheet, sheet_sets
from .deviations import DEVIATIONS, FAMILIES, Deviation, Move, apply_deviation, deviation_table
from .population import (PROPERTY_COLUMNS, derive_properties, draw_images,
                         draw_population)
from .render import galaxy_profiles, render_image, render_noiseless, render_rows
from .sanity import SANITY_SETS, sanity_set
from .sky import SynthConfig, exact_split, observed_images, suite_images, synth

__all__ = ["synth", "SynthConfig", "draw_population", "draw_images", "derive_properties",
           "apply_deviation", "DEVIATIONS", "FAMILIES", "Deviation", "Move",
           "deviation_table", "galaxy_profiles", "render_image", "render_noiseless",
           "render_rows", "sanity_set", "SANITY_SETS", "contact_sheet", "sheet_sets",
           "observed_images", "suite_images", "exact_split", "PROPERTY_COLUMNS"]
