"""Tiny random GroundingDINO and SAM, built in memory, for tests and offline notebooks.

Like ``cooklab.models.tiny_sd``: the real transformers classes from small configs, no file
or network. Their boxes and masks are arbitrary (random weights); every shape and code path
is the real one.
"""

from __future__ import annotations

import torch

SPECIAL_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "."]


def tiny_detector(words, seed: int = 0, num_queries: int = 10):
    """(GroundingDinoForObjectDetection, GroundingDinoProcessor): 4-stage Swin of width 16, 2-layer BERT, ``num_queries`` boxes.

    ``words``: the vocabulary the in-memory BERT tokenizer knows (e.g. the container words).
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
    bert = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                      max_position_embeddings=64)
    swin = SwinConfig(image_size=64, embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4, out_indices=[2, 3, 4])
    config = GroundingDinoConfig(backbone_config=swin, text_config=bert, d_model=64, encoder_layers=1, decoder_layers=2,
                                 encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
                                 num_queries=num_queries, max_text_len=32, encoder_n_points=2, decoder_n_points=2)
    processor = GroundingDinoProcessor(image_processor=GroundingDinoImageProcessor(size={"shortest_edge": 64, "longest_edge": 96}),
                                       tokenizer=BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GroundingDinoForObjectDetection(config).eval()
    return model, processor


def tiny_segmenter(side: int = 64, seed: int = 0):
    """(SamModel, SamProcessor): a 2-layer ViT on ``side`` x ``side`` inputs with 8x8 patches."""
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
        vision_config=SamVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=side, patch_size=8,
                                      output_channels=16, mlp_dim=64, global_attn_indexes=[1], window_size=4, num_pos_feats=8),
        prompt_encoder_config=SamPromptEncoderConfig(hidden_size=16, image_size=side, patch_size=8, mask_input_channels=4),
        mask_decoder_config=SamMaskDecoderConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2, mlp_dim=32,
                                                 iou_head_hidden_dim=16),
    )
    processor = SamProcessor(image_processor=SamImageProcessor(size={"longest_edge": side}, pad_size={"height": side, "width": side}))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = SamModel(config).eval()
    return model, processor
