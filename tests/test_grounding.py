"""GroundingDINO + SAM mask providers on tiny random models: transformers backend and the original packages.

Every model is built here from a small config with random weights (no file, no network), once
per module. The detections of a random model mean nothing; what is tested is the plumbing:
phrase -> caption, thresholds, the box handed to SAM, the mask chosen and resized, the
fallbacks in RecipeDiffusion, and the compatibility layer that lets groundingdino-py run.
"""

import argparse
import copy
import warnings
from functools import partial

import numpy as np
import PIL.Image
import pytest
import torch
import transformers
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizer,
)
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

import cooklab
from cooklab import CheckpointError, ConfigError
from cooklab.grounding import GroundedSAM, OriginalGroundedSAM, ensure_bert_compat
from cooklab.grounding import groundingdino_compat as compat
from cooklab.grounding.grounded_sam import Detections, grounding_caption, label_matches
from cooklab.grounding.original import detector_input_size, load_groundingdino_weights
from cooklab.grounding.tiny import tiny_detector, tiny_segmenter
from cooklab.recipe_diffusion.region_noise import resize_mask

WORDS = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    ".",
    "?",
    "a",
    "the",
    "white",
    "bowl",
    "plate",
    "pan",
    "pot",
    "wooden",
    "board",
]
H, W = 48, 80  # a non-square image, smaller than SAM's input and not a multiple of it
PHRASE = "White Bowl"
SAM_SIDE = 64  # both tiny SAMs take 64x64 inputs (longest side resized to 64)


def bert_tokenizer() -> BertTokenizer:
    return BertTokenizer(vocab={word: i for i, word in enumerate(WORDS)})


def tiny_bert_config() -> BertConfig:
    return BertConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )


@pytest.fixture(scope="module")
def image():
    rng = np.random.default_rng(0)
    return PIL.Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------
# transformers backend
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hf_models():
    detector, detector_processor = tiny_detector(WORDS, seed=0)
    sam, sam_processor = tiny_segmenter(SAM_SIDE, seed=0)
    return detector, detector_processor, sam, sam_processor


def hf_provider(hf_models, **thresholds) -> GroundedSAM:
    return GroundedSAM.from_models(*hf_models, **{"box_threshold": 0.0, "text_threshold": 0.0, **thresholds})


def capture_kwargs(module: torch.nn.Module, calls: list):
    """Record the keyword arguments of every forward call of ``module``."""
    return module.register_forward_pre_hook(lambda mod, args, kwargs: calls.append(kwargs), with_kwargs=True)


def sam_scaled_box(box, hw, side=SAM_SIDE):
    """A pixel box in SAM's frame: the longest image side is resized to ``side`` (rounded), the other in proportion."""
    h, w = hw
    scale = side / max(h, w)
    new_h, new_w = int(h * scale + 0.5), int(w * scale + 0.5)
    x0, y0, x1, y1 = box
    return [x0 * new_w / w, y0 * new_h / h, x1 * new_w / w, y1 * new_h / h]


def check_result(result, n_queries=None):
    assert isinstance(result, cooklab.MaskResult)
    assert result.mask.shape == (H, W) and result.mask.dtype == torch.float32
    assert set(result.mask.unique().tolist()) <= {0.0, 1.0}  # binary
    x0, y0, x1, y1 = result.box
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
    extra = result.extra
    assert len(extra["all_boxes"]) == len(extra["scores"]) == len(extra["labels"])
    if n_queries is not None:
        assert len(extra["scores"]) == n_queries  # threshold 0 keeps every query
    assert result.score == max(extra["scores"]) == extra["scores"][0]
    assert list(result.box) == pytest.approx(extra["all_boxes"][0])
    assert (
        len(extra["ious"]) == 3
        and extra["iou"] == max(extra["ious"])
        and extra["mask_index"] == int(np.argmax(extra["ious"]))
    )
    assert result.phrase == PHRASE and extra["caption"] == "white bowl."


def test_caption_and_label_rules():
    assert grounding_caption("  White   BOWL ") == "white bowl."
    assert grounding_caption("bowl.") == "bowl." and grounding_caption("bowl .") == "bowl."
    with pytest.raises(ConfigError):
        grounding_caption(" . ")
    assert label_matches("white bowl", "White Bowl") and label_matches("bowl. [SEP]", "white bowl")
    assert (
        label_matches("ram ##ek", "ramekin") and not label_matches("", "bowl") and not label_matches("[SEP]", "bowl")
    )
    found = Detections.build(
        "bowl.", [[-5.0, 2.0, 90.0, 30.0], [1.0, 1.0, 2.0, 2.0]], [0.4, 0.9], ["bowl", ""], (H, W)
    )
    assert found.scores.tolist() == pytest.approx([0.9, 0.4]) and found.labels == ["", "bowl"]
    assert found.boxes[1].tolist() == [0.0, 2.0, W, 30.0]  # clipped to the image
    assert found.best("bowl") == 1  # the better box has an empty label


def test_grounded_sam_output(hf_models, image):
    detector = hf_models[0]
    calls = []
    handle = capture_kwargs(detector, calls)
    try:
        result = hf_provider(hf_models)(image, PHRASE)
    finally:
        handle.remove()
    check_result(result, n_queries=detector.config.num_queries)
    assert result.source == "grounded-sam"
    tokens = hf_models[1].tokenizer.convert_ids_to_tokens(calls[0]["input_ids"][0].tolist())
    assert tokens == ["[CLS]", "white", "bowl", ".", "[SEP]"]  # lower case, ending with "."
    found = hf_provider(hf_models).detect(image, PHRASE)
    assert found.boxes.shape == (detector.config.num_queries, 4) and found.image_hw == (H, W)


def test_grounded_sam_thresholds(hf_models, image):
    provider = hf_provider(hf_models)
    best = float(provider.detect(image, PHRASE).scores.max())
    provider.box_threshold = best  # scores must be strictly above: nothing is left
    assert len(provider.detect(image, PHRASE)) == 0 and provider(image, PHRASE) is None
    provider.box_threshold = 1.0
    assert provider(image, PHRASE) is None
    provider.box_threshold, provider.text_threshold = 0.0, 1.0  # boxes, but no token names the phrase
    found = provider.detect(image, PHRASE)
    assert len(found) > 0 and set(found.labels) == {""} and provider(image, PHRASE) is None
    with pytest.raises(ConfigError):
        provider.box_threshold = 1.5
    with pytest.raises(ConfigError):
        hf_provider(hf_models, text_threshold=-0.1)


def test_sam_gets_the_chosen_box_and_the_best_mask_is_kept(hf_models, image):
    provider = hf_provider(hf_models)
    sam = hf_models[2]
    calls, outputs = [], []
    handles = [capture_kwargs(sam, calls), sam.register_forward_hook(lambda mod, args, out: outputs.append(out))]
    try:
        result = provider(image, PHRASE)
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls) == 1 and calls[0]["multimask_output"] is True
    sent = calls[0]["input_boxes"]
    assert sent.shape == (1, 1, 4)
    assert sent[0, 0].tolist() == pytest.approx(sam_scaled_box(result.box, (H, W)), abs=1e-4)
    ious = outputs[0].iou_scores[0, 0]
    assert result.extra["mask_index"] == int(ious.argmax()) and result.extra["iou"] == pytest.approx(float(ious.max()))
    masks, _ = provider.segment(image, result.box)
    assert masks.shape == (3, H, W) and torch.equal(masks[result.extra["mask_index"]].float(), result.mask)


def test_mask_has_the_image_size_and_resizes_to_the_latent_grid(hf_models):
    provider = hf_provider(hf_models)
    for hw in ((H, W), (64, 64), (72, 40)):
        picture = PIL.Image.fromarray(np.full((*hw, 3), 128, dtype=np.uint8))
        result = provider(picture, "bowl")
        assert result.mask.shape == hw and set(result.mask.unique().tolist()) <= {0.0, 1.0}
    result = provider(PIL.Image.fromarray(np.zeros((H, W, 3), np.uint8)), "bowl")
    latent = resize_mask(result.mask, (H // 8, W // 8), (H, W))
    assert latent.shape == (H // 8, W // 8) and 0 <= float(latent.min()) and float(latent.max()) <= 1
    assert float(latent.mean()) == pytest.approx(float(result.mask.mean()), abs=1e-6)  # area averaging keeps coverage


STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl"]
PLANS = [{"container": "bowl", "reference_step": None}, {"container": "bowl", "reference_step": 1}]


def test_degenerate_and_missing_masks_fall_back_in_recipe_diffusion(hf_models, rd):
    detector, detector_processor, sam, sam_processor = hf_models
    blind = copy.deepcopy(sam)  # a SAM whose masks are all background: logits 0 everywhere, binarised at > 0
    with torch.no_grad():
        for mlp in blind.mask_decoder.output_hypernetworks_mlps:
            mlp.proj_out.weight.zero_()
            mlp.proj_out.bias.zero_()
    provider = GroundedSAM.from_models(
        detector, detector_processor, blind, sam_processor, box_threshold=0.0, text_threshold=0.0
    )
    recipe = cooklab.Recipe.from_steps(STEPS, title="Eggs", plans=PLANS)
    with cooklab.trace(rd, capture="noise") as tr:
        out = rd(recipe, seed=0, num_inference_steps=2, progress=False, mask_provider=provider)
    frame = out.frames[1]
    assert not frame.region_aware and "degenerate" in frame.fallback
    assert frame.mask.source == "grounded-sam" and frame.mask.area == 0.0 and frame.mask.box is not None
    assert tr.noise[1].region is None  # uniform noise was recorded

    provider.box_threshold = 1.0  # nothing found
    out = rd(recipe, seed=0, num_inference_steps=2, progress=False, mask_provider=provider)
    assert (
        not out.frames[1].region_aware and "found no 'bowl'" in out.frames[1].fallback and out.frames[1].mask is None
    )


def test_grounded_sam_loads_folders_and_explains_failures(hf_models, image, tmp_path):
    detector, detector_processor, sam, sam_processor = hf_models
    detector.save_pretrained(tmp_path / "det")
    detector_processor.save_pretrained(tmp_path / "det")
    sam.save_pretrained(tmp_path / "sam")
    sam_processor.save_pretrained(tmp_path / "sam")
    loaded = GroundedSAM(
        str(tmp_path / "det"), str(tmp_path / "sam"), box_threshold=0.0, text_threshold=0.0, device="cpu"
    )
    assert loaded.device.type == "cpu"
    a, b = loaded(image, PHRASE), hf_provider(hf_models)(image, PHRASE)
    assert a.box == pytest.approx(b.box) and torch.equal(a.mask, b.mask)

    with pytest.raises(CheckpointError, match="not an existing folder"):
        GroundedSAM(str(tmp_path / "missing"), str(tmp_path / "sam"))
    with pytest.raises(CheckpointError, match="'sam' model"):
        GroundedSAM(str(tmp_path / "sam"), str(tmp_path / "sam"))
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE|hf download"):
        GroundedSAM("cooklab-tests/no-such-detector", str(tmp_path / "sam"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="save_pretrained"):
        GroundedSAM(str(tmp_path / "empty"), str(tmp_path / "sam"))
    with pytest.raises(ConfigError):
        GroundedSAM.from_models(sam, sam_processor, sam, sam_processor)


# ---------------------------------------------------------------------------
# The compatibility layer for groundingdino-py
# ---------------------------------------------------------------------------


def test_ensure_bert_compat_is_idempotent():
    ensure_bert_compat()
    methods = {name: getattr(BertModel, name) for name in compat.RESTORED_BERT_METHODS}
    assert ensure_bert_compat() == ()
    assert {name: getattr(BertModel, name) for name in compat.RESTORED_BERT_METHODS} == methods


def test_restored_methods_match_hand_computation():
    ensure_bert_compat()
    bert = BertModel(tiny_bert_config()).eval()
    lo = torch.finfo(torch.float32).min
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    ext = bert.get_extended_attention_mask(mask, (2, 3))
    assert ext.shape == (2, 1, 1, 3) and ext.dtype == torch.float32
    assert torch.equal(ext[:, 0, 0], torch.tensor([[0.0, 0.0, lo], [0.0, lo, lo]]))
    block = torch.tensor([[[1, 1, 0], [1, 1, 0], [0, 0, 1]]])  # two sub-sentences, as GroundingDINO builds them
    ext = bert.get_extended_attention_mask(block, (1, 3))
    assert ext.shape == (1, 1, 3, 3) and torch.equal(ext[0, 0], (1.0 - block[0].float()) * lo)
    half = compat.extended_attention_mask(mask, (2, 3), torch.float16)
    assert half.dtype == torch.float16 and float(half[0, 0, 0, 2]) == torch.finfo(torch.float16).min
    causal = compat.extended_attention_mask(torch.tensor([[1, 1, 1]]), (1, 3), torch.float32, is_decoder=True)
    assert torch.equal(
        causal[0, 0] == 0, torch.tensor([[True, False, False], [True, True, False], [True, True, True]])
    )

    inv = bert.invert_attention_mask(mask)
    assert inv.shape == (2, 1, 1, 3) and torch.equal(inv, (1.0 - mask[:, None, None, :].float()) * lo)
    assert bert.invert_attention_mask(block).shape == (1, 1, 3, 3)

    assert bert.get_head_mask(None, 2) == [None, None]
    per_head = bert.get_head_mask(torch.tensor([1.0, 0.0]), 2)
    assert per_head.shape == (2, 1, 2, 1, 1) and per_head[:, 0, :, 0, 0].tolist() == [[1.0, 0.0], [1.0, 0.0]]
    per_layer = bert.get_head_mask(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), 2)
    assert per_layer.shape == (2, 1, 2, 1, 1) and per_layer[:, 0, :, 0, 0].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert bert.get_head_mask(torch.ones(2), 2, is_attention_chunked=True).shape == (2, 1, 2, 1, 1, 1)
    with pytest.raises(ValueError):
        bert.get_head_mask(torch.ones(1, 1, 1), 2)


def test_upstream_bert_warper_runs_through_the_compat_layer(monkeypatch):
    from groundingdino.models.GroundingDINO.bertwarper import BertModelWarper

    bert = BertModel(tiny_bert_config()).eval()
    ensure_bert_compat()  # whatever ran before, start from the patched class ...
    for name in compat.RESTORED_BERT_METHODS:  # ... and remove the methods again: BertModel as transformers 5 ships it
        monkeypatch.delattr(BertModel, name)
    with pytest.raises(AttributeError, match="get_extended_attention_mask"):
        BertModelWarper(bert)
    assert set(ensure_bert_compat()) == set(compat.RESTORED_BERT_METHODS)
    warper = BertModelWarper(bert)
    compat.adapt_bert_calls(warper)
    assert compat.adapt_bert_calls(warper) == ()  # idempotent
    ids = torch.tensor([[2, 9, 10, 5, 3, 0]])
    keep = torch.tensor([[1, 1, 1, 1, 1, 0]])
    try:
        with torch.no_grad():
            ours = warper(input_ids=ids, attention_mask=keep)["last_hidden_state"]
    except Exception as err:  # a future transformers release broke the layer again: say which
        pytest.fail(
            f"groundingdino-py's BertModelWarper no longer runs on transformers {transformers.__version__} "
            f"through cooklab/grounding/groundingdino_compat.py: {err!r}"
        )
    with torch.no_grad():
        native = bert(input_ids=ids, attention_mask=keep).last_hidden_state
    assert torch.allclose(ours[:, :5], native[:, :5], atol=1e-5)
    assert dict(warper.named_parameters()).keys() == dict(bert.named_parameters()).keys()  # checkpoint keys unchanged


class _Embeddings4(torch.nn.Module):
    """BertEmbeddings.forward as transformers 4 to 5.23 spell it."""

    def forward(
        self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, past_key_values_length=0
    ):
        return ("v4", past_key_values_length)


class _Embeddings524(torch.nn.Module):
    """BertEmbeddings.forward as transformers 5.24 spells it."""

    def forward(self, input_ids=None, token_type_ids=None, position_ids=None, inputs_embeds=None, cache_length=0):
        return ("v5.24", cache_length)


class _Encoder524(torch.nn.Module):
    def forward(
        self,
        hidden_states,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        cache=None,
        use_cache=None,
        **kwargs,
    ):
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states)


class _Warper(torch.nn.Module):
    def __init__(self, embeddings, encoder):
        super().__init__()
        self.embeddings, self.encoder = embeddings, encoder


def test_bert_calls_follow_the_installed_signatures_not_a_version_number():
    old = _Warper(_Embeddings4(), _Encoder524())
    assert compat.adapt_bert_calls(old) == ("encoder",)  # v4 embeddings take the v4 keyword: left alone
    assert old.embeddings(input_ids=None, past_key_values_length=3) == ("v4", 3)
    new = _Warper(_Embeddings524(), _Encoder524())
    assert compat.adapt_bert_calls(new) == ("embeddings", "encoder")
    assert new.embeddings(input_ids=None, past_key_values_length=3) == ("v5.24", 3)  # renamed
    h = torch.ones(1, 2, 4)
    out = new.encoder(
        h,
        attention_mask=None,
        head_mask=[None, None],
        past_key_values=None,
        use_cache=False,
        output_attentions=False,
        output_hidden_states=False,
        return_dict=True,
    )
    assert (
        out[0] is h and out.last_hidden_state is h and out.past_key_values is None
    )  # the field names groundingdino reads
    with pytest.raises(compat.BertCompatError, match=f"transformers {transformers.__version__}"):
        new.encoder(
            h, head_mask=[torch.ones(2), None]
        )  # a head mask the installed layers cannot apply: refused, named


def test_an_unknown_keyword_with_a_value_names_the_transformers_version():
    class Embeddings(torch.nn.Module):
        def forward(self, input_ids=None):
            return input_ids

    warper = _Warper(Embeddings(), _Encoder524())
    compat.adapt_bert_calls(warper)
    assert warper.embeddings(input_ids=1, past_key_values_length=0) == 1  # a neutral value is dropped
    with pytest.raises(
        compat.BertCompatError, match=rf"transformers {transformers.__version__}.*past_key_values_length=5"
    ):
        warper.embeddings(input_ids=1, past_key_values_length=5)


# ---------------------------------------------------------------------------
# Original backend: groundingdino-py + segment-anything
# ---------------------------------------------------------------------------

# groundingdino-py's SwinT-OGC settings with fewer layers and queries. hidden_dim stays 256:
# its text position embeddings are hard-coded to 256 features. The Swin-T backbone is the
# smallest the config allows.
TINY_GD = dict(enc_layers=1, dec_layers=2, dim_feedforward=128, num_queries=10)


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(folder)
    bert_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def gd_config(tmp_path_factory):
    text = open(compat.swint_ogc_config()).read()
    text += "".join(f"\n{key} = {value!r}" for key, value in TINY_GD.items())
    path = tmp_path_factory.mktemp("gdcfg") / "tiny_swint_ogc.py"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def gd_model(gd_config, bert_dir):
    torch.manual_seed(0)
    return compat.build_groundingdino(gd_config, bert_dir)


def tiny_segment_anything():
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=SAM_SIDE,
            patch_size=8,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=16,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=16,
            image_embedding_size=(SAM_SIDE // 8, SAM_SIDE // 8),
            input_image_size=(SAM_SIDE, SAM_SIDE),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=16, mlp_dim=32, num_heads=2),
            transformer_dim=16,
            iou_head_depth=2,
            iou_head_hidden_dim=16,
        ),
    ).eval()


@pytest.fixture(scope="module")
def sa_model():
    return tiny_segment_anything()


def original_provider(gd_model, sa_model, **thresholds) -> OriginalGroundedSAM:
    return OriginalGroundedSAM.from_models(
        gd_model,
        sa_model,
        **{"box_threshold": 0.0, "text_threshold": 0.0, "image_size": 64, "max_size": 96, **thresholds},
    )


def test_groundingdino_is_built_to_run_here(gd_model, bert_dir):
    assert gd_model.bert.get_extended_attention_mask.__func__ is BertModel.get_extended_attention_mask
    assert gd_model.tokenizer.convert_tokens_to_ids(["bowl"]) == [WORDS.index("bowl")]  # the local folder's vocabulary
    assert not gd_model.backbone[0].layers[0].use_checkpoint and not gd_model.transformer.encoder.use_transformer_ckpt
    x = torch.rand(3, 64, 96)
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        out = gd_model(x[None], captions=["white bowl."])
    assert out["pred_logits"].shape == (1, TINY_GD["num_queries"], 256) and out["pred_boxes"].shape == (
        1,
        TINY_GD["num_queries"],
        4,
    )
    assert not [w for w in caught if "use_reentrant" in str(w.message)]  # no activation checkpointing at inference


def test_original_output_and_thresholds(gd_model, sa_model, image):
    provider = original_provider(gd_model, sa_model)
    result = provider(image, PHRASE)
    check_result(result, n_queries=TINY_GD["num_queries"])
    assert result.source == "grounded-sam-original"
    assert all("sep" not in label and "cls" not in label and "." not in label for label in result.extra["labels"])
    assert provider.preprocess(image).shape == (3, *detector_input_size(H, W, 64, 96)) == (3, 58, 96)
    assert detector_input_size(600, 800) == (800, 1066) and detector_input_size(500, 2000) == (333, 1332)

    best = float(provider.detect(image, PHRASE).scores.max())
    provider.box_threshold = best
    assert provider(image, PHRASE) is None
    provider.box_threshold, provider.text_threshold = 0.0, 1.0
    assert set(provider.detect(image, PHRASE).labels) == {""} and provider(image, PHRASE) is None


def test_original_sam_gets_the_chosen_box(gd_model, sa_model, image):
    provider = original_provider(gd_model, sa_model)
    calls = []
    handle = capture_kwargs(sa_model.prompt_encoder, calls)
    try:
        result = provider(image, PHRASE)
    finally:
        handle.remove()
    sent = calls[0]["boxes"]
    assert sent.shape == (1, 1, 4) and sent[0, 0].tolist() == pytest.approx(
        sam_scaled_box(result.box, (H, W)), abs=1e-4
    )
    masks, ious = provider.segment(image, result.box)
    assert masks.shape == (3, H, W) and result.extra["mask_index"] == int(ious.argmax())
    assert torch.equal(masks[int(ious.argmax())].float(), result.mask)


def test_original_init_loads_checkpoint_files(gd_model, sa_model, gd_config, bert_dir, image, tmp_path, monkeypatch):
    from segment_anything import sam_model_registry

    monkeypatch.setitem(sam_model_registry, "tiny", lambda checkpoint=None: tiny_segment_anything())
    torch.save(
        {"model": {"module." + k: v for k, v in gd_model.state_dict().items()}}, tmp_path / "gd.pth"
    )  # as saved from DataParallel
    sam_file = copy.deepcopy(sa_model)
    with torch.no_grad():  # make the SAM file differ from a fresh random build, so loading it is visible
        sam_file.mask_decoder.iou_prediction_head.layers[-1].bias.add_(0.5)
    torch.save(sam_file.state_dict(), tmp_path / "sam_tiny.pth")
    args = (str(tmp_path / "sam_tiny.pth"), str(gd_config), str(tmp_path / "gd.pth"), str(bert_dir))
    loaded = OriginalGroundedSAM(
        *args, sam_model_type="tiny", box_threshold=0.0, text_threshold=0.0, device="cpu", image_size=64, max_size=96
    )
    assert loaded.load_report == {"missing": [], "unexpected": []}
    assert torch.equal(
        loaded.sam.mask_decoder.iou_prediction_head.layers[-1].bias,
        sam_file.mask_decoder.iou_prediction_head.layers[-1].bias,
    )
    a, b = loaded(image, PHRASE), original_provider(gd_model, sam_file)(image, PHRASE)
    assert a.box == pytest.approx(b.box) and a.score == pytest.approx(b.score) and torch.equal(a.mask, b.mask)

    with pytest.raises(CheckpointError, match="local folder"):
        OriginalGroundedSAM(*args[:3], "bert-base-uncased", sam_model_type="tiny")
    with pytest.raises(CheckpointError, match="sam_vit_h_4b8939"):
        OriginalGroundedSAM(str(tmp_path / "missing.pth"), *args[1:])
    with pytest.raises(CheckpointError, match="groundingdino_swint_ogc"):
        OriginalGroundedSAM(args[0], args[1], str(tmp_path / "missing.pth"), args[3], sam_model_type="tiny")
    with pytest.raises(ConfigError, match="vit_h"):
        OriginalGroundedSAM(*args, sam_model_type="vit_z")


def test_groundingdino_weights_loading_rules(gd_model, tmp_path):
    model = copy.deepcopy(gd_model)
    key = "feat_map.weight"
    state = {"model": {key: torch.ones_like(model.state_dict()[key])}, "args": argparse.Namespace(lr=1e-4)}
    torch.save(state, tmp_path / "with_args.pth")
    with pytest.raises(CheckpointError, match="weights_only=False"):
        load_groundingdino_weights(model, tmp_path / "with_args.pth")
    with pytest.warns(UserWarning, match="keep their random values"):
        report = load_groundingdino_weights(model, tmp_path / "with_args.pth", weights_only=False)
    assert key not in report["missing"] and torch.equal(model.feat_map.weight, torch.ones_like(model.feat_map.weight))
    torch.save({"something.else": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="none of its"):
        load_groundingdino_weights(model, tmp_path / "other.pth")
