"""Shared fixtures.

Tiny models run fastest on one torch thread; `make test` runs one pytest-xdist worker per core (-n auto).
"""

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


def _browser_will_run() -> bool:
    """Whether tests/test_notebooks_browser.py runs rather than skips (its own rule: chromium, playwright,
    jupyterlab)."""
    if os.environ.get("COOKLAB_REQUIRE_BROWSER") == "1":
        return True  # it runs or fails, never skips
    import importlib.util
    import shutil

    chromium = os.environ.get("COOKLAB_CHROMIUM") or shutil.which("chromium")
    return bool(chromium) and all(importlib.util.find_spec(m) is not None for m in ("playwright", "jupyterlab"))


@pytest.hookimpl(trylast=True)  # after -m / -k have deselected what they deselect
def pytest_collection_modifyitems(config, items):
    """Order the longest tests first; execute each notebook once: where the browser test runs a notebook, its nbclient
    run is deselected.

    Both run every cell of the notebook and fail on an error output; the browser test also renders the widgets
    and moves a control. Without a browser (a laptop without chromium), nbclient stays the notebooks' check.
    """

    # the longest tests first (the browser test, notebook 08 the longest of all), so that no worker ends the run
    # with one
    def order(item) -> int:
        if item.originalname != "test_notebook_in_jupyterlab":
            return 2
        return 0 if "08_" in item.name else 1

    items.sort(key=order)  # stable: the rest keeps pytest's order
    in_browser = {
        item.callspec.id
        for item in items
        if item.originalname == "test_notebook_in_jupyterlab" and hasattr(item, "callspec")
    }
    if not in_browser or not _browser_will_run():
        return
    dropped = [item for item in items if item.originalname == "test_notebook_runs" and item.callspec.id in in_browser]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]
