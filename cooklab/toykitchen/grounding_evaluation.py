"""How well a mask provider finds the Toy Kitchen container (``cooklab toykitchen evaluate-grounding``).

``evaluate_grounding`` measures a provider (e.g. a ``GroundedSAM``) against the renderer's exact boxes and masks
on held-out scenes and against the oracle's container mask on frames of the toy SD model (``generated_frames``);
``evaluate_all`` compares the shipped toy pair with the random tiny pair and writes the result.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..fileio import atomic_write
from ..models.toy import IMAGE_SIZE, TOY_DIR
from .captions import CONTAINER_WORDS, WORDS
from .grounding_data import render_grounding
from .oracle import container_mask, iou
from .training_loop import machine
from .world import CONTAINER_COLOURS


def box_iou(a, b) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def heldout_grounding_scenes(n: int = 200, seed: int = 1):
    """``n`` scenes of the held-out captions (``evaluate.heldout_captions``: triples no training scene shows)."""
    from .evaluate import heldout_captions, heldout_scene

    rng = np.random.default_rng([seed, 15])
    return [heldout_scene(e, rng) for _, e in heldout_captions(n, seed)]


def _phrase(colour: str, kind: str, with_colour: bool) -> str:
    return f"{colour} {CONTAINER_WORDS[kind]}" if with_colour else CONTAINER_WORDS[kind]


def evaluate_grounding(provider, n: int = 200, seed: int = 1, frames=None) -> dict[str, Any]:
    """How well ``provider`` (``(image, phrase) -> MaskResult | None``, e.g. a ``GroundedSAM``) finds the container.

    On ``n`` held-out rendered scenes (``heldout_grounding_scenes(n, seed)``), asked once with the colour and kind
    ("blue pot") and once with the kind alone ("pot", Recipe Diffusion's ``Step.container``):
    ``detection_rate`` (a result at all), ``box_iou`` and ``mask_iou`` (against the renderer's exact box and container
    mask, 0 for a miss), and ``wrong_colour_rate``: how often a phrase naming another colour ("pink pot" for a blue
    pot) still returns a result. ``frames``: generated frames and their container kinds (``generated_frames``), asked
    for their kind; ``generated.mask_iou`` is the IoU with ``oracle.container_mask`` of the frame (0 for a miss;
    frames where the oracle sees no container are left out).
    """
    scenes = heldout_grounding_scenes(n, seed)
    data = render_grounding(scenes)
    rng = np.random.default_rng([seed, 16])
    result: dict[str, Any] = {"n": n, "seed": seed}
    for name, with_colour in (("colour_and_kind", True), ("kind", False)):
        found, boxes, masks = 0, [], []
        for k, s in enumerate(scenes):
            r = provider(data.images[k].numpy(), _phrase(s.colour, s.container, with_colour))
            found += r is not None
            boxes.append(box_iou(r.box, data.boxes[k].tolist()) if r is not None else 0.0)
            masks.append(iou(r.mask.numpy() > 0.5, data.masks[k].numpy()) if r is not None else 0.0)
        result[name] = {
            "detection_rate": found / n,
            "box_iou": float(np.mean(boxes)),
            "mask_iou": float(np.mean(masks)),
        }
    wrong = 0
    for k, s in enumerate(scenes):
        other = [c for c in CONTAINER_COLOURS if c != s.colour][rng.integers(len(CONTAINER_COLOURS) - 1)]
        wrong += provider(data.images[k].numpy(), _phrase(other, s.container, True)) is not None
    result["wrong_colour_rate"] = wrong / n
    if frames is not None:
        scores, found = [], 0
        for image, kind in frames:
            truth = container_mask(image)
            if not truth.any():
                continue
            r = provider(image, CONTAINER_WORDS[kind])
            found += r is not None
            scores.append(iou(r.mask.numpy() > 0.5, truth) if r is not None else 0.0)
        result["generated"] = {
            "frames": len(frames),
            "with_container": len(scores),
            "detection_rate": found / max(len(scores), 1),
            "mask_iou": float(np.mean(scores)) if scores else 0.0,
        }
    return result


def generated_frames(n: int = 40, seed: int = 1, steps: int = 20) -> list[tuple[np.ndarray, str]]:
    """``n`` frames of the shipped toy SD model ([64, 64, 3] uint8) for the held-out captions, with their container
    kinds.

    DDIM, ``steps`` steps, CFG 3; batch ``k`` of 10 captions uses ``torch.Generator().manual_seed(seed + 10 k)``.
    """
    from ..models.toy import toy_sd
    from .evaluate import generate, heldout_captions

    items = heldout_captions(n, seed)
    pipe = toy_sd()
    images = np.concatenate(
        [
            generate(pipe, [c for c, _ in items[s : s + 10]], torch.Generator().manual_seed(seed + s), steps)
            for s in range(0, n, 10)
        ]
    )
    return [(image, e.container) for image, (_, e) in zip(images, items)]


def evaluate_all(out: Path | None = None, n: int = 200, seed: int = 1, generated: int = 40) -> dict[str, Any]:
    """``evaluate_grounding`` of the shipped toy pair (``GroundedSAM.toy()``) and of the random ``tiny_detector`` /
    ``tiny_segmenter`` (the floor, same thresholds), on the same scenes and ``generated`` toy SD frames, written to
    ``data/toykitchen/logs/grounding_eval.json`` (or ``out``)."""
    from ..grounding.grounded_sam import GroundedSAM
    from ..grounding.tiny import tiny_detector, tiny_segmenter

    torch.set_num_threads(1)
    start = time.perf_counter()
    frames = generated_frames(generated, seed) if generated else None
    toy = GroundedSAM.toy()
    trained = evaluate_grounding(toy, n, seed, frames)
    det, det_proc = tiny_detector(WORDS)
    sam, sam_proc = tiny_segmenter(IMAGE_SIZE)
    random = evaluate_grounding(
        GroundedSAM.from_models(
            det, det_proc, sam, sam_proc, box_threshold=toy.box_threshold, text_threshold=toy.text_threshold
        ),
        n,
        seed,
        frames,
    )
    result = {
        "toy_grounded_sam": trained,
        "random_tiny": random,
        "seconds": round(time.perf_counter() - start, 1),
        "generation": {"model": "toy_sd", "steps": 20, "guidance": 3.0} if generated else None,
        "thresholds": {"box": toy.box_threshold, "text": toy.text_threshold},
        "machine": machine(torch.device("cpu")),
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "command": f"cooklab toykitchen evaluate-grounding --n {n} --seed {seed} --generated {generated}",
    }
    atomic_write(out or TOY_DIR / "logs" / "grounding_eval.json", json.dumps(result, indent=1))
    return result
