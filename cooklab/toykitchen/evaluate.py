"""Held-out compositional accuracy of a Toy Kitchen model, read by the palette oracle.

``dataset.HELD_OUT`` lists (colour, container, ingredient) triples that no training picture shows
together. A model that composes what it reads should still draw "a pink pan with diced carrots"
with a pink container and carrots in it; one that recalls training pictures will drift to a
colour or a food it saw with that container. ``heldout_accuracy`` builds captions naming those
triples (each with a random state the ingredient can be in), generates one picture per caption
and checks each with ``oracle.check_frame``:

* ``colour`` -- the detected container colour is the one named;
* ``ingredient`` -- the named ingredient is present;
* ``colour_and_ingredient`` -- both;
* ``container`` -- the detected container kind (``oracle.container_kind``) is the one named;
* ``state`` -- the oracle's state guess matches (approximate: ~90 % right on rendered truth).

Run it for an untrained pipeline too (``cooklab.models.tiny_sd()``) to see the floor.

``autoencoder_ceiling`` measures the limit the autoencoder sets: the same oracle on rendered scenes of
the held-out captions passed through the autoencoder alone (encode, take the posterior mean, decode). A
diffusion model draws in the autoencoder's latent space, so no denoiser can show food its decoder loses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import FluxPipeline

from ..models.toy import IMAGE_SIZE, T5_MAX_LENGTH
from ..versions import package_versions
from .captions import CONTAINER_WORDS, PLURAL, STATE_WORDS
from .dataset import HELD_OUT
from .oracle import check_frame
from .recipes import Expectation
from .world import ALLOWED_STATES, PATTERNS, TABLES, Ingredient, Scene, random_position

METRICS = ("colour", "ingredient", "colour_and_ingredient", "container", "state")


def _hits(check) -> dict[str, bool]:
    """One ``oracle.FrameCheck`` as a hit or miss per metric of ``METRICS``."""
    return {
        "colour": check.colour_ok,
        "ingredient": bool(check.ingredient_ok),
        "colour_and_ingredient": check.colour_ok and bool(check.ingredient_ok),
        "container": check.container_ok,
        "state": bool(check.state_ok),
    }


def heldout_captions(n: int = 200, seed: int = 0) -> list[tuple[str, Expectation]]:
    """``n`` captions "a {colour} {container} with {state} {ingredients}" cycling through the sorted ``HELD_OUT``
    triples, each with a state drawn (seeded) from those the ingredient can be in, and what each must show."""
    rng = np.random.default_rng(seed)
    triples = sorted(HELD_OUT)  # a frozenset has no stable order: sort it
    out = []
    for i in range(n):
        colour, container, ingredient = triples[i % len(triples)]
        state = str(rng.choice(ALLOWED_STATES[ingredient]))
        caption = f"a {colour} {CONTAINER_WORDS[container]} with {STATE_WORDS[state]} {PLURAL[ingredient]}"
        out.append((caption, Expectation(container, colour, ingredient, state)))
    return out


def heldout_scene(expectation, rng: np.random.Generator) -> Scene:
    """A scene showing exactly what a held-out caption says (container, colour, one ingredient in its state);
    pattern, table, position and the layout of the food drawn from ``rng``."""
    e = expectation
    return Scene(
        container=e.container,
        colour=e.colour,
        pattern=PATTERNS[rng.integers(len(PATTERNS))],
        table=list(TABLES)[rng.integers(len(TABLES))],
        position=random_position(rng),
        ingredients=(Ingredient(e.ingredient, e.state),),
        layout_seed=int(rng.integers(2**31)),
    )


def generate(
    pipe, prompts: list[str], generator: torch.Generator, num_inference_steps: int = 30, guidance: float = 3.0
) -> np.ndarray:
    """[b, 64, 64, 3] uint8 pictures of ``prompts`` from an SD-style or a Flux-style toy pipeline.

    Flux (no guidance embedding): true CFG with empty negative prompts when ``guidance`` > 1;
    SD: ``guidance_scale``. A guidance of 1.0 turns classifier-free guidance off for both.
    """
    common = dict(
        num_inference_steps=num_inference_steps,
        generator=generator,
        height=IMAGE_SIZE,
        width=IMAGE_SIZE,
        output_type="np",
    )
    if isinstance(pipe, FluxPipeline):
        out = pipe(
            prompt=prompts,
            negative_prompt=[""] * len(prompts),
            true_cfg_scale=guidance,
            max_sequence_length=T5_MAX_LENGTH,
            **common,
        )
    else:
        out = pipe(prompt=prompts, guidance_scale=guidance, **common)
    images = np.asarray(out.images)  # [b, H, W, 3] float in [0, 1]
    return (images * 255).round().clip(0, 255).astype(np.uint8)


def heldout_accuracy(
    pipe,
    n: int = 200,
    seed: int = 0,
    num_inference_steps: int = 30,
    guidance: float = 3.0,
    batch: int = 25,
    return_images: bool = False,
) -> dict[str, Any]:
    """Generate one picture per held-out caption and read them with the oracle.

    Batch ``k`` (``batch`` captions) is generated with ``torch.Generator().manual_seed(seed + k)``.
    Returns ``{"n", "seed", "steps", "guidance", "pipeline", "sampler", "counts", "fractions", "records"}``:
    ``counts`` / ``fractions`` hold the five ``METRICS``; ``records`` one dict per caption; with
    ``return_images`` also ``"images"``: [n, 64, 64, 3] uint8 (to re-read them without generating again).
    """
    items = heldout_captions(n, seed)
    counts = dict.fromkeys(METRICS, 0)
    records, kept = [], []
    for k, start in enumerate(range(0, n, batch)):
        chunk = items[start : start + batch]
        images = generate(
            pipe, [c for c, _ in chunk], torch.Generator().manual_seed(seed + k), num_inference_steps, guidance
        )
        kept.append(images)
        for image, (caption, expectation) in zip(images, chunk):
            check = check_frame(image, expectation)
            hits = _hits(check)
            for name, hit in hits.items():
                counts[name] += int(hit)
            records.append(
                {
                    "caption": caption,
                    "detected_colour": check.colour,
                    "colour_fraction": round(check.fraction, 4),
                    "detected_container": check.container,
                    "detected_state": check.state,
                    **hits,
                }
            )
    result = {
        "n": n,
        "seed": seed,
        "steps": num_inference_steps,
        "guidance": guidance,
        "pipeline": type(pipe).__name__,
        "sampler": type(pipe.scheduler).__name__,
        "counts": counts,
        "fractions": {name: counts[name] / n if n else 0.0 for name in METRICS},
        "records": records,
    }
    if return_images:
        result["images"] = np.concatenate(kept) if kept else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    return result


@torch.no_grad()
def autoencoder_ceiling(vae, n: int = 200, seed: int = 0, batch: int = 50) -> dict[str, Any]:
    """The oracle on autoencoder reconstructions of the held-out scenes: the accuracy a denoiser cannot exceed.

    Scene ``i`` shows what held-out caption ``i`` says (``heldout_captions(n, seed)``, one ingredient in its
    state; pattern, table, position and food layout from ``heldout_scene`` with a generator seeded
    ``seed``). Each render ``x`` [64, 64, 3] goes through ``D(mode(q(z | x)))`` and ``oracle.check_frame``
    reads the reconstruction, as it reads generated pictures. Returns
    ``{"n", "seed", "latent_shape", "counts", "fractions", "renders", "by_ingredient", "by_state", "records"}``:
    ``counts`` / ``fractions`` of the five ``METRICS`` on the reconstructions, ``renders`` the same counts on
    the renders themselves (the oracle's own ceiling, 100 % when it reads truth right), ``by_ingredient`` /
    ``by_state`` ``{name: [colour and ingredient hits, pictures]}``, ``records`` one dict per scene.
    """
    from .world import render

    items = heldout_captions(n, seed)
    rng = np.random.default_rng(seed)
    renders = np.stack(
        [np.asarray(render(heldout_scene(e, rng), IMAGE_SIZE).image) for _, e in items]
    )  # [n, 64, 64, 3]
    device, dtype = vae.device, vae.dtype
    recon, latent_shape = [], None
    for start in range(0, n, batch):
        x = (
            torch.from_numpy(renders[start : start + batch]).permute(0, 3, 1, 2).to(device, dtype) / 127.5 - 1
        )  # [b, 3, 64, 64]
        z = vae.encode(x).latent_dist.mode()  # [b, C, 16, 16]
        latent_shape = list(z.shape[1:])
        y = vae.decode(z).sample.float().clamp(-1, 1)  # [b, 3, 64, 64]
        recon.append(((y + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    recon = np.concatenate(recon) if recon else renders[:0]
    counts, truth = dict.fromkeys(METRICS, 0), dict.fromkeys(METRICS, 0)
    by_ingredient: dict[str, list[int]] = {}
    by_state: dict[str, list[int]] = {}
    records = []
    for (caption, e), image, original in zip(items, recon, renders):
        for tally, picture in ((truth, original), (counts, image)):
            check = check_frame(picture, e)
            hits = _hits(check)
            for name, hit in hits.items():
                tally[name] += int(hit)
        for table, key in ((by_ingredient, e.ingredient), (by_state, e.state)):
            row = table.setdefault(key, [0, 0])
            row[0] += int(hits["colour_and_ingredient"])
            row[1] += 1
        records.append(
            {
                "caption": caption,
                "detected_colour": check.colour,
                "detected_container": check.container,
                "detected_state": check.state,
                **hits,
            }
        )
    return {
        "n": n,
        "seed": seed,
        "latent_shape": latent_shape,
        "counts": counts,
        "fractions": {name: counts[name] / n if n else 0.0 for name in METRICS},
        "renders": truth,
        "by_ingredient": dict(sorted(by_ingredient.items())),
        "by_state": dict(sorted(by_state.items())),
        "records": records,
    }


def run_all(
    out=None,
    n: int = 200,
    seed: int = 0,
    num_inference_steps: int = 30,
    guidances=(3.0, 1.0),
    batch: int = 25,
    threads: int | None = None,
    images_dir=None,
) -> dict[str, Any]:
    """``heldout_accuracy`` of the shipped SD and Flux toy models and an untrained ``tiny_sd()`` at each guidance.

    Writes the results (with sampler, steps, guidance, n, seed, versions, date) as JSON to ``out``
    (default ``data/toykitchen/logs/heldout_eval.json``) after every run, atomically; with ``images_dir``
    the pictures of each run go there as ``<run>.npy``.
    """
    import datetime
    import json
    import time

    from ..fileio import atomic_write
    from ..models import tiny_sd
    from ..models.toy import TOY_DIR, toy_flux, toy_sd

    if threads:
        torch.set_num_threads(threads)
    out = TOY_DIR / "logs" / "heldout_eval.json" if out is None else out
    result: dict[str, Any] = {
        "what": "held-out (colour, container, ingredient) captions, one picture each, "
        "read by cooklab.toykitchen.oracle",
        "n": n,
        "seed": seed,
        "steps": num_inference_steps,
        "batch": batch,
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "versions": package_versions("cooklab", "torch", "diffusers", "transformers", "numpy"),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "runs": {},
    }
    models = {"sd": toy_sd, "flux": toy_flux, "untrained_tiny_sd": tiny_sd}
    for name, load in models.items():
        pipe = load()
        pipe.set_progress_bar_config(disable=True)
        for guidance in guidances:
            start = time.perf_counter()
            run = heldout_accuracy(
                pipe,
                n=n,
                seed=seed,
                num_inference_steps=num_inference_steps,
                guidance=guidance,
                batch=batch,
                return_images=True,
            )
            images = run.pop("images")
            if images_dir is not None:
                Path(images_dir).mkdir(parents=True, exist_ok=True)
                np.save(Path(images_dir) / f"{name}@cfg{guidance:g}.npy", images)
            run["seconds"] = round(time.perf_counter() - start, 1)
            result["runs"][f"{name}@cfg{guidance:g}"] = run
            print(f"{name} guidance {guidance:g}: {run['counts']} of {n} ({run['seconds']} s)", flush=True)
            atomic_write(out, json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":  # python -m cooklab.toykitchen.evaluate [threads [images_dir]]
    import sys

    run_all(
        threads=int(sys.argv[1]) if len(sys.argv) > 1 else None, images_dir=sys.argv[2] if len(sys.argv) > 2 else None
    )
