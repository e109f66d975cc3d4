"""cooklab.trace: observing changes no pixel, restores processors, records bounded, correct maps."""

import numpy as np
import pytest
import torch

import cooklab
from cooklab import ConfigError
from cooklab.instrument.observer import TracingAttnProcessor
from cooklab.recipe_diffusion.kv_sharing import KVSharingAttnProcessor, KVSharingState

STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl", "Whisk the eggs in the bowl"]
PLANS = [{"container": "bowl"}, {"container": "bowl", "reference_step": 1}, {"container": "bowl", "reference_step": 2}]
BOX = (8, 8, 48, 40)
KW = dict(seed=0, num_inference_steps=20, masks=[None, BOX, BOX], progress=False, output_type="np")


def recipe():
    return cooklab.Recipe.from_steps(STEPS, plans=PLANS)


def test_trace_changes_no_pixel(rd):
    plain = rd(recipe(), **KW)
    with cooklab.trace(rd, layers=("down", "mid", "up")) as tr:
        traced = rd(recipe(), **KW)
    for a, b in zip(plain.images, traced.images, strict=False):
        assert np.array_equal(a, b)
    assert tr.self_attention and tr.reference_share and tr.cross_attention and set(tr.noise) == {1, 2}


def test_processors_restored_on_exit_and_on_error(rd):
    before = dict(rd.unet.attn_processors)
    with pytest.raises(RuntimeError, match="boom"), cooklab.trace(rd):
        rd(recipe(), **{**KW, "num_inference_steps": 2, "masks": None})
        raise RuntimeError("boom")
    assert dict(rd.unet.attn_processors) == before
    assert rd._trace is None


def test_one_trace_at_a_time(rd):
    with cooklab.trace(rd), pytest.raises(RuntimeError, match="already being traced"):
        with cooklab.trace(rd):
            pass
    with cooklab.trace(rd):  # usable again afterwards
        pass


def test_trace_needs_a_cooklab_pipeline_and_known_captures(tiny_sd, rd):
    with pytest.raises(ConfigError, match="RecipeDiffusion.from_pipe"):
        cooklab.trace(tiny_sd)
    with pytest.raises(ConfigError, match="this pipeline records"):
        cooklab.trace(rd, capture=["attention"])
    with pytest.raises(ConfigError, match="matches no"):
        cooklab.trace(rd, layers=("middle",))


def test_maps_are_normalised_and_shaped(rd):
    with cooklab.trace(rd, layers="up", timesteps=[1, 5]) as tr:
        rd(recipe(), **KW)
    assert tr.steps(1) == [1, 5] and tr.steps(0) == [1, 5]
    for (frame, layer, _step), a in tr.self_attention.items():
        assert layer.startswith("up_blocks.") and a.shape[2] == (1 if frame == 0 else 2)
        assert torch.allclose(a.sum(dim=(2, 3, 4)), torch.ones(a.shape[:2]), atol=1e-4)  # rows sum to 1
    for (frame, _, _), share in tr.reference_share.items():
        assert share.min() >= 0 and share.max() <= 1
        assert (share.max() == 0) == (frame == 0)  # frame 0 has no reference
    tokens = tr.frames[1].tokens
    assert tokens[0] == "<|startoftext|>" and tokens[-1] == "<|endoftext|>"
    cross = next(v for k, v in tr.cross_attention.items() if k[0] == 1)
    assert cross.shape[0] == len(tokens) and float(cross.sum(0).max()) <= 1 + 1e-5
    assert tr.cross_attention_map(1, "eggs").shape == cross.shape[1:]
    assert set(tr.reference_share_curve(2)) == {1, 5}
    assert "reference_share" in tr.summary()


def test_reference_share_is_one_half_when_sharing_with_itself(attn_layer):
    name, attn = attn_layer
    h = torch.randn(1, 16, attn.to_q.in_features)
    state = KVSharingState(frame=1, step=0, reference=0)
    state.store[(0, name, 0)] = (attn.to_k(h), attn.to_v(h))

    tr = cooklab.trace(_FakePipe(attn_layer), capture=["reference_share", "self_attention"], layers=(name,))
    tr.begin_frame(cooklab.instrument.FrameTrace(1, "x", ["a"], 0, (4, 4)))
    tr.set_step(0, 999.0)
    TracingAttnProcessor(KVSharingAttnProcessor(name, state), name, tr)(attn, h)
    share = tr.reference_share[(1, name, 0)]
    assert torch.allclose(share, torch.full((4, 4), 0.5), atol=1e-5)
    a = tr.self_attention[(1, name, 0)]
    assert torch.allclose(a[:, :, 0], a[:, :, 1], atol=1e-6)  # reference and own halves identical


def test_max_bytes_truncates_with_a_warning(rd):
    with pytest.warns(UserWarning, match="max_bytes"), cooklab.trace(rd, max_bytes=4096) as tr:
        rd(recipe(), **{**KW, "num_inference_steps": 4})
    assert tr.truncated and tr.nbytes() <= 4096


class _FakePipe:
    """Exposes one attention layer under its real name, as a pipeline would."""

    def __init__(self, attn_layer):
        name, attn = attn_layer
        self.denoiser = self
        self.attn_processors = {name: attn.processor}

    def _attach_trace(self, trace):
        pass


@pytest.fixture
def attn_layer(tiny_sd):
    name = "mid_block.attentions.0.transformer_blocks.0.attn1.processor"
    return name, dict(tiny_sd.unet.named_modules())[name.removesuffix(".processor")]


def test_means_over_layers_use_the_finest_grid(rd):
    with cooklab.trace(rd, layers=("mid", "up"), timesteps=[3]) as tr:
        rd(recipe(), **{**KW, "num_inference_steps": 4})
    sizes = {tuple(v.shape) for v in tr.reference_share.values()}
    assert sizes == {(4, 4), (8, 8)}  # mid block 4x4, up block 8x8
    assert tr.reference_share_map(1).shape == (8, 8) and tr.cross_attention_map(1, "eggs").shape == (8, 8)
    assert tr.frames[2].kv_reference == 1
    mid = next(k for k in tr.self_attention if k[1].startswith("mid") and k[0] == 1)
    with pytest.raises(IndexError, match="outside"):
        tr.self_attention_map(*mid, query=(5, 0))
