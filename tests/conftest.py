"""Fixtures shared by several test modules."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch code on one thread.

    Bit-identical weights across runs need the same thread count, and on a shared 2-core machine
    one thread avoids OpenMP oversubscription stalls.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
