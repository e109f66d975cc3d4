"""Flexible RoPE ids: equal to Flux's own ids where they should be, and their effect on the rotary embedding."""

import pytest
import torch
from diffusers import FluxPipeline

from cooklab.cookanything.flexible_rope import RopeIds, canvas_image_ids, single_image_ids, text_ids
from cooklab.errors import ConfigError

N, ROWS, COLS = 3, 4, 5


@pytest.fixture(scope="module")
def pos_embed():
    from cooklab.models import tiny_flux

    return tiny_flux().transformer.pos_embed  # FluxPosEmbed, axes (4, 6, 6)


@pytest.mark.parametrize("rows, cols", [(1, 1), (4, 4), (3, 7), (64, 64)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_single_image_ids_equal_the_pipeline(rows, cols, dtype):
    expected = FluxPipeline._prepare_latent_image_ids(None, rows, cols, "cpu", dtype)
    ids = single_image_ids(rows, cols, "cpu", dtype)
    assert ids.dtype == dtype and ids.shape == (rows * cols, 3)
    assert torch.equal(ids, expected)


def test_flexible_regions_restart_at_zero():
    ids = canvas_image_ids(N, ROWS, COLS)
    assert ids.shape == (N * ROWS * COLS, 3)
    for n in range(N):
        assert torch.equal(ids[n * ROWS * COLS : (n + 1) * ROWS * COLS], single_image_ids(ROWS, COLS))


def test_step_axis_holds_the_step_index():
    ids = canvas_image_ids(N, ROWS, COLS, step_axis=True)
    region = torch.arange(N).repeat_interleave(ROWS * COLS)
    assert torch.equal(ids[:, 0], region.float())
    assert torch.equal(ids[:, 1:], canvas_image_ids(N, ROWS, COLS)[:, 1:])  # rows and columns unchanged


def test_global_ids_are_one_tall_image():
    ids = canvas_image_ids(N, ROWS, COLS, flexible=False)
    assert torch.equal(ids, single_image_ids(N * ROWS, COLS))
    last = ids[(N - 1) * ROWS * COLS :]  # the last region continues the rows
    assert last[:, 1].min() == (N - 1) * ROWS and last[:, 1].max() == N * ROWS - 1


def test_global_ids_refuse_step_axis():
    with pytest.raises(ConfigError, match="step_axis=True needs flexible=True"):
        canvas_image_ids(N, ROWS, COLS, flexible=False, step_axis=True)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_sizes_must_be_positive_integers(bad):
    for name, sizes in (("n_regions", (bad, ROWS, COLS)), ("rows", (N, bad, COLS)), ("cols", (N, ROWS, bad))):
        with pytest.raises(ConfigError, match=f"{name} must be a positive integer"):
            canvas_image_ids(*sizes)
    with pytest.raises(ConfigError, match="positive integer"):
        single_image_ids(ROWS, bad)


def test_text_ids_are_zeros():
    ids = text_ids(7, dtype=torch.bfloat16)
    assert ids.shape == (7, 3) and ids.dtype == torch.bfloat16 and not ids.any()
    assert text_ids(0).shape == (0, 3)


def test_rope_ids_regions_and_grid():
    rope = RopeIds.build(6, N, ROWS, COLS, step_axis=True)
    assert rope.text.shape == (6, 3) and rope.image.shape == (N * ROWS * COLS, 3)
    assert rope.all_ids.shape == (6 + N * ROWS * COLS, 3)
    region = rope.region_of_token()
    assert region.dtype == torch.long and region.shape == (6 + N * ROWS * COLS,)
    assert region[:6].eq(-1).all() and torch.equal(region[6:], torch.arange(N).repeat_interleave(ROWS * COLS))
    grid = rope.grid(2)
    assert grid.shape == (ROWS, COLS, 3)
    assert grid[..., 0].eq(2).all() and grid[3, 4, 1] == 3 and grid[3, 4, 2] == 4
    assert grid.data_ptr() == rope.image[2 * ROWS * COLS :].data_ptr()  # a view, not a copy
    assert torch.equal(rope.grid(0)[..., 1:], rope.grid(2)[..., 1:])  # region 0 exists too
    with pytest.raises(ConfigError, match=r"region 3 does not exist: there are 3 regions \(0\.\.2\)"):
        rope.grid(3)
    plain = RopeIds.build(6, N, ROWS, COLS)  # defaults: flexible ids, no step axis
    assert plain.flexible and not plain.step_axis and plain.image[:, 0].eq(0).all()
    assert torch.equal(plain.image, canvas_image_ids(N, ROWS, COLS)) and plain.image.dtype == torch.float32
    tall = RopeIds.build(6, N, ROWS, COLS, flexible=False)
    assert not tall.flexible and torch.equal(tall.image, canvas_image_ids(N, ROWS, COLS, flexible=False))


def test_flexible_rope_gives_every_region_the_same_rotation(pos_embed):
    per_region = ROWS * COLS
    cos, sin = pos_embed(canvas_image_ids(N, ROWS, COLS))  # each [N*rows*cols, 16]
    for n in range(1, N):
        assert torch.equal(cos[n * per_region : (n + 1) * per_region], cos[:per_region])
        assert torch.equal(sin[n * per_region : (n + 1) * per_region], sin[:per_region])

    cos_global, sin_global = pos_embed(canvas_image_ids(N, ROWS, COLS, flexible=False))
    assert torch.equal(cos_global[:per_region], cos[:per_region])  # region 0 is the same either way
    for n in range(1, N):
        assert not torch.allclose(cos_global[n * per_region : (n + 1) * per_region], cos[:per_region])
        assert not torch.allclose(sin_global[n * per_region : (n + 1) * per_region], sin[:per_region])


def test_step_axis_changes_only_the_axis_0_channels(pos_embed):
    per_region = ROWS * COLS
    axis0 = pos_embed.axes_dim[0]  # the first channels rotate by the axis-0 id
    cos, _ = pos_embed(canvas_image_ids(N, ROWS, COLS, step_axis=True))
    region0, region1 = cos[:per_region], cos[per_region : 2 * per_region]
    assert torch.equal(region1[:, axis0:], region0[:, axis0:])
    assert not torch.allclose(region1[:, :axis0], region0[:, :axis0])
