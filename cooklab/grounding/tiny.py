"""Small GroundingDINO and SAM from configs, built in memory, for tests, offline notebooks and the Toy Kitchen.

Like ``cooklab.models.tiny_sd``: the real transformers classes from small configs, no file
or network. ``detector_from_configs`` / ``segmenter_from_configs`` build any such pair (the Toy
Kitchen's trained pair in ``cooklab.toykitchen.grounding_training`` starts from them); ``tiny_detector`` /
``tiny_segmenter`` are the smallest, with random weights: their boxes and masks are arbitrary,
every shape and code path is the real one.
"""

from __future__ import annotations

import torch

SPECIAL_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."]


def detector_from_configs(
    words, swin: dict, bert: dict, dino: dict, image_size: int, longest_edge: int | None = None, seed: int = 0
):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor) with random weights drawn after
    ``torch.manual_seed(seed)``.

    ``words``: the vocabulary of the in-memory BERT tokenizer (``SPECIAL_WORDS`` first, then the words
    sorted); ``swin`` / ``bert`` / ``dino``: keyword arguments of ``SwinConfig``, ``BertConfig`` (without
    ``vocab_size``) and ``GroundingDinoConfig``; pictures are resized to ``image_size`` on the shortest edge
    (``longest_edge`` at most on the other; default ``image_size``).
    GroundingDINO needs ``decoder_layers >= 2`` and ``d_model >= 64`` (its GroupNorm(32, d_model)).
    """
    from transformers import (
        BertConfig,
        BertTokenizer,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    vocab = SPECIAL_WORDS + sorted(set(words) - set(SPECIAL_WORDS))
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(**swin), text_config=BertConfig(vocab_size=len(vocab), **bert), **dino
    )
    size = {"shortest_edge": image_size, "longest_edge": longest_edge or image_size}
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size=size),
        tokenizer=BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}),
    )
    torch.manual_seed(seed)
    return GroundingDinoForObjectDetection(config), processor


def segmenter_from_configs(vision: dict, prompt: dict, decoder: dict, side: int, seed: int = 0):
    """(SamModel, SamProcessor) with random weights drawn after ``torch.manual_seed(seed)``, for ``side`` x ``side``
    inputs.

    ``vision`` / ``prompt`` / ``decoder``: keyword arguments of ``SamVisionConfig``,
    ``SamPromptEncoderConfig`` and ``SamMaskDecoderConfig``.
    """
    from transformers import (
        SamConfig,
        SamImageProcessor,
        SamMaskDecoderConfig,
        SamModel,
        SamProcessor,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )

    config = SamConfig(
        vision_config=SamVisionConfig(**vision),
        prompt_encoder_config=SamPromptEncoderConfig(**prompt),
        mask_decoder_config=SamMaskDecoderConfig(**decoder),
    )
    processor = SamProcessor(
        image_processor=SamImageProcessor(size={"longest_edge": side}, pad_size={"height": side, "width": side})
    )
    torch.manual_seed(seed)
    return SamModel(config), processor


def tiny_detector(words, seed: int = 0, num_queries: int = 10):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor): 4-stage Swin of width 16, 2-layer BERT,
    ``num_queries`` boxes.

    ``words``: the vocabulary the in-memory BERT tokenizer knows (e.g. the container words).
    Pictures are resized to 64 on the shortest edge (96 at most on the longest). The global
    random state is left as it was.
    """
    bert = dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64
    )
    swin = dict(
        image_size=64, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, out_indices=[2, 3, 4]
    )
    dino = dict(
        d_model=64,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=num_queries,
        max_text_len=32,
        encoder_n_points=2,
        decoder_n_points=2,
    )
    with torch.random.fork_rng(devices=[]):
        model, processor = detector_from_configs(words, swin, bert, dino, 64, longest_edge=96, seed=seed)
    return model.eval(), processor


def tiny_segmenter(side: int = 64, seed: int = 0):
    """(SamModel, SamProcessor): a 2-layer ViT on ``side`` x ``side`` inputs with 8x8 patches; the global random state
    is kept."""
    vision = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=side,
        patch_size=8,
        output_channels=16,
        mlp_dim=64,
        global_attn_indexes=[1],
        window_size=4,
        num_pos_feats=8,
    )
    prompt = dict(hidden_size=16, image_size=side, patch_size=8, mask_input_channels=4)
    decoder = dict(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32, iou_head_hidden_dim=16)
    with torch.random.fork_rng(devices=[]):
        model, processor = segmenter_from_configs(vision, prompt, decoder, side, seed)
    return model.eval(), processor
