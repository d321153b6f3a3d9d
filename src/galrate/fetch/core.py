"""``fetch``: download survey cutouts for a catalogue and pack them as an image set.

The run is resumable. Each cutout is written into ``OUT/cutouts/`` atomically
(a temporary file renamed into place) and its outcome appended to
``OUT/fetch-journal.jsonl``. A second run skips what is done, retries what
failed, and adopts files that were written just before an interruption but
not yet journaled. Every cutout is checked on arrival (content type, HTML
error pages, decoding, size, blank images); failures end in
``rejects.parquet`` with their reasons.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import threading
import time
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from ..imageset.core import METADATA, REJECTS, ImageSet
from ..imageset.ingest import ingest, read_catalogue
from ..imageset.validate import Rejects, assign_split
from ..provenance import ProgressCallback, no_progress, write_run_record
from ..survey import load_survey
from .http import FetchFailed, RetryPolicy, TokenBucket, get_with_retries
from .journal import Journal
from .services import make_service

log = logging.getLogger(__name__)

__all__ = ["fetch", "FetchSummary", "select_catalogue", "CUTOUTS", "JOURNAL"]

CUTOUTS = "cutouts"
JOURNAL = "fetch-journal.jsonl"
_ID_CANDIDATES = ("id", "objid", "image_id", "galaxy_id")


@dataclass
class FetchSummary:
    """What a fetch run did.

    Attributes
    ----------
    selected : int
        Galaxies in the catalogue after the cuts.
    fetched : int
        Galaxies completed in this run (all their files now present).
    skipped : int
        Galaxies already complete (or already rejected) before this run.
    adopted : int
        Files found on disk from an interrupted run and accepted without
        downloading them again.
    deferred : int
        Galaxies left for a later run (``max_images``).
    failed, rejected : dict
        Galaxies per reason: failed (retried by the next run) and rejected
        (unusable answers, kept as rejects).
    http_requests : int
        HTTP attempts made, retries included.
    time_s : float
        Wall time of the download step.
    n_images : int or None
        Images in the packed image set (None when not packed).
    """

    selected: int = 0
    fetched: int = 0
    skipped: int = 0
    adopted: int = 0
    deferred: int = 0
    failed: dict = field(default_factory=dict)
    rejected: dict = field(default_factory=dict)
    http_requests: int = 0
    time_s: float = 0.0
    n_images: int | None = None

    def lines(self) -> list[str]:
        """A human-readable summary, one fact per line."""
        out = [f"selected {self.selected}, fetched {self.fetched}, skipped (done before) "
               f"{self.skipped}, adopted files {self.adopted}, left for a later run "
               f"{self.deferred}",
               f"HTTP requests {self.http_requests} in {self.time_s:.1f} s"]
        out += [f"failed   {n:6d}  {r}" for r, n in sorted(self.failed.items())]
        out += [f"rejected {n:6d}  {r}" for r, n in sorted(self.rejected.items())]
        if self.n_images is not None:
            out.append(f"image set: {self.n_images} images")
        return out


def _column(frame: pd.DataFrame, name: str, where: str) -> str:
    """The column called ``name``, case-insensitively."""
    if name in frame.columns:
        return name
    for c in frame.columns:
        if str(c).lower() == name.lower():
            return c
    raise ValueError(f"{where}: no column {name!r}; columns are {list(frame.columns)}")


def select_catalogue(catalogue: str | Path | pd.DataFrame, *, where: str | None = None,
                     id_column: str | None = None, ra_column: str = "ra",
                     dec_column: str = "dec") -> pd.DataFrame:
    """Read a catalogue, apply the cuts and give every galaxy an id.

    Parameters
    ----------
    catalogue : path or DataFrame
        CSV, Parquet or FITS table with right ascension and declination in
        degrees and any property columns.
    where : str, optional
        A pandas query selecting rows, e.g. ``"log_mstar >= 9"``.
    id_column : str, optional
        Column with the galaxy id; default the first of ``id``, ``objid``,
        ``image_id``, ``galaxy_id`` present, else ``J{ra:.6f}{dec:+.6f}``.

    Returns
    -------
    DataFrame
        The selected rows with columns ``galaxy_id``, ``ra``, ``dec`` first.

    Raises
    ------
    ValueError
        Missing columns, a query that fails, duplicate ids, coordinates out
        of range; the message names the catalogue.
    """
    label = "catalogue" if isinstance(catalogue, pd.DataFrame) else str(catalogue)
    frame = catalogue.copy() if isinstance(catalogue, pd.DataFrame) \
        else read_catalogue(catalogue)
    ra_c = _column(frame, ra_column, label)
    dec_c = _column(frame, dec_column, label)
    if where:
        try:
            frame = frame.query(where)
        except Exception as exc:  # pandas raises many types for a bad expression
            raise ValueError(f"{label}: cannot apply --where {where!r}: {exc}; columns "
                             f"are {list(frame.columns)}") from exc
    ra = pd.to_numeric(frame[ra_c], errors="coerce").to_numpy(float)
    dec = pd.to_numeric(frame[dec_c], errors="coerce").to_numpy(float)
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (ra >= 0) & (ra < 360)
            & (np.abs(dec) <= 90))
    if bad.any():
        raise ValueError(f"{label}: {bad.sum()} row(s) with ra outside [0, 360) or dec "
                         f"outside [-90, 90] degrees, e.g. row {int(np.flatnonzero(bad)[0])}")
    if id_column is not None:
        ids = frame[_column(frame, id_column, label)].astype(str)
    else:
        found = next((c for c in frame.columns if str(c).lower() in _ID_CANDIDATES), None)
        ids = frame[found].astype(str) if found is not None else pd.Series(
            [f"J{a:.6f}{d:+.6f}" for a, d in zip(ra, dec)], index=frame.index)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValueError(f"{label}: duplicate galaxy ids, e.g. {list(dup.unique()[:3])}")
    props = frame.drop(columns=[c for c in frame.columns
                                if c in (ra_c, dec_c) or str(c).lower() == "galaxy_id"
                                or c == id_column])
    out = pd.DataFrame({"galaxy_id": ids.to_numpy(), "ra": ra, "dec": dec})
    return pd.concat([out, props.reset_index(drop=True)], axis=1)


def _file_stem(galaxy_id: str) -> str:
    """A file-system safe stem; ids with other characters get a hash suffix."""
    safe = re.sub(r"[^A-Za-z0-9._+-]", "_", galaxy_id).lstrip(".") or "_"
    if safe != galaxy_id:
        safe += "-" + hashlib.sha1(galaxy_id.encode()).hexdigest()[:8]
    return safe


def _write_atomic(path: Path, body: bytes) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    with open(tmp, "wb") as fh:
        fh.write(body)
    os.replace(tmp, path)


class _Counter:
    def __init__(self):
        self.n = 0
        self._lock = threading.Lock()

    def add(self, k: int) -> None:
        with self._lock:
            self.n += k


def fetch(catalogue: str | Path | pd.DataFrame, out: str | Path, *,
          service: str = "skyserver", where: str | None = None,
          id_column: str | None = None, ra_column: str = "ra", dec_column: str = "dec",
          survey: str = "sdss", size: int = 64, scale: float = 0.396,
          release: str = "DR17", base_url: str | None = None,
          hips: str = "CDS/P/SDSS9/{band}", rate: float | None = 5.0, workers: int = 4,
          timeout: float = 30.0, retries: int = 4, backoff: float = 1.0,
          max_backoff: float = 60.0, max_images: int | None = None,
          retry_rejected: bool = False, split: Sequence[float] | None = (0.8, 0.1, 0.1),
          seed: int = 0, source_name: str = "observed", pack: bool = True,
          progress: ProgressCallback | None = None, session=None
          ) -> tuple[FetchSummary, ImageSet | None]:
    """Download cutouts for a catalogue and pack them into an image set.

    Parameters
    ----------
    catalogue : path or DataFrame
        Galaxies with ``ra``, ``dec`` (degrees), an optional id and any
        properties (see :func:`select_catalogue`).
    out : path
        Output folder: ``cutouts/``, the journal, and the image set.
    service : {"skyserver", "hips2fits"}
        SkyServer colour JPEGs (what Jin et al. 2024 used) or FITS band
        images from a hips2fits-like service.
    where : str, optional
        pandas query on the catalogue, e.g. ``"log_mstar >= 9"``.
    survey : str
        Survey profile of the image set (bands of the FITS service).
    size, scale : int, float
        Cutout side in pixels and arcsec per pixel (64, 0.396: SDSS native).
    release, base_url, hips
        Service details: data release of the SkyServer URL, the endpoint,
        the HiPS identifier pattern.
    rate : float or None
        Requests per second over all threads (None: no limit). Be polite:
        public services throttle or block heavy users.
    workers : int
        Download threads.
    timeout, retries, backoff, max_backoff : float, int, float, float
        Per-request timeout (s); retries after the first attempt on
        timeouts, connection errors, truncated bodies, 429 and 5xx;
        exponential backoff base and cap (s). ``Retry-After`` is honoured.
    max_images : int, optional
        Work on at most this many pending galaxies in this run (the rest
        waits for the next run).
    retry_rejected : bool
        Download again the galaxies rejected by an earlier run.
    split : sequence of 3 floats or None
        Train/val/test fractions for the manifest's ``split`` column,
        assigned per galaxy by :func:`~galrate.imageset.validate.assign_split`.
    seed : int
        Seed of the split.
    pack : bool
        Pack the downloaded files into the image set (``pixels.h5``).
    progress : callable, optional
        ``progress(done, total, "fetch")`` then ``(..., "ingest")``.
    session : requests.Session, optional
        HTTP session (one with a connection pool per worker by default).

    Returns
    -------
    (FetchSummary, ImageSet or None)
    """
    import requests

    t0 = time.perf_counter()
    out = Path(out)
    progress = progress or no_progress
    survey_obj = load_survey(survey)
    if int(workers) < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    if max_images is not None and int(max_images) < 0:
        raise ValueError(f"max_images must be >= 0; got {max_images}")
    svc = make_service(service, base_url=base_url, release=release, size=size,
                       scale=scale, bands=survey_obj.band_names, hips=hips)
    policy = RetryPolicy(retries=int(retries), backoff=float(backoff),
                         max_backoff=float(max_backoff), timeout=float(timeout))
    bucket = TokenBucket(rate)
    cat = select_catalogue(catalogue, where=where, id_column=id_column,
                           ra_column=ra_column, dec_column=dec_column)
    if split is not None:
        cat["split"] = assign_split(cat["galaxy_id"], split, seed)

    cutouts = out / CUTOUTS
    cutouts.mkdir(parents=True, exist_ok=True)
    for stale in cutouts.glob("*.part"):
        stale.unlink()
    summary = FetchSummary(selected=len(cat))
    journal = Journal(out / JOURNAL)

    plans = []
    for gid, ra, dec in zip(cat["galaxy_id"], cat["ra"], cat["dec"]):
        reqs = svc.requests(_file_stem(gid), float(ra), float(dec))
        todo = [r for r in reqs if _needs_work(journal.status(gid, r.key), cutouts,
                                               r, retry_rejected)]
        if todo:
            plans.append((gid, todo))
        else:
            summary.skipped += 1
    if max_images is not None and len(plans) > int(max_images):
        summary.deferred = len(plans) - int(max_images)
        plans = plans[: int(max_images)]

    own_session = session is None
    if own_session:
        session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1,
                                                pool_maxsize=int(workers), max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers["User-Agent"] = "galrate-fetch (research; polite rate limit)"
    attempts = _Counter()

    def one(gid: str, reqs) -> list[tuple]:
        rng = random.Random(gid)
        results = []
        for r in reqs:
            path = cutouts / r.filename
            if path.exists():  # written before an interruption, not yet journaled
                verdict = svc.check(path.read_bytes(), "", r.key)
                if verdict.reason is None:
                    results.append((r, "ok", None, 0, True))
                    continue
            try:
                resp = get_with_retries(session, r.url, r.params, bucket=bucket,
                                        policy=policy, rng=rng)
            except FetchFailed as exc:
                attempts.add(exc.attempts)
                results.append((r, "failed", exc.reason, exc.attempts, False))
                continue
            attempts.add(resp.attempts)
            verdict = svc.check(resp.body, resp.content_type, r.key)
            if verdict.reason is None:
                _write_atomic(path, resp.body)
                results.append((r, "ok", None, resp.attempts, False))
            else:
                status = "failed" if verdict.retry else "rejected"
                results.append((r, status, verdict.reason, resp.attempts, False))
        return results

    failed, rejected = Counter(), Counter()
    progress(0, len(plans), "fetch")
    done = 0
    try:
        with ThreadPoolExecutor(int(workers)) as pool:
            pending = {pool.submit(one, gid, reqs): gid for gid, reqs in plans}
            while pending:
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    gid = pending.pop(fut)
                    worst = None
                    for r, status, reason, n, adopted in fut.result():
                        journal.record(gid, r.key, status,
                                       f"{CUTOUTS}/{r.filename}" if status == "ok" else None,
                                       reason, n)
                        summary.adopted += int(adopted)
                        if status != "ok" and worst is None:
                            worst = (status, f"{r.key}: {reason}" if r.key else reason)
                    if worst is None:
                        summary.fetched += 1
                    else:
                        (failed if worst[0] == "failed" else rejected)[
                            _reason_key(worst[1])] += 1
                        log.warning("%s %s: %s", worst[0], gid, worst[1])
                    done += 1
                    progress(done, len(plans), "fetch")
    finally:
        journal.close()
        if own_session:
            session.close()
    summary.failed, summary.rejected = dict(failed), dict(rejected)
    summary.http_requests = attempts.n
    summary.time_s = time.perf_counter() - t0

    imageset = None
    if pack:
        imageset = _pack(out, cat, svc, journal, survey_obj, size, source_name,
                         progress, summary)
        summary.n_images = len(imageset)
    write_run_record(out, "fetch", {
        **svc.describe(), "where": where, "rate_per_s": rate, "workers": workers,
        "timeout_s": timeout, "retries": retries, "backoff_s": backoff,
        "max_images": max_images, "split": list(split) if split else None,
        "seed": seed, "source_name": source_name,
        "summary": summary.__dict__})
    return summary, imageset


def _reason_key(reason: str) -> str:
    """A reason without its trailing details in parentheses, for counting."""
    return re.sub(r"\s*\(.*\)$", "", reason).strip()


def _needs_work(entry: dict | None, cutouts: Path, r, retry_rejected: bool) -> bool:
    if entry is None:
        return True
    if entry["status"] == "ok":
        return not (cutouts / r.filename).exists()
    if entry["status"] == "rejected":
        return retry_rejected
    return True


def _pack(out: Path, cat: pd.DataFrame, svc, journal: Journal, survey, size: int,
          source_name: str, progress, summary: FetchSummary) -> ImageSet:
    """Ingest the complete galaxies into ``out`` and merge fetch rejects."""
    rows, rejects = [], Rejects()
    keys = svc.keys
    for rec in cat.to_dict("records"):
        gid = rec["galaxy_id"]
        reqs = svc.requests(_file_stem(gid), rec["ra"], rec["dec"])
        states = [journal.status(gid, r.key) for r in reqs]
        if all(s is not None and s["status"] == "ok" for s in states):
            row = {"image_id": gid, **rec}
            if keys == ("",):
                row["path"] = f"{CUTOUTS}/{reqs[0].filename}"
            else:
                row.update({f"path_{r.key}": f"{CUTOUTS}/{r.filename}" for r in reqs})
            rows.append(row)
            continue
        for r, s in zip(reqs, states):
            if s is None:
                reason = "not fetched yet (left for a later run)"
            elif s["status"] == "ok":
                continue
            else:
                reason = f"{s['status']}: {s['reason']}"
            rejects.add(gid, f"{CUTOUTS}/{r.filename}",
                        f"band {r.key}: {reason}" if r.key else reason)
            break
    table = pd.DataFrame(rows)
    if table.empty:
        table = pd.DataFrame(columns=["image_id", "galaxy_id", "path"])
    imageset = ingest(out, out, survey=survey, size=size, source_name=source_name,
                      catalogue=table, id_column="image_id", progress=progress)
    rejects.extend(imageset.rejects())
    rejects.to_frame().to_parquet(out / REJECTS, index=False)
    meta_path = out / METADATA
    meta = json.loads(meta_path.read_text())
    meta["fetch"] = {**svc.describe(), "summary": {k: v for k, v in summary.__dict__.items()
                                                   if k != "n_images"}}
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    imageset.metadata = meta
    return imageset
