"""Test configuration for tests/ and examples/: deterministic hypothesis profiles, one torch thread."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Deterministic by default: CI must never flake. `make test-all` selects "thorough".
settings.register_profile(
    "default",
    max_examples=8,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=100,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# One intra-op thread: the suite's tensors are small, and two threads on two shared cores were
# 10-15x slower per call under load (measured here); results do not depend on it.
torch.set_num_threads(1)


# -- devices ----------------------------------------------------------------------------------------
_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=_CUDA)])
def device(request) -> torch.device:
    """The device a sampler or likelihood test runs on: the CPU, and CUDA where there is one."""
    return torch.device(request.param)
