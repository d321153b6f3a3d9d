"""Polite HTTP: a shared rate limit and retries with exponential backoff."""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Callable

log = logging.getLogger(__name__)

__all__ = ["TokenBucket", "RetryPolicy", "FetchFailed", "Response", "get_with_retries"]


class TokenBucket:
    """A token bucket shared by threads: at most ``rate`` requests per second.

    Parameters
    ----------
    rate : float or None
        Sustained requests per second; None or 0 means no limit.
    burst : float
        Tokens that may accumulate while idle (requests sent back to back
        after a pause).

    Notes
    -----
    Each :meth:`acquire` reserves the next free slot under a lock and then
    sleeps outside it until that slot comes, so waiting threads are served
    in order and the long-run rate never exceeds ``rate`` whatever the
    number of threads.
    """

    def __init__(self, rate: float | None, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        if rate is not None and rate < 0:
            raise ValueError(f"rate must be >= 0 requests/s (0 or None: no limit); "
                             f"got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1 request; got {burst}")
        self.rate = rate or None
        self.burst = float(burst)
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._last = clock()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a token; returns the seconds waited."""
        if self.rate is None:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= 1.0
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)
        return wait


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to wait before trying a request again.

    Attributes
    ----------
    retries : int
        Further attempts after the first (0: try once).
    backoff : float
        Base delay in seconds; attempt k waits ``backoff * 2**k`` times a
        random factor in [0.5, 1.5) (jitter, so threads do not retry in step).
    max_backoff : float
        Cap on one delay, in seconds.
    max_retry_after : float
        Cap on a server's ``Retry-After``, in seconds (honoured up to this).
    timeout : float
        Seconds to wait for the connection and for each read.
    """

    retries: int = 4
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 600.0
    timeout: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return min(self.max_backoff, self.backoff * 2 ** attempt * (0.5 + rng.random()))


class FetchFailed(Exception):
    """A request that did not give a body: ``reason`` and ``attempts`` made."""

    def __init__(self, reason: str, attempts: int):
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


@dataclass
class Response:
    """A complete response body with its content type and the attempts it took."""

    body: bytes
    content_type: str
    attempts: int


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def get_with_retries(session, url: str, params: dict, *, bucket: TokenBucket,
                     policy: RetryPolicy, rng: random.Random | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> Response:
    """GET ``url`` until a complete 200 response arrives or the retries run out.

    Timeouts, connection errors, truncated bodies (fewer bytes than
    ``Content-Length``), HTTP 429 and 5xx are retried; any other status is
    final. Every attempt, retries included, takes a token from ``bucket``.

    Raises
    ------
    FetchFailed
        With the last reason (``"HTTP 503"``, ``"timeout after 30 s"``, ...).
    """
    import requests

    rng = rng or random.Random()
    reason = "not attempted"
    for attempt in range(policy.retries + 1):
        bucket.acquire()
        retry_after = None
        try:
            r = session.get(url, params=params, timeout=policy.timeout)
        except requests.Timeout:
            reason = f"timeout after {policy.timeout:g} s"
        except requests.exceptions.ChunkedEncodingError as exc:
            reason = f"truncated body ({_short(exc)})"
        except requests.ConnectionError as exc:
            reason = f"connection error ({_short(exc)})"
        else:
            body = r.content
            if r.status_code == 200:
                expected = r.headers.get("Content-Length")
                if expected is not None and expected.isdigit() and int(expected) != len(body):
                    reason = f"truncated body ({len(body)} of {expected} bytes)"
                else:
                    return Response(body, r.headers.get("Content-Type", ""), attempt + 1)
            elif r.status_code == 429 or 500 <= r.status_code < 600:
                reason = f"HTTP {r.status_code}"
                retry_after = _retry_after(r.headers.get("Retry-After"))
            else:
                raise FetchFailed(f"HTTP {r.status_code}", attempt + 1)
        if attempt == policy.retries:
            break
        delay = policy.delay(attempt, retry_after, rng)
        log.debug("%s: %s; retry %d in %.2f s", url, reason, attempt + 1, delay)
        sleep(delay)
    raise FetchFailed(reason, policy.retries + 1)


def _short(exc: Exception, n: int = 120) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."
