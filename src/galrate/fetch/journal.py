"""The fetch journal: an append-only JSON-lines record of every finished request.

One line per request outcome::

    {"id": "587722981741363294", "key": "g", "status": "ok",
     "file": "cutouts/587722981741363294_g.fits", "reason": null,
     "attempts": 1, "time": "2024-05-03T12:00:00Z"}

``status`` is ``"ok"`` (file written), ``"failed"`` (no usable answer this
time: retried by the next run) or ``"rejected"`` (the service answered with
an unusable image: blank, wrong size, undecodable; kept as a reject). The
last line of a request wins. A line cut short by a kill is ignored.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["Journal"]


class Journal:
    """Read the state of earlier runs and append new outcomes.

    Parameters
    ----------
    path : path
        The ``.jsonl`` file (created on first write).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.state: dict[tuple[str, str], dict] = {}
        if self.path.exists():
            self._load()
        self._fh = None

    def _load(self) -> None:
        bad = 0
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    self.state[(str(entry["id"]), str(entry["key"]))] = entry
                except (json.JSONDecodeError, KeyError, TypeError):
                    bad += 1
        if bad:
            log.info("%s: %d incomplete line(s) ignored (an interrupted run)", self.path,
                     bad)

    def status(self, object_id: str, key: str) -> dict | None:
        """The last recorded outcome of a request, or None."""
        return self.state.get((object_id, key))

    def record(self, object_id: str, key: str, status: str, file: str | None,
               reason: str | None, attempts: int) -> None:
        """Append one outcome and flush it to the operating system."""
        entry = {"id": object_id, "key": key, "status": status, "file": file,
                 "reason": reason, "attempts": attempts,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
            if self._fh.tell() > 0:
                self._fh.write("\n")  # end a line a kill may have cut short
        self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()
        self.state[(object_id, key)] = entry

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
