"""Every notebook in a real browser: JupyterLab on 127.0.0.1, headless Chromium driven by playwright.

What nbclient (tests/test_notebooks.py) cannot see: the widgets rendered by JupyterLab's widget manager, and
what happens when a control is moved (a comm message from the browser, handled by the kernel the way
JupyterLab asks for it, e.g. on a subshell). For each notebook: Run All, no error output, every code cell
ran, every widget rendered live (not its text fallback); then for each explorer (an output holding a
slider, dropdown or toggle buttons):

* its mechanism toggle (``cooklab.viz.widgets.mechanism_toggle``, CSS class ``cooklab-mechanism``) is flipped
  from on to off, and what is drawn must change by at least the notebook's stated minimum ``MIN_CHANGE``: the
  mean absolute difference of the figures' pixels (0-1 scale, the largest over the explorer's figures), so a
  toggle that only rewrites a title (~0.001-0.003) fails;
* the toggle is flipped back on, then one other control is moved (when there is one) and its figures must
  change;
* no figure may go blank (a PNG under ``MIN_PNG_BYTES`` or under a fifth of its size before) or disappear,
  and nothing may land in JupyterLab's Log Console (where output lost by a widget callback goes).

Screenshots (``explorer<k>_on.png``, ``explorer<k>_off.png``, ``explorer<k>_after.png``) and the measured
changes (``changes.json``) are saved under ``outputs/browser/<notebook>/``; ``cooklab gallery`` shows them.

The browser is Debian's ``chromium`` (``apt-get install chromium``; ``COOKLAB_CHROMIUM`` names another
binary), never a downloaded build: no ``playwright install``. Without it the tests skip, unless
``COOKLAB_REQUIRE_BROWSER=1`` (set by ``.ci/run``), which makes them fail. ``make test-browser`` runs them alone.
The notebooks run from the copy that ``cooklab course DIR --no-lab`` makes in a temporary folder, served by
the command ``cooklab course`` starts (``cooklab.course.lab_command``): the course a learner gets, which finds
its models and recipes through the package. JupyterLab never writes into the committed files, and a parallel
nbclient run of the same notebook shares no outputs.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import PIL.Image
import pytest

from cooklab.cli import main
from cooklab.course import lab_command

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]
SHOTS = REPO / "outputs" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"]
RUN_TIMEOUT_S = 900  # Run All of one notebook (08 trains a LoRA: ~3 min on a busy 2-core machine)
MOVE_TIMEOUT_S = 240  # one control moved until its figures are redrawn (05 generates a new lambda)
MIN_PNG_BYTES = 4000  # a blank figure is ~2 KB; the explorers' figures are 10-100 KB
CONTROLS = ".widget-slider, .widget-dropdown, .widget-toggle-buttons"
MECHANISM = ".cooklab-mechanism"  # cooklab.viz.widgets.panels.MECHANISM_CLASS
# {notebook: the stated minimum change per explorer, in order}: mean |pixel difference| (0-1) of the explorer's
# figures between its mechanism on and off (the largest over its figures); the values measured are in
# docs/gallery.md
MIN_CHANGE: dict[str, tuple[float, ...]] = {
    "00_quickstart": (0.06,),  # measured 0.123: region_aware_kv -> independent (the strip; frame 2 alone 0.046)
    "01_kv_sharing": (0.09,),  # measured 0.189: K/V sharing on -> off (the s - 0.5 map gives way to "no share")
    "02_region_aware_noise": (0.12,),  # measured 0.239 (noise maps; the pictures alone 0.047)
    "03_regional_attention_mask": (0.18, 0.08),  # measured 0.365 (mask), 0.159 (SRC canvases and attention)
    "04_flexible_rope": (0.03,),  # measured 0.060 (ids beside the canvases)
    "05_cross_step_consistency": (0.06,),
    "06_cooking_agent_and_masks": (0.16, 0.04),  # measured 0.326 (mask on/off), 0.089 (with/without masks)
    "07_evaluation": (0.07,),  # measured 0.140 (full row / ablation row)
    "08_lora_training": (0.013,),
    "09_word_maps": (0.03,),
}
# ipywidgets' text fallback (no widget manager), or a view that failed
FALLBACK = ("Error displaying widget", "Loading widget", "VBox(children", "HBox(children", "Output(")


def _chromium() -> str | None:
    return os.environ.get("COOKLAB_CHROMIUM") or shutil.which("chromium")


def _missing(why: str):
    if os.environ.get("COOKLAB_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why} (COOKLAB_REQUIRE_BROWSER=1: .ci/run installs it with apt)")
    pytest.skip(why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on 127.0.0.1 (free port, a token) serving a ``cooklab course`` copy; stopped by its PID."""
    if _chromium() is None:
        _missing("no chromium: apt-get install chromium")
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        _missing("jupyterlab is not installed (it is in requirements/lock.txt)")
    root = tmp_path_factory.mktemp("lab") / "cooklab-course"
    assert main(["course", str(root), "--no-lab"]) == 0  # the notebooks and their README, nothing of the repository
    state = tmp_path_factory.mktemp("lab-state")
    settings = state / "settings"
    # no news popup, no autosave, every cell in the DOM (no windowing); JupyterLab's other defaults are kept,
    # commsOverSubshells among them: that is what users get
    _write_json(
        settings / "@jupyterlab/apputils-extension/notification.jupyterlab-settings",
        {"fetchNews": "false", "checkForUpdates": False},
    )
    _write_json(settings / "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings", {"autosave": False})
    _write_json(settings / "@jupyterlab/notebook-extension/tracker.jupyterlab-settings", {"windowingMode": "none"})
    _write_json(
        state / "config" / "labconfig" / "page_config.json",
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}},
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        "JUPYTER_CONFIG_DIR": str(state / "config"),
    }
    env.pop("MPLBACKEND", None)  # JupyterLab's kernels use the inline backend, as a user's do
    port, token = _free_port(), base64.b16encode(os.urandom(16)).decode().lower()
    log = open(state / "jupyterlab.log", "w")
    proc = subprocess.Popen(
        [
            *lab_command(root),  # what `cooklab course` runs, served at root
            "--no-browser",
            "--allow-root",
            "--ip=127.0.0.1",
            f"--port={port}",
            "--port-retries=0",
            f"--IdentityProvider.token={token}",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start:\n{(state / 'jupyterlab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield dict(base=base, token=token, root=root, log=state / "jupyterlab.log")
    finally:
        proc.terminate()  # by its PID; the server shuts its kernels down
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(lab):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (it is in requirements/lock.txt)")
    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=_chromium(), headless=True, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        pw.stop()


def _api(lab, method: str, path: str):
    request = urllib.request.Request(
        f"{lab['base']}{path}", method=method, headers={"Authorization": f"token {lab['token']}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


def _status(page) -> str:
    return page.locator("#jp-main-statusbar").inner_text()


def _wait(condition, timeout: float, what: str, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def _idle(page) -> bool:
    return "| Idle" in _status(page)


def _running(page) -> bool:
    return page.evaluate(
        "() => [...document.querySelectorAll('.jp-Notebook .jp-InputArea-prompt')]"
        ".some(e => e.textContent.includes('*'))"
    )


def _quiet(page, polls: int = 3) -> bool:
    """The kernel idle and no cell queued or running, ``polls`` times in a row, a second apart."""
    for _ in range(polls):
        if _running(page) or not _idle(page):
            return False
        time.sleep(1)
    return True


def _fit_viewport(page) -> None:
    """JupyterLab never scrolls the page: make the viewport as tall as the notebook, for screenshots and key
    presses."""
    bottom = page.evaluate(
        "() => { const c = document.querySelectorAll('.jp-Notebook .jp-Cell');"
        " const n = document.querySelector('.jp-Notebook');"
        " return c.length ? c[c.length - 1].getBoundingClientRect().bottom + n.scrollTop : 900; }"
    )
    page.set_viewport_size({"width": 1400, "height": max(900, min(int(bottom) + 80, 30000))})


def _log_console(page) -> str | None:
    item = page.locator(".jp-LogConsoleStatusItem")
    return item.first.inner_text() if item.count() and item.first.is_visible() else None


def _images(output) -> list[str]:
    return output.evaluate("e => [...e.querySelectorAll('img')].map(i => i.getAttribute('src') || '')")


def _png_bytes(src: str) -> int:
    return len(src.split(",", 1)[-1]) * 3 // 4


def _pixels(src: str) -> np.ndarray:
    """An ``<img>``'s data-URI PNG as an ``[H, W, 3]`` float array in [0, 1]."""
    data = base64.b64decode(src.split(",", 1)[-1])
    with PIL.Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255


def _figure_changes(before: list[str], after: list[str]) -> list[float]:
    """The mean |pixel difference| (0-1) between an explorer's figures before and after, figure by figure (a figure
    whose size changed is compared after resizing it to its old size)."""
    changes = []
    for b, a in zip(before, after):
        old, new = _pixels(b), _pixels(a)
        if new.shape != old.shape:
            resized = PIL.Image.fromarray((new * 255).astype(np.uint8)).resize((old.shape[1], old.shape[0]))
            new = np.asarray(resized, dtype=np.float32) / 255
        changes.append(float(np.abs(new - old).mean()))
    return changes


def _pixel_change(before: list[str], after: list[str]) -> float:
    """The largest of ``_figure_changes``: what the stated minimum bounds."""
    return max(_figure_changes(before, after), default=0.0)


def _redrawn(page, output, before: list[str], what: str) -> list[str]:
    """The explorer's images once they differ from ``before`` and stayed the same for 3 s with the kernel idle
    (as many as before, or unchanged for 20 s: a figure may arrive a little after the first)."""
    history = [before]

    def done() -> bool:
        now = _images(output)
        history.append(now)
        if now == before:
            return False
        stable = len(history) >= 4 and history[-1] == history[-2] == history[-3] == history[-4]
        return stable and _idle(page) and (len(now) >= len(before) or history[-20:].count(now) == 20)

    _wait(done, MOVE_TIMEOUT_S, what, poll=1)
    return history[-1]


def _flip_mechanism(output) -> str:
    """Switch the explorer's mechanism toggle to its other button (on to off, or back). Returns what was clicked."""
    toggles = output.locator(MECHANISM).all()
    assert len(toggles) == 1, f"an explorer needs exactly one mechanism toggle ({MECHANISM}), found {len(toggles)}"
    other = toggles[0].locator("button:not(.mod-active)")
    assert other.count() == 1, "the mechanism toggle has no second button"
    text = other.first.inner_text()
    other.first.click()
    return f"mechanism toggle -> {text}"


def _move_one_control(output) -> str | None:
    """Move the explorer's first control, other than its mechanism toggle, that can move: a slider one step
    (ArrowRight, else ArrowLeft), else a dropdown to another option, else another toggle button. Returns what was
    moved (None: the mechanism toggle is its only control)."""
    for i, slider in enumerate(output.locator(".widget-slider").all()):
        readout = slider.locator(".widget-readout")
        before = readout.inner_text() if readout.count() else None
        handle = slider.locator(".noUi-handle").first
        for key in ("ArrowRight", "ArrowLeft"):
            handle.focus()
            handle.press(key)
            time.sleep(0.5)
            after = readout.inner_text() if readout.count() else None
            if after != before:
                label = slider.locator(".widget-label").first.inner_text()
                return f"slider {label or i} {before} -> {after} ({key})"
    for dropdown in output.locator(".widget-dropdown").all():
        select = dropdown.locator("select")
        values = select.evaluate("s => [...s.options].map(o => o.value)")
        current = select.input_value()
        other = next((v for v in values if v != current), None)
        if other is not None:
            select.select_option(other)
            return f"dropdown {dropdown.locator('.widget-label').first.inner_text()} -> option {other}"
    for buttons in output.locator(f".widget-toggle-buttons:not({MECHANISM})").all():
        unselected = buttons.locator("button:not(.mod-active)")
        if unselected.count():
            text = unselected.first.inner_text()
            unselected.first.click()
            return f"toggle button {text}"
    return None


def _check_redraw(page, name: str, k: int, moved: str, before: list[str], after: list[str]) -> None:
    """As many figures as before, none blank, nothing in the Log Console."""
    sizes = f"PNG bytes before {[_png_bytes(s) for s in before]}, after {[_png_bytes(s) for s in after]}"
    print(f"{name}: explorer {k}: moved {moved}; {sizes}")
    assert len(after) == len(before), f"{name}: explorer {k} had {len(before)} figures, {len(after)} after {moved}"
    blank = [
        i for i, (a, b) in enumerate(zip(after, before)) if _png_bytes(a) < max(MIN_PNG_BYTES, _png_bytes(b) // 5)
    ]
    assert not blank, f"{name}: explorer {k}: figure(s) {blank} went blank after {moved} ({sizes})"
    log = _log_console(page)
    assert log is None, f"{name}: explorer {k}: output went to the Log Console ({log!r}) after {moved} ({sizes})"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_in_jupyterlab(path, lab, browser):
    name = path.name
    shots = SHOTS / path.stem
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    print(f"\n{name}: screenshots in {shots}")
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    start = time.perf_counter()
    try:
        page.goto(f"{lab['base']}/lab/workspaces/{path.stem}/tree/{name}?reset&token={lab['token']}")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        _wait(lambda: _idle(page), 120, f"the kernel (status bar: {_status(page)!r})")
        _wait(
            lambda: page.evaluate(
                "() => !!(window._JUPYTERLAB && window._JUPYTERLAB['@jupyter-widgets/jupyterlab-manager'])"
            ),
            60,
            "the widget manager (@jupyter-widgets/jupyterlab-manager)",
        )
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()
        _wait(lambda: _running(page), 30, "Run All to start")
        _wait(lambda: _quiet(page), RUN_TIMEOUT_S, "Run All to finish", poll=1)
        ran = time.perf_counter() - start
        _fit_viewport(page)
        page.screenshot(path=str(shots / "run_all.png"))

        prompts = page.evaluate(
            "() => [...document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(e => e.textContent.trim())"
        )
        not_run = [i for i, p in enumerate(prompts) if not any(ch.isdigit() for ch in p)]
        stderr = page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        ).all_inner_texts()
        errors = [t for t in stderr if "Traceback" in t or "-" * 70 in t]
        assert not errors, f"{name}: error output:\n" + "\n".join(t[-2000:] for t in errors)
        assert not not_run, (
            f"{name}: code cells {not_run} of {len(prompts)} did not run (prompts {[prompts[i] for i in not_run]})"
        )

        texts = page.locator(".jp-OutputArea-output").all_inner_texts()
        fallback = [t[:200] for t in texts if any(f in t for f in FALLBACK)]
        assert not fallback, f"{name}: widgets not rendered live (text fallback): {fallback}"
        explorers = (
            page.locator(".jp-Cell-outputArea > .jp-OutputArea-child > .jp-OutputArea-output")
            .filter(has=page.locator(CONTROLS))
            .all()
        )
        assert explorers, f"{name}: no explorer (slider, dropdown or toggle buttons) was rendered"
        assert _log_console(page) is None, (
            f"{name}: output went to the Log Console during Run All: {_log_console(page)}"
        )

        minimums = MIN_CHANGE.get(path.stem, ())
        assert len(minimums) == len(explorers), (
            f"{name}: {len(explorers)} explorer(s) but {len(minimums)} stated minimum(s) in MIN_CHANGE"
        )
        changes = []
        for k, output in enumerate(explorers):
            before = _images(output)
            assert before, f"{name}: explorer {k} shows no figure"
            assert all(_png_bytes(s) >= MIN_PNG_BYTES for s in before), (
                f"{name}: explorer {k} starts with a blank figure: {[_png_bytes(s) for s in before]} bytes"
            )
            output.screenshot(path=str(shots / f"explorer{k}_on.png"))
            flipped = _flip_mechanism(output)
            off = _redrawn(page, output, before, f"explorer {k}'s figures to change after the {flipped}")
            _fit_viewport(page)
            output.screenshot(path=str(shots / f"explorer{k}_off.png"))
            change = _pixel_change(before, off)
            per_figure = [round(c, 4) for c in _figure_changes(before, off)]
            resized = [i for i, (b, a) in enumerate(zip(before, off)) if _pixels(b).shape != _pixels(a).shape]
            changes.append(
                dict(
                    explorer=k,
                    toggle=flipped,
                    change=round(change, 4),
                    per_figure=per_figure,
                    resized=resized,
                    minimum=minimums[k],
                )
            )
            print(
                f"{name}: explorer {k}: {flipped}: mean |pixel change| {change:.4f}, per figure {per_figure}"
                f" (resized: {resized}; stated minimum {minimums[k]})"
            )
            _check_redraw(page, name, k, flipped, before, off)
            assert change >= minimums[k], (
                f"{name}: explorer {k}: the {flipped} changed the figures by {change:.4f} (mean |pixel difference|),"
                f" less than the stated minimum {minimums[k]}"
            )
            back = _flip_mechanism(output)  # on again: the other control is moved with the mechanism on
            on = _redrawn(page, output, off, f"explorer {k}'s figures to change after the {back}")
            _check_redraw(page, name, k, back, off, on)
            moved = _move_one_control(output)
            if moved is not None:
                after = _redrawn(page, output, on, f"explorer {k}'s figures to change after moving {moved}")
                _fit_viewport(page)
                output.screenshot(path=str(shots / f"explorer{k}_after.png"))
                _check_redraw(page, name, k, moved, on, after)
        _write_json(shots / "changes.json", changes)
        page.screenshot(path=str(shots / "after_moves.png"))
        print(f"{name}: Run All {ran:.0f} s, total {time.perf_counter() - start:.0f} s, {len(explorers)} explorer(s)")
    except Exception:
        try:
            _fit_viewport(page)
            page.screenshot(path=str(shots / "failure.png"))
        except Exception:  # the screenshot is a help, not the failure
            pass
        raise
    finally:
        page.close()
        for session in _api(lab, "GET", "/api/sessions") or []:
            _api(lab, "DELETE", f"/api/sessions/{session['id']}")


def _figure_src(picture: np.ndarray, title: str) -> str:
    """A matplotlib figure of ``picture`` under ``title`` as the data URI an explorer's ``<img>`` holds."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2.5), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(picture)
    ax.set_title(title)
    ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_the_pixel_change_tells_a_new_title_from_new_pictures():
    """The measure behind MIN_CHANGE: a title rewritten alone stays under the smallest minimum (0.01), pictures that
    change pass it; the largest figure's change counts."""
    pot = np.zeros((32, 64, 3))
    pot[8:24, 8:56] = (0.2, 0.3, 0.9)  # a blue pot
    teal = pot.copy()
    teal[8:24, 8:56] = (0.1, 0.7, 0.6)  # the same pot turned teal
    same = _figure_src(pot, "K/V sharing on: oracle consistency 3/3")
    retitled = _figure_src(pot, "K/V sharing off: oracle consistency 1/3")
    recoloured = _figure_src(teal, "K/V sharing off: oracle consistency 1/3")
    assert _pixel_change([same], [same]) == 0
    assert 0 < _pixel_change([same], [retitled]) < 0.01
    assert _pixel_change([same], [recoloured]) > 0.05
    assert _pixel_change([same, same], [same, recoloured]) == _pixel_change([same], [recoloured])
