"""The pipelines' calls as named stages: the T5 length default, and warnings that name the caller's line."""

import numpy as np
import pytest
from transformers import AutoTokenizer

import cooklab
from cooklab import ConfigError
from cooklab.cookanything.settings import FLUX_MAX_SEQUENCE_LENGTH, default_max_sequence_length
from cooklab.models import TINY_T5_MAX_LENGTH
from cooklab.models import toy as toy_models
from cooklab.word_tokenizers import tiny_t5_tokenizer

STEPS = ["Dice two carrots on a wooden board", "Fry the carrots in a black pan", "Serve the carrots on a white plate"]
KW = dict(num_inference_steps=2, progress=False, output_type="np")


def test_the_default_t5_length_is_the_tokenizers_capped_at_512():
    assert FLUX_MAX_SEQUENCE_LENGTH == 512
    assert default_max_sequence_length(tiny_t5_tokenizer()) == TINY_T5_MAX_LENGTH == 64  # tiny_flux
    toy = AutoTokenizer.from_pretrained(toy_models.TOY_DIR / "flux" / "tokenizer_2")  # what toy_flux() loads
    assert default_max_sequence_length(toy) == toy_models.T5_MAX_LENGTH == 64
    assert default_max_sequence_length(tiny_t5_tokenizer(max_length=512)) == 512  # FLUX.1's T5 tokenizer says 512
    assert default_max_sequence_length(tiny_t5_tokenizer(max_length=77)) == 77
    assert default_max_sequence_length(tiny_t5_tokenizer(max_length=4096)) == 512  # Flux takes no more
    assert default_max_sequence_length(tiny_t5_tokenizer(max_length=int(1e30))) == 512  # transformers' "no length set"


def test_the_default_equals_the_tokenizers_length_given_explicitly(ca):
    default = ca(STEPS, seed=0, **KW)
    explicit = ca(STEPS, seed=0, max_sequence_length=TINY_T5_MAX_LENGTH, **KW)
    assert all(np.array_equal(a, b) for a, b in zip(default.images, explicit.images, strict=True))
    assert default.settings["max_sequence_length"] == explicit.settings["max_sequence_length"] == 64
    assert default.layout.step_text_len == 64
    with pytest.warns(UserWarning, match="cut at max_sequence_length=32"):
        other = ca(STEPS, seed=0, max_sequence_length=32, **KW)
    assert other.settings["max_sequence_length"] == 32 and other.layout.step_text_len == 32
    with pytest.raises(ConfigError, match="1 to 512"):
        ca(STEPS, max_sequence_length=0, **KW)


def test_the_default_follows_the_pipelines_own_tokenizer(tiny_flux):
    tiny_flux.tokenizer_2.model_max_length = 16
    with pytest.warns(UserWarning, match="cut at max_sequence_length=16"):  # the default is 16 now
        out = cooklab.CookAnything.from_pipe(tiny_flux)(STEPS[:1], seed=0, **KW)
    assert out.settings["max_sequence_length"] == 16 and out.layout.step_text_len == 16


def test_cookanything_warnings_name_the_callers_line(ca, monkeypatch):
    import cooklab.cookanything.canvas as module

    long_steps = [
        f"Step number {i} stirs the thick tomato sauce slowly with a long wooden spoon in the big pot"
        for i in range(4)
    ]
    with pytest.warns(UserWarning, match="whole description is cut") as record:
        ca(long_steps, seed=0, max_sequence_length=32, **KW)
    with pytest.warns(UserWarning, match="is ignored") as ignored:
        ca(STEPS, seed=0, negative_prompt="blurry", **KW)
    real = module.step_token_spans

    def mismatched(*args, **kwargs):
        spans = real(*args, **kwargs)
        spans.spans[1].matches = False
        return spans

    monkeypatch.setattr(module, "step_token_spans", mismatched)
    with pytest.warns(UserWarning, match="unfused") as unfused:
        ca(STEPS, seed=0, lam=0.5, **KW)
    assert {w.filename for w in [*record, *ignored, *unfused]} == {__file__}


def test_recipe_diffusion_warnings_name_the_callers_line(rd):
    box = (8, 8, 40, 40)
    with pytest.warns(UserWarning, match="same timestep") as record:
        rd(STEPS, seed=0, num_inference_steps=4, masks=[None, box, box], progress=False)
    assert {w.filename for w in record} == {__file__}
