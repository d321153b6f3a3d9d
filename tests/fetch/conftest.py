"""A loopback HTTP server that mimics the SkyServer and hips2fits cutout services.

Each object is keyed by its ``ra`` parameter (plus ``/band`` for hips2fits).
``server.script[key]`` is a list of actions consumed one per request (then
"ok"): "ok", "500", "429" (Retry-After 0.05 s), "404", "timeout" (answers
after the client has given up), "truncated" (Content-Length larger than the
body), "html" (an error page served as image/jpeg), "blank" (an all-black
image), "nan" (FITS with NaN pixels). ``server.counts[key]`` counts requests.
"""

import io
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from galrate.survey import SDSS

CLIENT_TIMEOUT = 0.3
SLOW_ANSWER = 0.8


def object_flux(key: str, size: int = 64) -> np.ndarray:
    """Deterministic (3, size, size) nanomaggy images of the object called ``key``."""
    seed = sum(key.encode()) + 7 * len(key)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    r0 = 2.0 + (seed % 5)
    profile = np.exp(-np.hypot(x, y) / r0)
    amps = np.array([0.5, 1.0, 1.4])[:, None, None] * (1 + (seed % 3) / 3)
    return (amps * profile + rng.normal(0, 0.02, (3, size, size))).astype(np.float32)


def jpeg_of(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def fits_of(plane: np.ndarray) -> bytes:
    buf = io.BytesIO()
    fits.PrimaryHDU(plane.astype(np.float32)).writeto(buf)
    return buf.getvalue()


class CutoutServer:
    def __init__(self):
        self.script: dict[str, list[str]] = {}
        self.counts: Counter = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def key(self, query: dict) -> str:
        band = query.get("hips", [""])[0].rsplit("/", 1)[-1]
        ra = query["ra"][0]
        return f"{ra}/{band}" if band else ra

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        parsed = urlparse(h.path)
        query = parse_qs(parsed.query)
        key = self.key(query)
        with self.lock:
            self.counts[key] += 1
            actions = self.script.get(key, [])
            action = actions.pop(0) if actions else "ok"
        size = int(query["width"][0])
        is_fits = parsed.path.endswith("hips2fits")
        ra = query["ra"][0]
        flux = object_flux(ra, size)
        if is_fits:
            band = key.split("/")[1]
            plane = flux[SDSS.band_names.index(band)]
            if action == "nan":
                plane = plane.copy()
                plane[:5] = np.nan
            body, ctype = fits_of(plane), "application/fits"
        else:
            rgb = np.zeros((size, size, 3), np.uint8) if action == "blank" \
                else SDSS.to_rgb(flux)
            body, ctype = jpeg_of(rgb), "image/jpeg"
        try:
            if action in ("500", "404"):
                h.send_error(int(action))
                return
            if action == "429":
                h.send_response(429)
                h.send_header("Retry-After", "0.05")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            if action == "timeout":
                time.sleep(SLOW_ANSWER)
            if action == "html":
                body = (b"<!DOCTYPE html><html><body><h1>Service unavailable</h1>"
                        b"</body></html>")
            h.send_response(200)
            h.send_header("Content-Type", ctype)
            length = len(body) + 500 if action == "truncated" else len(body)
            h.send_header("Content-Length", str(length))
            if action == "truncated":
                h.send_header("Connection", "close")
            h.end_headers()
            h.wfile.write(body[: len(body) // 2] if action == "truncated" else body)
            if action == "truncated":
                h.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            pass

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = CutoutServer()
    yield srv
    srv.close()
