"""Survey cutout download: SkyServer JPEGs or hips2fits FITS bands -> an image set."""

from .core import CUTOUTS, JOURNAL, FetchSummary, fetch, select_catalogue
from .http import FetchFailed, RetryPolicy, TokenBucket, get_with_retries
from .journal import Journal
from .services import SERVICES, Hips2Fits, SkyServerJPEG, make_service

__all__ = ["fetch", "FetchSummary", "select_catalogue", "CUTOUTS", "JOURNAL",
           "TokenBucket", "RetryPolicy", "FetchFailed", "get_with_retries", "Journal",
           "SkyServerJPEG", "Hips2Fits", "make_service", "SERVICES"]
