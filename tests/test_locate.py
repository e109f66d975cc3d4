"""Layers are found by name: groups, prefixes, regular expressions, kinds; typos are errors."""

import pytest

import cooklab
from cooklab import ConfigError


def test_groups_and_kinds(tiny_sd):
    selfs = cooklab.locate(tiny_sd, kind="self")
    assert selfs and all(".attn1." in n for n in selfs)
    assert cooklab.locate(tiny_sd, "mid", kind="self") == [
        "mid_block.attentions.0.transformer_blocks.0.attn1.processor"
    ]
    up = cooklab.locate(tiny_sd, "up", kind="cross")
    assert up and all(n.startswith("up_blocks.") and ".attn2." in n for n in up)
    assert cooklab.locate(tiny_sd, ["mid", "up"], kind="self") == cooklab.locate(tiny_sd, "mid", "up", kind="self")


def test_prefix_regex_and_full_names(tiny_sd):
    name = "up_blocks.1.attentions.1.transformer_blocks.0.attn1.processor"
    assert cooklab.locate(tiny_sd, name) == [name]
    assert cooklab.locate(tiny_sd, "up_blocks.1.attentions.1", kind="self") == [name]
    assert cooklab.locate(tiny_sd, r"re:attentions\.1\..*attn1", kind="self") == [name]


def test_model_order_and_pipelines(tiny_sd):
    rd = cooklab.RecipeDiffusion.from_pipe(tiny_sd)
    assert (
        cooklab.locate(rd, "up", "mid") == cooklab.locate(tiny_sd.unet, "mid", "up") == cooklab.locate(rd, "mid", "up")
    )
    names = list(tiny_sd.unet.attn_processors)
    found = cooklab.locate(rd, "up", "mid")
    assert found == [n for n in names if n in found]


def test_flux_groups():
    flux = cooklab.models.tiny_flux()
    assert cooklab.locate(flux, "double") and cooklab.locate(flux, "single")
    assert not set(cooklab.locate(flux, "double")) & set(cooklab.locate(flux, "single"))


def test_errors(tiny_sd):
    with pytest.raises(ConfigError, match="matches no self attention layer"):
        cooklab.locate(tiny_sd, "upp", kind="self")
    with pytest.raises(ConfigError, match="kind="):
        cooklab.locate(tiny_sd, kind="selfish")
    with pytest.raises(ConfigError, match="cannot find attention layers"):
        cooklab.locate(object())


def test_a_kind_the_model_does_not_have_is_a_clear_error():
    flux = cooklab.models.tiny_flux()  # Flux layers are named ...attn, never attn1/attn2
    with pytest.raises(ConfigError, match="has no cross attention layer at all"):
        cooklab.locate(flux, "double", kind="cross")
