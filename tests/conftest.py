"""Shared fixtures. Tiny models run fastest on one torch thread; `make test` runs one pytest-xdist worker per core (-n auto)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture
def tiny_sd():
    from cooklab.models import tiny_sd

    pipe = tiny_sd(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def rd(tiny_sd):
    import cooklab

    return cooklab.RecipeDiffusion.from_pipe(tiny_sd)


@pytest.fixture
def tiny_flux():
    from cooklab.models import tiny_flux

    pipe = tiny_flux(seed=0)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture
def ca(tiny_flux):
    import cooklab

    return cooklab.CookAnything.from_pipe(tiny_flux)


@pytest.fixture
def server():
    """The scripted OpenAI-compatible server of tests/openai_stub.py (the Cooking Agent's and the judge's tests)."""
    from openai_stub import FakeOpenAI

    fake = FakeOpenAI()
    yield fake
    fake.close()
