"""Fixtures shared by every test."""

import pytest


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(False)
