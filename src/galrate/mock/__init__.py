"""Mock observation: simulated galaxies seen through the survey model.

* :func:`mock_observe` -- idealised band maps (FITS or arrays) -> survey cutouts.
* :func:`load_stars`, :func:`mock_particles` -- particle snapshots (pynbody)
  -> band maps -> survey cutouts, with :func:`galaxy_properties` for the
  manifest.
* :func:`mock_folder` -- a folder of snapshots or FITS maps -> an image set
  (``galrate mock``).
"""

from .observe import MockResult, draw_redshift, mock_observe
from .particles import (StarParticles, galaxy_properties, load_stars, mock_particles,
                        orientations, project_light, star_luminosities)
from .photometry import SUN_ABS_MAG_AB, UNITS, ZSUN, arcsec_per_kpc
from .pipeline import MockConfig, load_config, mock_folder

__all__ = ["MockResult", "mock_observe", "draw_redshift", "StarParticles", "load_stars",
           "mock_particles", "orientations", "project_light", "star_luminosities",
           "galaxy_properties", "SUN_ABS_MAG_AB", "UNITS", "ZSUN", "arcsec_per_kpc",
           "MockConfig", "load_config", "mock_folder"]
