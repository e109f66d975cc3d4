"""Tests for cooklab.viz: figures from synthetic tensors and from a real tiny trace; widgets build and redraw."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import subprocess  # noqa: E402
import sys  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import PIL.Image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import cooklab  # noqa: E402
from cooklab import viz  # noqa: E402
from cooklab.grounding import box_to_mask  # noqa: E402
from cooklab.recipe_diffusion import NoiseLevels, region_aware_noise  # noqa: E402
from cooklab.viz import widgets  # noqa: E402
from cooklab.viz.widgets import panels  # noqa: E402

STEPS = 12  # 0.9 and 0.999 land on different timesteps from 11 steps on


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def pipe():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from threads and a busy CPU makes them crawl
    yield cooklab.RecipeDiffusion.from_pipe(cooklab.models.tiny_sd())
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def traced(pipe):
    """A 3-frame region_aware_kv generation with everything captured; frame 2 has no mask (uniform noise)."""
    recipe = cooklab.Recipe.from_steps(["Pour oats into a jar.", "Add milk to the jar.", "Top the oats with berries."])
    with cooklab.trace(pipe) as tr:
        out = pipe(
            recipe,
            variant="region_aware_kv",
            seed=0,
            num_inference_steps=STEPS,
            height=64,
            width=64,
            masks=[None, (8, 8, 40, 48), None],
            progress=False,
        )
    return tr, out


def n_axes(fig: Figure) -> int:
    assert isinstance(fig, Figure)
    return len(fig.axes)


# ---- synthetic tensors ---------------------------------------------------------------------


def test_storyboard_accepts_pil_arrays_and_tensors():
    images = [PIL.Image.new("RGB", (32, 32), "red"), np.zeros((32, 32, 3), np.uint8), torch.rand(3, 32, 32)]
    fig = viz.storyboard(images, ["one", "two " * 20, "three"], title="t", notes=["a", None, "c"])
    assert n_axes(fig) == 3
    assert fig.axes[1].get_title() == "step 2"
    assert n_axes(viz.storyboard(images, ["a", "b", "c"], ncols=2)) == 3


def test_storyboard_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="one text per image"):
        viz.storyboard([np.zeros((8, 8, 3))], ["a", "b"])
    with pytest.raises(ValueError, match="notes"):
        viz.storyboard([np.zeros((8, 8, 3))], ["a"], notes=["x", "y"])


def _figure_texts(fig: Figure) -> list[str]:
    """Every text drawn on a figure: figure texts (the title among them), axes titles and annotations."""
    texts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts += [ax.get_title()] + [t.get_text() for t in ax.texts]
    return [t for t in texts if t]


def test_comparison_figure_draws_one_row_per_run_and_the_texts_once():
    texts = ["Place a blue pot.", "Add broccoli.", "Fry the broccoli."]
    rows = [
        ("independent", [np.full((16, 16, 3), 0.1 * k, np.float32) for k in range(3)], "kept in 0 of 2"),
        ("region-aware", [PIL.Image.new("RGB", (16, 16), "blue")] * 3, "kept in 2 of 2"),
        ("no SRC", torch.rand(3, 3, 16, 16), None),  # [N, 3, H, W]: one [3, H, W] image per step
    ]
    fig = viz.comparison_figure(rows, texts, group_titles={0: "Recipe Diffusion", 2: "CookAnything"}, title="Toy pot")
    assert isinstance(fig, Figure) and n_axes(fig) == 3 * 3  # one axes per frame of every row
    drawn = _figure_texts(fig)
    for text in [
        "independent",
        "region-aware",
        "no SRC",
        "kept in 0 of 2",
        "kept in 2 of 2",
        "Recipe Diffusion",
        "CookAnything",
        "Toy pot",
    ]:
        assert drawn.count(text) == 1, text
    headers = [t for t in drawn if t.startswith("step ")]
    assert headers == [
        f"step {k + 1}\n{text}" for k, text in enumerate(texts)
    ]  # the step texts once, above the first row
    # rows top to bottom: every frame of row r lies above every frame of row r + 1, and frames of a row side by side
    boxes = [ax.get_position() for ax in fig.axes]
    for r in range(2):
        assert max(b.y0 for b in boxes[3 * r : 3 * r + 3]) > min(b.y1 for b in boxes[3 * r + 3 : 3 * r + 6])
    assert [round(b.y0, 6) for b in boxes[:3]] == [round(boxes[0].y0, 6)] * 3
    assert boxes[0].x1 < boxes[1].x0 < boxes[1].x1 < boxes[2].x0
    assert "oracle" not in " ".join(drawn)  # nothing drawn that was not given


def test_comparison_figure_rejects_mismatched_inputs():
    frames = [np.zeros((8, 8, 3))] * 2
    with pytest.raises(ValueError, match=r"row 1 \('b'\) has 1 images for 2 step texts"):
        viz.comparison_figure([("a", frames, None), ("b", frames[:1], None)], ["one", "two"])
    with pytest.raises(ValueError, match="triple"):
        viz.comparison_figure([("a", frames)], ["one", "two"])
    with pytest.raises(ValueError, match="triple"):
        viz.comparison_figure(["abc"], ["one", "two"])
    with pytest.raises(ValueError, match=r"group_titles \[1\] name no row"):
        viz.comparison_figure([("a", frames, None)], ["one", "two"], group_titles={1: "nothing there"})
    with pytest.raises(ValueError, match="no rows"):
        viz.comparison_figure([], ["one", "two"])
    with pytest.raises(ValueError, match="no step texts"):
        viz.comparison_figure([("a", [], None)], [])


def test_attention_overlay_stretches_the_map_over_the_image():
    image = np.ones((64, 48, 3), np.float32)
    fig = viz.attention_overlay(image, torch.rand(8, 6), title="x", colorbar=True)
    assert n_axes(fig) == 2  # the overlay and its colour bar
    heat = fig.axes[0].images[-1]
    assert heat.get_extent() == [0, 48, 64, 0]
    fig2, ax = plt.subplots(1, 2)
    assert viz.attention_overlay(None, np.random.rand(4, 4), ax=ax[1]) is fig2
    with pytest.raises(ValueError, match="2-D"):
        viz.attention_overlay(image, torch.rand(2, 8, 8))


def test_toy_attention_figure():
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    fig = viz.toy_attention_figure(weights, ["a", "b", "c", "d"], title="toy")
    assert n_axes(fig) == 1
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["a", "b", "c", "d"]
    fig2, axes = plt.subplots(1, 2)
    assert viz.toy_attention_figure(weights, list("abcd"), query_labels=["x", "y", "z"], ax=axes[0]) is fig2
    with pytest.raises(ValueError, match="len\\(labels\\)"):
        viz.toy_attention_figure(weights, ["a"])


def test_noise_map_figure_from_plain_tensors_and_region_noise(pipe):
    mask = torch.zeros(8, 8)
    mask[2:6, 2:6] = 1
    sigma = 0.5 + 0.4 * (1 - mask)
    fig = viz.noise_map_figure(mask=mask, sigma_map=sigma)
    assert n_axes(fig) == 4  # mask, sigma, and a colour bar each
    assert "in mask" in fig.axes[1].get_title()

    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(20)
    levels = NoiseLevels(scheduler, 20)
    region = region_aware_noise(torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), mask, 0.9, 0.999, levels.add_noise)
    fig = viz.noise_map_figure(
        region,
        object_noise=0.9,
        base_noise=0.999,
        object_timestep=levels.timestep(0.9),
        base_timestep=levels.timestep(0.999),
    )
    assert n_axes(fig) == 7  # 4 panels, colour bars on all but the RGB latent
    assert "t=851" in fig._suptitle.get_text()
    assert n_axes(viz.noise_map_figure(region, latent_view="mean")) == 8
    assert n_axes(viz.noise_map_figure(sigma_map=sigma)) == 3  # "no mask" panel, sigma + colour bar
    with pytest.raises(TypeError):
        viz.noise_map_figure("not a record")
    with pytest.raises(ValueError, match="latent_view"):
        viz.noise_map_figure(region, latent_view="hsv")


def test_plots_do_not_import_ipywidgets():
    code = "import sys, cooklab.viz; assert 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "MPLBACKEND": "Agg"})


def test_viz_does_not_import_diffusers():
    """Figures are drawn from saved tensors and traces: a clean interpreter plots without loading diffusers."""
    code = (
        "import sys, cooklab.viz, cooklab.viz.widgets, cooklab.viz.masks; "
        "assert 'diffusers' not in sys.modules, 'cooklab.viz imported diffusers'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "MPLBACKEND": "Agg"})


# ---- a real tiny trace ---------------------------------------------------------------------


def test_storyboard_from_output_and_frame_notes(traced):
    _, out = traced
    fig = viz.storyboard_from_output(out)
    assert n_axes(fig) == 3
    assert out.recipe.title in fig._suptitle.get_text() and "region_aware_kv" in fig._suptitle.get_text()
    notes = [viz.frame_note(f) for f in out.frames]
    assert notes[0] == "from noise"
    assert notes[1] == "from 1 · KV 1 · RA 0.9/0.999"
    assert notes[2] == "from 2 · KV 2 · uniform 0.999 (no mask)"


def test_reference_share_figures(traced):
    tr, _ = traced
    fig = viz.reference_share_figure(tr, 1)
    assert n_axes(fig) == 4  # reference, frame, overlay, colour bar
    assert "mean 0.5" in fig.axes[2].get_title()  # the tiny model's attention is nearly uniform
    layer = tr.layers("reference_share")[0]
    step = tr.steps(1)[-1]
    assert n_axes(viz.reference_share_figure(tr, 2, layers=layer, steps=[step], vmin=None, vmax=None)) == 4
    fig = viz.reference_share_figure(tr, 0)  # no reference: a blank reference panel, share 0
    assert "no reference" in fig.axes[0].get_title()

    fig = viz.reference_share_curve_figure(tr)
    assert n_axes(fig) == 1
    assert len(fig.axes[0].lines) == 3 + 1  # one per frame and the 0.5 line
    assert len(viz.reference_share_curve_figure(tr, frames=[2]).axes[0].lines) == 2


def test_self_attention_figure(traced):
    tr, _ = traced
    layer = tr.layers("self_attention")[0]
    step = tr.steps(1, "self_attention")[0]
    fig = viz.self_attention_figure(tr, 1, layer, step, query=(2, 3))
    assert n_axes(fig) == 4  # query, reference keys, own keys, colour bar
    assert "reference" in fig.axes[1].get_title() and "own keys" in fig.axes[2].get_title()
    total = sum(float(t.get_title().split(": ")[1].split("%")[0]) for t in fig.axes[1:3])
    assert total == pytest.approx(100, abs=0.2)
    fig = viz.self_attention_figure(tr, 0, layer, tr.steps(0, "self_attention")[0], query=(0, 0))
    assert fig.axes[1].texts  # frame 0 shares nothing: the reference panel says so
    with pytest.raises(ValueError, match="outside"):
        viz.self_attention_figure(tr, 1, layer, step, query=(99, 0))


def test_cross_attention_figure(traced):
    tr, _ = traced
    fig = viz.cross_attention_figure(tr, 1, tokens=["milk", 2])
    assert n_axes(fig) == 3  # two tokens and a colour bar
    assert "'milk'" in fig.axes[0].get_title()
    words = [t for t in tr.frames[1].tokens if t not in viz.plots.SPECIAL_TOKENS]
    fig = viz.cross_attention_figure(tr, 1, ncols=4)
    panels = min(len(words), 12)
    assert n_axes(fig) == -(-panels // 4) * 4 + 1
    with pytest.raises(KeyError):
        viz.cross_attention_figure(tr, 1, tokens=["saucepan"])


def test_noise_map_figure_from_trace_records(traced):
    tr, _ = traced
    fig = viz.noise_map_figure(tr.noise[1])
    assert n_axes(fig) == 7
    title = fig._suptitle.get_text()
    assert "object level 0.9" in title and "base level 0.999" in title
    fig = viz.noise_map_figure(tr.noise[2])  # no mask: uniform noise
    assert "no mask" in fig.axes[0].texts[0].get_text()


# ---- widgets -------------------------------------------------------------------------------


def assert_drawn(capsys):
    """The widget callbacks displayed PNG images (printed as their repr without a kernel) and hit no error."""
    printed = capsys.readouterr().out
    assert "display.Image object" in printed and "Figure(" not in printed
    assert "nothing to show" not in printed
    assert plt.get_fignums() == []  # plain Figures: pyplot never held one


def test_attention_explorer(traced, capsys):
    tr, _ = traced
    box = widgets.attention_explorer(tr)
    c = box.controls
    assert c["frame"].value == 1  # starts on the first frame with a reference
    c["layer"].value = c["layer"].options[1][1]
    c["step"].value = c["step"].options[-1][1]
    c["view"].value = "self_attention"
    assert c["row"].layout.display is None and c["token"].layout.display == "none"
    c["row"].value, c["col"].value = 2, 5
    c["frame"].value = 2
    c["view"].value = "cross_attention"
    c["token"].value = c["token"].options[2][1]
    c["step"].value = "all"
    assert_drawn(capsys)


def test_attention_explorer_needs_attention_maps(pipe):
    with cooklab.trace(pipe, capture=["noise"]) as tr:
        pipe(["a", "b"], variant="kv_sharing", num_inference_steps=2, height=64, width=64, progress=False)
    with pytest.raises(ValueError, match="no attention maps"):
        widgets.attention_explorer(tr)


def test_frame_scrubber(traced, capsys):
    _, out = traced
    box = widgets.frame_scrubber(out)
    table = box.children[1].children[1]
    assert "from noise" in table.value
    box.controls["step"].value = 2
    assert "RA 0.9/0.999" in table.value and "box" in table.value
    box.controls["step"].value = 3
    assert "no mask" in table.value
    assert_drawn(capsys)


def test_detached_figures_are_unknown_to_pyplot(traced):
    tr, _ = traced
    with viz.detached_figures():
        fig = viz.noise_map_figure(tr.noise[1])
    assert isinstance(fig, Figure) and plt.get_fignums() == []  # nothing a pyplot flush could close or show
    assert len(viz.figure_png(fig)) > 4000
    fig = viz.noise_map_figure(tr.noise[1])  # outside: a pyplot figure, as the notebooks' cells expect
    assert plt.get_fignums() == [fig.number]


def test_explorers_never_touch_pyplot(traced, capsys, monkeypatch):
    """A widget callback may run on a kernel subshell while matplotlib-inline flushes pyplot's figures
    (JupyterLab 4.6's commsOverSubshells): the explorers build plain Figures, so pyplot's figure factory
    must not even be called."""

    def no_pyplot(*args, **kwargs):
        raise AssertionError("an explorer made a pyplot figure")

    monkeypatch.setattr(plt, "figure", no_pyplot)
    tr, out = traced
    box = widgets.frame_scrubber(out)
    box.controls["step"].value = 2
    box = widgets.attention_explorer(tr)
    box.controls["view"].value = "cross_attention"
    assert_drawn(capsys)


# ---- legible labels, one meaning of "step", fixed scales, JSON tables ------------------------


def text_sizes(fig: Figure) -> dict[str, float]:
    """Every visible, non-empty text of a figure (titles, labels, tick labels, legends, notes) with its font size."""
    fig.canvas.draw()  # tick labels exist only once drawn
    return {
        t.get_text(): t.get_fontsize()
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_visible() and t.get_text().strip()
    }


def test_figures_write_no_text_below_the_smallest_legible_size(traced):
    tr, out = traced
    figures = [
        viz.reference_share_curve_figure(tr),
        viz.reference_share_figure(tr, 1),
        viz.noise_map_figure(tr.noise[1]),
        viz.self_attention_figure(tr, 1, tr.layers("self_attention")[0], tr.steps(1, "self_attention")[0], (0, 0)),
        viz.storyboard_from_output(out),
    ]
    for fig in figures:
        small = {text: size for text, size in text_sizes(fig).items() if size < viz.common.SMALL_PT}
        assert not small, f"text below {viz.common.SMALL_PT} pt: {small}"


def test_attention_figures_say_recipe_step_or_denoising_step(traced):
    tr, _ = traced
    layer, t = tr.layers("self_attention")[0], tr.steps(1, "self_attention")[0]
    title = viz.self_attention_figure(tr, 1, layer, t, (0, 0))._suptitle.get_text()
    assert "recipe step 2" in title and f"denoising step {t}" in title
    fig = viz.reference_share_curve_figure(tr)
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("denoising step")
    assert all(t.get_text().startswith("recipe step") for t in ax.get_legend().get_texts())
    assert "all denoising steps" in viz.cross_attention_figure(tr, 1)._suptitle.get_text()
    box = widgets.attention_explorer(tr)
    assert (box.controls["frame"].description, box.controls["step"].description) == ("recipe step", "denoising step")
    assert widgets.frame_scrubber(traced[1]).controls["step"].description == "recipe step"


def shown_figures(monkeypatch) -> list[Figure]:
    """Keep every figure an explorer displays (its ``show_figures`` still renders and displays them)."""
    shown = []
    show = panels.show_figures

    def keep(*figs):
        shown.extend(figs)
        show(*figs)

    monkeypatch.setattr(panels, "show_figures", keep)
    return shown


def coefficient_scales(fig: Figure) -> list[tuple[float, float]]:
    """The colour limits of the sigma and signal panels of a noise_map_figure (panels 2 and 3)."""
    return [fig.axes[k].images[0].get_clim() for k in (1, 2)]


def test_noise_map_figure_scales_its_coefficients_to_their_own_range_unless_fixed(pipe):
    mask = box_to_mask((16, 16, 48, 48), (64, 64))
    pipe.scheduler.set_timesteps(20)
    region = region_aware_noise(
        torch.randn(1, 4, 8, 8),
        torch.randn(1, 4, 8, 8),
        mask[::8, ::8],
        0.3,
        0.6,
        NoiseLevels(pipe.scheduler, 20).add_noise,
    )
    sigma = region.sigma_map
    assert float(sigma.min()) < float(sigma.max()) < 1.0  # two levels: two values, neither at the fixed top
    assert coefficient_scales(viz.noise_map_figure(region))[0] == (
        float(sigma.min()),
        float(sigma.max()),
    )  # unfixed: its own range
    fixed = viz.noise_map_figure(region, coefficient_max=(1.0, 1.0))
    assert coefficient_scales(fixed) == [(0.0, 1.0), (0.0, 1.0)]
    assert sum("scale fixed" in ax.get_ylabel() for ax in fixed.axes) == 2  # the two colour bars say so


def test_noise_map_figure_labels_its_coefficients_and_draws_the_decoded_latent(pipe):
    mask = box_to_mask((16, 16, 48, 48), (64, 64))[::8, ::8]
    pipe.scheduler.set_timesteps(12)
    region = region_aware_noise(
        torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8), mask, 0.9, 0.999, NoiseLevels(pipe.scheduler, 12).add_noise
    )
    decoded = PIL.Image.new("RGB", (64, 64), (200, 30, 30))
    fig = viz.noise_map_figure(region, object_noise=0.9, base_noise=0.999, decoded=decoded)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[1].startswith("noise coefficient b (× ε)") and titles[2].startswith("signal coefficient a (× L_ref)")
    decoded_ax = next(ax for ax in fig.axes if ax.get_title() == "decoded by the VAE\n(red: the mask)")
    assert len(decoded_ax.collections) == 1  # the mask's outline
    assert fig._suptitle.get_text() == "object level 0.9, base level 0.999"  # levels, not coefficients


def test_json_rows_and_table():
    steps = [
        {"step": 1, "container": "bowl", "ingredients": [{"name": "egg", "state": None}], "done": True},
        {"step": 2, "container": None, "extra": "<b>x</b>"},
    ]
    rows = viz.json_rows(steps)
    assert rows == [
        {
            "step": "1",
            "container": "bowl",
            "ingredients": '[{"name": "egg", "state": null}]',
            "done": "true",
            "extra": "—",
        },
        {"step": "2", "container": "—", "ingredients": "—", "done": "—", "extra": "<b>x</b>"},
    ]
    assert viz.json_rows({"dish": "eggs", "n": 2.5}) == [
        {"key": "dish", "value": "eggs"},
        {"key": "n", "value": "2.5"},
    ]
    assert viz.json_rows([1, "a"]) == [{"value": "1"}, {"value": "a"}]
    page = viz.json_table(steps)
    assert (
        page.count("<tr>") == 3
        and page.count("<th") == 5
        and "&lt;b&gt;x&lt;/b&gt;" in page
        and "<b>x</b>" not in page
    )
    long = viz.json_table({"prompt": "word " * 100}, max_chars=40)
    assert "…" in long and "word " * 10 not in long


def test_attention_explorer_keeps_the_self_attention_scale_over_denoising_steps(traced, capsys, monkeypatch):
    tr, _ = traced
    shown = shown_figures(monkeypatch)
    box = widgets.attention_explorer(tr)
    c = box.controls
    c["view"].value = "self_attention"
    c["row"].value, c["col"].value = 1, 1
    for option in c["step"].options[1:]:
        c["step"].value = option[1]
    layer, query = c["layer"].value, (1, 1)
    top = max(float(tr.self_attention_map(1, layer, s, query).max()) for s in tr.steps(1, "self_attention"))
    moved = [fig for fig in shown if "Self-attention" in fig._suptitle.get_text()][-len(c["step"].options) + 1 :]
    assert {fig.axes[2].images[-1].get_clim() for fig in moved} == {(0.0, top)}
    assert_drawn(capsys)


def test_measure_label_takes_one_measure_several_or_none():
    from cooklab.viz.widgets.measures import measure_label

    pictures = ["a", "b", "c"]
    count = lambda images: f"{len(images)} pictures"  # noqa: E731
    first = lambda images: f"first {images[0]}"  # noqa: E731
    assert measure_label(count, pictures) == "3 pictures"
    assert measure_label((first, count), pictures) == "first a, 3 pictures"  # in the order given
    assert measure_label(None, pictures) == ""
