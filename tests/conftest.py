import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Test models are small: one thread avoids OpenMP spin-waits when the CPUs are shared (100x slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
