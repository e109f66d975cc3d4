"""The ``clip`` stage of ``cooklab toykitchen train``: the Toy Kitchen CLIP, the metrics' backbone.

Image and text towers together, CLIP's symmetric InfoNCE with a learned temperature (``clip.contrastive_loss``),
on renders and on frames the toy pipelines generated, captioned by what the oracle reads in them
(``generated.py``; the pipelines of the ``sd`` / ``flux`` stages when ``<out>`` holds them, else the
shipped ones). Saved to ``<out>/clip`` with its held-out retrieval accuracy.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from ..backbones.clip import clip_backbone
from ..models.toy import TOY_DIR, toy_flux, toy_sd
from . import architectures as toy
from .training_captions import BatchTokenizer, sample_caption_pairs, sample_captions
from .training_config import TrainConfig
from .training_loop import TrainingLoop, autocast, write_log
from .worlds import get_world, vocabulary


def _generators(out: Path, device: torch.device) -> tuple[dict, dict[str, str]]:
    """The toy pipelines that draw the CLIP stage's generated frames: ``<out>/sd`` and ``<out>/flux`` when this output
    folder holds them (trained by an earlier stage), else the shipped ones (``data/toykitchen``)."""
    folders = {
        name: out / name if (out / name / "model_index.json").is_file() else TOY_DIR / name for name in ("sd", "flux")
    }
    pipes = {"sd": toy_sd(folders["sd"], device=device), "flux": toy_flux(folders["flux"], device=device)}
    return pipes, {k: str(v) for k, v in folders.items()}


def train_clip(cfg: TrainConfig, out: Path, device: torch.device, data) -> None:
    """The Toy Kitchen CLIP: image and text towers trained together on (picture, fresh caption) pairs.

    Pictures: ``data``'s renders and, for a share ``cfg.clip_generated_share`` of every batch,
    frames the toy pipelines generated, captioned by what the oracle reads in them (``generated.py``;
    ``cfg.clip_generated`` frames per pipeline, cached in ``<out>/work/clip_generated``).
    Loss: ``clip.contrastive_loss`` (symmetric InfoNCE, learned temperature) over batches of
    ``cfg.clip_batch`` pairs, with one hard-negative caption per picture when ``cfg.clip_hard_negatives``
    (``clip.caption_pair``: the same template with one ingredient or the colour changed).
    No caption dropout (an empty caption matches every picture) and no EMA.
    """
    from .clip_model import build_clip, contrastive_loss, heldout_retrieval, pixels, save_clip, trim
    from .generated import GeneratedConfig, generate_corpus

    sources = [(data, torch.from_numpy(data.images))]  # (dataset, [n, 64, 64, 3] uint8)
    shares = [1.0]
    extra = {}
    if cfg.clip_generated > 0:
        pipes, folders = _generators(out, device)
        gcfg = GeneratedConfig(frames=cfg.clip_generated, seed=cfg.seed, num_inference_steps=cfg.clip_generation_steps)
        t = time.perf_counter()
        corpus, stats = generate_corpus(pipes, gcfg, out / "work" / "clip_generated")
        print(f"  generated frames: {stats} ({time.perf_counter() - t:.0f} s)", flush=True)
        extra["generated"] = dict(config=dataclasses.asdict(gcfg), pipelines=folders, counts=stats)
        if len(corpus):
            sources.append((corpus, torch.from_numpy(corpus.images)))
            shares = [1 - cfg.clip_generated_share, cfg.clip_generated_share]
    counts = [round(cfg.clip_batch * s) for s in shares]
    counts[0] = cfg.clip_batch - sum(counts[1:])  # pictures per batch from each source

    torch.manual_seed(cfg.seed + 3)
    tokenizer = toy.clip_tokenizer(vocabulary(get_world(cfg.world)))  # the run's world's words
    model = build_clip(tokenizer).to(device).train()
    tokens = BatchTokenizer(tokenizer)
    loop = TrainingLoop(model.parameters(), cfg, cfg.clip_steps, cfg.clip_lr, ema=False)
    gen = torch.Generator().manual_seed(cfg.seed + 3)
    rng = np.random.default_rng(cfg.seed + 3)
    step = 0
    for step in range(cfg.clip_steps):
        batch, texts, negatives = [], [], []
        for (dataset, images), count in zip(sources, counts):
            idx = torch.randint(len(images), (count,), generator=gen)
            batch.append(images[idx])
            if cfg.clip_hard_negatives:
                pos, neg = sample_caption_pairs(dataset, idx, rng)
                texts, negatives = texts + pos, negatives + neg
            else:
                texts += sample_captions(dataset, idx, rng, dropout=0.0)
        x = pixels(torch.cat(batch).to(device))  # [B, 3, 64, 64]
        ids = trim(tokens(texts, device), tokenizer.eos_token_id)  # [B, L <= 32]
        neg_ids = trim(tokens(negatives, device), tokenizer.eos_token_id) if negatives else None  # [B, L' <= 32]
        with autocast(device):
            loss = contrastive_loss(model, x, ids, neg_ids)
        if not loop.step(loss.float(), step):
            break
    model.eval().cpu()
    retrieval = heldout_retrieval(clip_backbone(model, tokenizer=tokenizer))
    print(f"  held-out retrieval: {retrieval}", flush=True)
    extra.update(
        retrieval=retrieval,
        temperature=float(1 / model.logit_scale.detach().exp()),
        parameters=sum(p.numel() for p in model.parameters()),
    )
    write_log(out, "clip", cfg, loop, step + 1, device, extra)
    save_clip(model, tokenizer, out / "clip")
