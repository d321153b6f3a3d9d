"""Array-store throughput: write, sequential read and random-batch read.

Writes N synthetic 64x64x3 uint8 cutouts to ``pixels.h5`` through
:class:`~galrate.imageset.core.ArrayStoreWriter` in batches of 256, then reads
them back through :class:`~galrate.imageset.core.ImageSet` in manifest order
(``iter_batches``, as a training epoch does) and as random batches of 256
(as a shuffled loader without a sequential sampler would). The numbers are
extrapolated to the paper's 600,000 training cutouts.

The store was just written, so reads are served from the operating system's
page cache when the file fits in memory: the read rates are an upper bound
for a 7.4 GB store on a machine with less free memory than that.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from galrate.imageset.core import STORE, ArrayStoreWriter, ImageSet

TARGET = 600_000
SIZE = 64
BATCH = 256


def run(workdir: Path, quick: bool) -> dict:
    n = 2_000 if quick else 20_000
    rng = np.random.default_rng(0)
    # a pool of distinct images, reused: generation must not dominate the timing
    pool = rng.integers(0, 256, (BATCH, SIZE, SIZE, 3), dtype=np.uint8)
    ids = [f"img{k:07d}" for k in range(n)]
    path = workdir / STORE

    t0 = time.perf_counter()
    with ArrayStoreWriter(path, SIZE) as store:
        for start in range(0, n, BATCH):
            m = min(BATCH, n - start)
            store.append(ids[start:start + m], pool[:m])
    write_s = time.perf_counter() - t0

    manifest = pd.DataFrame({"image_id": ids, "path": STORE, "index": np.arange(n),
                             "source": "observed", "galaxy_id": ids, "projection": 0})
    imageset = ImageSet(root=workdir, manifest=manifest, metadata={"size": SIZE})
    t0 = time.perf_counter()
    total = 0
    for _, pixels in imageset.iter_batches(BATCH):
        total += len(pixels)
    seq_s = time.perf_counter() - t0

    n_random = max(1, n // BATCH // 2)
    t0 = time.perf_counter()
    for _ in range(n_random):
        imageset.rgb(rng.choice(n, BATCH, replace=False))
    rand_s = time.perf_counter() - t0
    imageset.close()

    bytes_per_image = SIZE * SIZE * 3
    write_rate = n / write_s
    seq_rate = total / seq_s
    rand_rate = n_random * BATCH / rand_s
    return {
        "n_images": n, "batch": BATCH, "chunk_rows": 64,
        "file_mib": round(path.stat().st_size / 2**20, 1),
        "write_images_per_s": round(write_rate),
        "sequential_read_images_per_s": round(seq_rate),
        "random_batch_read_images_per_s": round(rand_rate),
        "random_over_sequential": round(rand_rate / seq_rate, 3),
        "extrapolated_600k": {
            "store_gb": round(TARGET * bytes_per_image / 1e9, 2),
            "write_min": round(TARGET / write_rate / 60, 1),
            "sequential_epoch_min": round(TARGET / seq_rate / 60, 1),
            "random_batch_epoch_min": round(TARGET / rand_rate / 60, 1),
            "note": "linear extrapolation of the rates above; reads of a freshly "
                    "written file come from the page cache, so a 7.4 GB store that "
                    "does not fit in free memory reads at disk speed instead",
        },
    }
