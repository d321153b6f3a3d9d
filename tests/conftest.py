"""Shared test set-up: seeds, one thread per process, tiny data."""

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

try:  # one thread everywhere, session fixtures included: bit-exact comparisons
    import torch

    torch.set_num_threads(1)
except ImportError:
    pass


@pytest.fixture(autouse=True)
def _seed_everything():
    import random

    random.seed(1234)
    np.random.seed(1234)
    try:
        import torch

        torch.manual_seed(1234)
        torch.set_num_threads(1)
    except ImportError:
        pass
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(20240503)
