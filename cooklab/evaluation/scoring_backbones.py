"""The backbones an evaluation's metrics read, by name: ``"toy"`` or a hub id / folder per metric, each loaded once.

A metric's backbone is ``EvalConfig.backbone_for(metric)``: its ``backbones:`` entry, else the
config's ``clip:`` or ``dino:`` (by ``cooklab.metrics.BACKBONE_KIND``). ``"toy"`` is the Toy
Kitchen CLIP (``cooklab.models.toy_clip``) for a CLIP metric and its vision tower
(``cooklab.models.toy_dino``, not DINOv2) for a DINOv2 metric; anything else is loaded with
``cooklab.backbones.clip_backbone`` / ``dino_backbone`` (a ``CheckpointError`` naming the fix when
it cannot load).
"""

from __future__ import annotations

from .config import EvalConfig

__all__ = ["load_backbone", "metric_backbones"]


def load_backbone(kind: str, source: str, device=None):
    """The ``kind`` (``"clip"`` or ``"dino"``) backbone named ``source`` (``"toy"``, a hub id or a folder)."""
    if source == "toy":
        from ..models import toy_clip, toy_dino

        return (toy_clip if kind == "clip" else toy_dino)(device=device)
    from ..backbones import clip_backbone, dino_backbone

    return (clip_backbone if kind == "clip" else dino_backbone)(source, device=device)


def metric_backbones(config: EvalConfig, metrics, device=None) -> dict:
    """``{metric: backbone}`` for the metrics among ``metrics`` that read a CLIP or DINOv2, each source loaded once."""
    from ..metrics import BACKBONE_KIND

    loaded: dict[tuple[str, str], object] = {}  # (kind, source) -> backbone
    out = {}
    for metric in metrics:
        if metric not in BACKBONE_KIND:
            continue
        key = (BACKBONE_KIND[metric], config.backbone_for(metric))
        if key not in loaded:
            loaded[key] = load_backbone(*key, device=device)
        out[metric] = loaded[key]
    return out
