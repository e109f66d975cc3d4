"""CookAnything figures and widgets: synthetic tensors, a real tiny Flux trace, widget callbacks."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from types import SimpleNamespace  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import cooklab  # noqa: E402
from cooklab import viz  # noqa: E402
from cooklab.cookanything import RegionLayout, regional_token_mask  # noqa: E402
from cooklab.cookanything.cscc import step_token_spans  # noqa: E402
from cooklab.cookanything.flexible_rope import canvas_image_ids  # noqa: E402
from cooklab.models import TINY_T5_MAX_LENGTH  # noqa: E402
from cooklab.viz import cookanything as plots  # noqa: E402  (the CookAnything figures and their helpers)
from cooklab.viz import widgets  # noqa: E402

STEPS = [
    "Dice two carrots on a wooden board.",
    "Fry the carrots in a black pan.",
    "Serve the carrots on a white plate.",
]
KW = dict(num_inference_steps=3, height=64, width=64, max_sequence_length=TINY_T5_MAX_LENGTH, progress=False)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def ca():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    pipe = cooklab.CookAnything.from_pipe(cooklab.models.tiny_flux(seed=0))
    yield pipe
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def traced(ca):
    recipe = cooklab.Recipe.from_steps(STEPS, title="Carrots")
    with cooklab.trace(ca) as tr:
        out = ca(recipe, seed=0, **KW)
    return tr, out


@pytest.fixture(scope="module")
def traced_off(ca):
    with cooklab.trace(ca, capture=["text_image_attention", "layout"]) as tr:
        ca(cooklab.Recipe.from_steps(STEPS, title="Carrots"), seed=0, regional=False, cscc=False, **KW)
    return tr


def is_figure(fig) -> Figure:
    assert isinstance(fig, Figure)
    return fig


# ---- synthetic inputs ------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 12])
def test_group_mask_figure(n):
    fig = is_figure(viz.group_mask_figure(n))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == [f"C{k + 1}" for k in range(n)] + [
        f"I{k + 1}" for k in range(n)
    ]
    rgb = ax.images[0].get_array()
    allowed = ~np.all(np.asarray(rgb) == 1.0, axis=-1)  # white = masked
    assert np.array_equal(allowed, cooklab.cookanything.group_mask(n).numpy())
    is_figure(viz.group_mask_figure(n, image_attention="global"))
    with pytest.raises(ValueError):
        viz.group_mask_figure(n, image_attention="nowhere")


def test_mask_fractions_match_the_dense_mask():
    layout = RegionLayout(3, 2, 3, 5, 5)  # N=3, P=6, L=5: 33 tokens
    for mode in ("region", "global"):
        dense = regional_token_mask(layout, mode).float().numpy()
        edges, counts = plots.token_groups(layout, 1000)  # one bin per token
        same, extra = plots.mask_fractions(counts, counts, mode)
        assert np.allclose(same.sum(-1) + extra, dense)
        edges, counts = plots.token_groups(layout, 7)  # downsampled: block averages of the dense mask
        same, extra = plots.mask_fractions(counts, counts, mode)
        blocks = np.array(
            [[dense[a:b, c:d].mean() for c, d in zip(edges[:-1], edges[1:])] for a, b in zip(edges[:-1], edges[1:])]
        )
        assert np.allclose(same.sum(-1) + extra, blocks)


def test_token_mask_figure_small_and_big():
    fig = is_figure(viz.token_mask_figure(RegionLayout(2, 2, 2, 3, 3), highlight=1))
    assert "25.0%" not in fig.axes[0].get_title() and "allowed" in fig.axes[0].get_title()
    big = RegionLayout(12, 32, 32, 512, 512)  # FLUX.1 at 512x512 per region: 18432 tokens
    fig = is_figure(viz.token_mask_figure(big, image_attention="global", max_pixels=200))
    assert fig.axes[0].images[0].get_array().shape[:2] == (200, 200)
    assert "shown at 200²" in fig.axes[0].get_title()
    _, ax = plt.subplots()
    assert viz.token_mask_figure(RegionLayout(4, 4, 4, 8, 8), ax=ax, highlight=[0, 2]) is ax.figure


def test_layout_figure_and_rope_ids():
    layout = RegionLayout(3, 4, 4, 8, 8)
    is_figure(viz.layout_figure(layout, STEPS, token_counts=[5, 6, 9]))
    is_figure(viz.layout_figure(RegionLayout(2, 4, 4, 8, 0), ["a", "b"]))  # no base branch
    with pytest.raises(ValueError, match="texts"):
        viz.layout_figure(layout, ["only one"])
    flexible, flat = canvas_image_ids(3, 4, 4), canvas_image_ids(3, 4, 4, flexible=False)
    fig = is_figure(viz.rope_ids_figure({"flexible": flexible, "global": flat}, layout))
    assert len(fig.axes) == 8  # 2 id sets x (row, column) + colour bars
    fig = is_figure(viz.rope_ids_figure(canvas_image_ids(3, 4, 4, step_axis=True), layout))
    assert "axis 0" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="img_ids"):
        viz.rope_ids_figure(torch.zeros(5, 3), layout)


def test_rotary_figure_from_pos_embed(ca):
    layout = RegionLayout(8, 4, 4, 8, 8)
    pe = ca.transformer.pos_embed
    freqs = {"flexible": pe(canvas_image_ids(8, 4, 4)), "global": pe(canvas_image_ids(8, 4, 4, flexible=False))}
    fig = is_figure(viz.rotary_figure(freqs, layout, regions=(0, 7)))
    titles = [ax.get_title() for ax in fig.axes]
    assert "flexible: |difference|: max 0.00" in titles and not any(
        t.startswith("global: |difference|: max 0.00") for t in titles
    )


def test_cscc_figures_from_synthetic_tensors(ca):
    spans = step_token_spans(ca.tokenizer_2, STEPS, "Carrots", max_sequence_length=24)  # cuts the later steps
    assert spans.truncated_steps
    is_figure(viz.cscc_spans_figure(spans))
    fig = is_figure(viz.cscc_spans_figure(spans, ca.tokenizer_2, per_row=10))
    assert any("max_sequence_length = 24" in t.get_text() for ax in fig.axes for t in ax.texts)
    is_figure(viz.cscc_spans_figure(step_token_spans(ca.tokenizer_2, STEPS, None, 256), ca.tokenizer_2))
    delta = torch.zeros(3, 16)
    delta[0, :5], delta[1, :7] = 1.0, 0.5
    fig = is_figure(viz.cscc_delta_figure(delta, STEPS))
    assert any("not fused" in t.get_text() for t in fig.axes[1].texts)
    images = [np.random.rand(16, 16, 3) for _ in range(3)]
    is_figure(viz.cscc_lambda_figure(images, images, 0.4, delta_norm=delta, texts=STEPS))
    with pytest.raises(ValueError):
        viz.cscc_lambda_figure(images, images[:2], 0.4)


class FakeTrace:
    """What the text->image and base-contribution figures read from a trace, made of plain tensors."""

    def __init__(self, n=3, grid=2, steps=2):
        self.layer_names = ["transformer_blocks.0.attn.processor", "single_transformer_blocks.0.attn.processor"]
        self.text_image = {}
        for s in range(steps):
            for name in self.layer_names:
                m = torch.zeros(n, n * grid, grid)
                for k in range(n):
                    m[k, k * grid : (k + 1) * grid] = 0.5
                self.text_image[(0, name, s)] = m
        self.base_contribution = {(0, name, s): 0.1 + 0.01 * s for name in self.layer_names for s in range(steps)}
        self.canvas = SimpleNamespace(
            texts=STEPS[:n],
            token_counts=[4] * n,
            regional=True,
            alpha=0.1,
            canvas=None,
            cscc_delta_norm=None,
            layout=RegionLayout(n, grid, grid, 4, 4),
        )

    def text_image_map(self, step, layers=None, steps=None):
        vals = [v for (f, name, s), v in self.text_image.items() if steps is None or s in steps]
        return torch.stack(vals).mean(0)[step]

    def layers(self, table):
        return self.layer_names

    def steps(self, frame, table):
        return sorted({k[2] for k in getattr(self, table)})


def test_trace_figures_from_synthetic_tensors():
    fake = FakeTrace()
    fig = is_figure(viz.text_image_figure(fake))
    assert "100% in region 2" in fig.axes[1].get_title()
    is_figure(viz.text_image_figure(fake, steps=1, t=0, vmax=1.0))
    fig = is_figure(viz.base_contribution_figure(fake))
    assert "α = 0.1" in fig._suptitle.get_text()
    is_figure(viz.base_contribution_figure({"a": fake, "b": fake}))
    is_figure(viz.layout_figure(fake))
    with pytest.raises(ValueError, match="no CSCC delta"):
        viz.cscc_delta_figure(fake)


# ---- a real tiny trace -------------------------------------------------------------------------


def test_figures_from_a_real_trace(traced, traced_off):
    tr, out = traced
    fig = is_figure(viz.text_image_figure(tr))
    assert all("100% in region" in ax.get_title() for ax in fig.axes[:3])  # SRC: each step's text stays in its region
    layer = tr.layers("text_image")[0]
    is_figure(viz.text_image_figure(tr, steps=[0, 2], layers=layer, t=[tr.steps(0, "text_image")[-1]]))
    fig = is_figure(viz.text_image_figure(traced_off))
    assert "SRC off" in fig._suptitle.get_text() and "100%" not in fig.axes[0].get_title()
    is_figure(viz.layout_figure(tr))
    is_figure(viz.layout_figure(out))
    is_figure(viz.token_mask_figure(out))
    is_figure(viz.rope_ids_figure(tr.canvas.img_ids, tr))
    is_figure(viz.cscc_spans_figure(out.spans, tr.pipe.tokenizer_2))
    fig = is_figure(viz.cscc_delta_figure(tr))
    assert fig.axes[0].get_yticklabels()[0].get_text().startswith("1: Dice")
    fig = is_figure(viz.base_contribution_figure(tr))
    assert len(fig.axes[0].get_yticklabels()) == 2  # one double and one single block in the tiny model
    with pytest.raises(ValueError, match="base contribution"):
        viz.base_contribution_figure(traced_off)
    fig = is_figure(viz.canvas_storyboard(out))
    assert "SRC α=0.1" in fig._suptitle.get_text() and "CSCC λ=0.2" in fig._suptitle.get_text()
    assert viz.canvas_note(out, 0).startswith("region 1 · CSCC")


# ---- widgets -----------------------------------------------------------------------------------


def assert_drawn(capsys):
    printed = capsys.readouterr().out
    assert "display.Image object" in printed and "Figure(" not in printed  # finished PNGs, not figures
    assert "nothing to show" not in printed
    assert plt.get_fignums() == []  # plain Figures: pyplot never held one


def test_region_mask_explorer(traced, capsys):
    box = widgets.region_mask_explorer(3)
    c = box.controls
    c["image_attention"].value = "global"
    c["region_2"].value = False
    c["n"].value = 5
    assert "region_5" in c and c["region_5"].value
    c["region_5"].value = False
    c["step_text_len"].value = 12
    c["region_side"].value = 2
    assert "5 × (12 text + 4 image)" in box.children[4].children[0].value
    _, out = traced
    box = widgets.region_mask_explorer(out)
    assert box.controls["n"].layout.display == "none"
    box.controls["region_1"].value = False
    assert_drawn(capsys)


def test_cscc_lambda_figure_fixes_its_scales_when_asked():
    rng = np.random.default_rng(0)
    reference = [rng.random((16, 16, 3)) for _ in range(3)]
    moved = [np.clip(r + 0.05, 0, 1) for r in reference]
    delta = torch.rand(3, 8)
    fig = viz.cscc_lambda_figure(
        moved, reference, 0.4, delta_norm=delta, vmax=0.5, delta_max=7.0, scale_note="fixed at λ = 2"
    )
    diff_panels = [ax for ax in fig.axes if ax.images and ax.images[0].get_cmap().name == "magma"]
    assert len(diff_panels) == 3 and all(ax.images[0].get_clim() == (0.0, 0.5) for ax in diff_panels)
    assert fig.axes[-1].get_ylim() == (0.0, 7.0) and fig.axes[-1].get_xlabel() == "recipe step"
    assert any(
        "fixed at λ = 2" in ax.get_ylabel() for ax in fig.axes
    )  # the colour bar says where its scale comes from
    own = viz.cscc_lambda_figure(moved, reference, 0.4)
    top = max(float(np.abs(a - b).mean(-1).max()) for a, b in zip(moved, reference))
    assert [ax for ax in own.axes if ax.images][1].images[0].get_clim() == pytest.approx(
        (0.0, top)
    )  # unfixed: its own largest
