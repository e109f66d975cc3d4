"""Benchmark: do word heat maps point at the object the word names? Toy Kitchen pictures against the oracle's masks.

For each toy model (``toy_sd`` through ``cooklab.RecipeDiffusion``, ``toy_flux`` through ``cooklab.CookAnything``;
64 x 64, ``--steps`` denoising steps, classifier-free guidance ``--guidance``, the settings of
``cooklab.named_runs.toy_call``), ``--n`` pictures are drawn: the frames (SD) or the steps' regions (Flux) of
the toy recipes ``random_toy_recipe(seed + k)`` (4 steps each), generated under ``cooklab.trace`` (every
cross-attention layer of the U-Net; every joint-attention layer of the Flux transformer; every denoising step).

In each picture the words are scored against the masks the oracle reads **from that picture**
(``cooklab.toykitchen.oracle``): the container word of the step's text ("pot", "cutting board") against
``container_mask``, each ingredient word the text names ("carrots") against ``food_mask`` of that ingredient, and
as a control the step's verb (its first word, "place", "add": no object) against the container mask.
A word whose object the oracle does not find there (no container colour; fewer food pixels than
``min_ingredient_pixels``) is left out and counted. A word's map is ``cooklab.instrument.word_maps.word_map``
(the word's tokens summed, averaged over the chosen layers and steps with equal weights, bilinearly upsampled to
64 x 64): renormalised over the prompt's words (start/end tokens excluded) and as the raw attention mass; for
Flux also ConceptAttention's output-space map and the step's whole-text map (``Trace.text_image_map``, no word at
all). Scores (``cooklab.metrics.attention_segmentation``): IoU at the mask's area, IoU at 0.3 / 0.4 / 0.5 of the
maximum (DAAM's thresholds), AUROC; always next to the **centre prior** (a centred Gaussian, sigma a quarter of
the side, no model), scored on the same words. Reported as mean and standard error over the scored words, for all
layers and steps, per layer group (SD down / mid / up; Flux double / single) and per third of the denoising steps
(early / middle / late).

**Position effects.** For every token of every prompt (start/end tokens included), the AUROC of its own map
(raw mass, all layers and steps) against the picture's container mask, averaged by the token's position in the
prompt: a map decided by the word gives the container word high values and the other words lower ones wherever
they sit; a map decided by the position gives the same value to every token at a position, whatever the word.

Writes ``--out`` (JSON) and the tables into ``--docs`` between the markers of ``docs/attention_maps.md``.

    python benchmarks/attention_segmentation.py            # N = 20 per model, 30 steps, CFG 3 (about 2 min, 2 CPUs)
    python benchmarks/attention_segmentation.py --quick    # N = 4, 10 steps: a check of the script
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere in the checkout

import argparse
import re
import statistics
import time
from collections import defaultdict

import numpy as np
import torch
import torch.nn.functional as F

import cooklab
from benchmarks.common import write_json  # noqa: E402
from cooklab.instrument.word_maps import token_maps, word_map
from cooklab.metrics.attention_segmentation import CENTRE_PRIOR_SIGMA, centre_prior, segmentation_scores
from cooklab.named_runs import toy_call
from cooklab.runs import load_pipeline
from cooklab.toykitchen import oracle
from cooklab.toykitchen.captions import CONTAINER_WORDS, PLURAL
from cooklab.toykitchen.recipes import random_toy_recipe

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"toy SD": "recipe-diffusion", "toy Flux": "cookanything"}
LAYER_GROUPS = {"recipe-diffusion": ("down", "mid", "up"), "cookanything": ("double", "single")}
CAPTURE = {
    "recipe-diffusion": ["cross_attention"],
    "cookanything": ["text_token_attention", "concept_attention", "text_image_attention"],
}
RECIPE_STEPS = 4
MARK_BEGIN = "<!-- attention segmentation tables: written by benchmarks/attention_segmentation.py -->"
MARK_END = "<!-- end of attention segmentation tables -->"
SCORE_KEYS = ("iou_area", "iou@0.3", "iou@0.4", "iou@0.5", "auroc")


def word_in(tokens_text: str, candidates) -> str | None:
    """The first of ``candidates`` that is a whole word (or phrase) of ``tokens_text`` (lower case), else None."""
    for word in candidates:
        if re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", tokens_text):
            return word
    return None


def truths(image: np.ndarray, text: str, scene) -> dict[str, tuple[str, str, np.ndarray | None]]:
    """{"container" / "control" / ingredient name: (kind, the word in ``text``, the oracle's mask or None)}.

    The control is the step's first word, its verb ("place", "add"), scored against the container mask: a word
    that names no object, so a map that scores it as well as the container word is not telling the words apart.
    """
    reading = oracle.read(image)
    low = text.lower()
    found = {}
    container = word_in(low, [CONTAINER_WORDS[scene.container]])
    box = reading.mask if reading.mask.any() else None
    if container is not None:
        found["container"] = ("container", container, box)
    found["control"] = ("control: the verb vs the container", low.split()[0], box)  # "add", "place": not an object
    for ing in scene.ingredients:
        word = word_in(low, [PLURAL[ing.name], ing.name])
        if word is None:
            continue
        mask = oracle.food_mask(reading, ing.name)
        enough = mask.sum() >= oracle.min_ingredient_pixels(mask.shape)
        found[ing.name] = ("ingredient", word, mask if enough else None)
    return found


def selections(pipeline: str, steps: int) -> dict[str, tuple]:
    """{label: (layers, denoising steps)}: everything, each layer group, each third of the steps."""
    third = steps / 3
    out = {"all layers, all steps": (None, None)}
    out |= {f"{g} layers": (g, None) for g in LAYER_GROUPS[pipeline]}
    for k, name in enumerate(("early", "middle", "late")):
        out[f"{name} steps"] = (None, range(round(k * third), round((k + 1) * third)))
    return out


def map_kinds(pipeline: str) -> dict[str, dict]:
    """{label: word_map keyword arguments}; "whole text" (Flux) is the step's whole-text map."""
    kinds = {"word, renormalised": dict(renormalise=True), "word, raw mass": dict(renormalise=False)}
    if pipeline == "cookanything":
        kinds |= {"ConceptAttention": dict(method="concept"), "whole text": {}}
    return kinds


def upsampled(m: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """[..., g, g] -> [..., H, W] bilinear (the word maps' own upsampling), as float64 numpy."""
    lead = m.shape[:-2]
    x = F.interpolate(m.float().reshape(-1, 1, *m.shape[-2:]), size=size, mode="bilinear", align_corners=False)
    return x.reshape(*lead, *size).double().numpy()


def one_map(trace, pipeline: str, kind: str, word: str, picture: int, layers, steps, size) -> np.ndarray:
    """[H, W] the map of ``kind`` for ``word`` in picture ``picture`` (frame or recipe step)."""
    if kind == "whole text":
        m = trace.text_image_map(picture, layers=layers, steps=steps)  # [N G, G] the canvas, step n's text
        g = m.shape[-2] // len(trace.canvas.texts)
        return upsampled(m[picture * g : (picture + 1) * g], size)
    m = word_map(trace, word, frame=picture, layers=layers, steps=steps, size=size, **map_kinds(pipeline)[kind])
    return m.double().numpy()


def score_picture(trace, pipeline, picture, image, text, scene, sels, records, skipped) -> None:
    """Append one record per (word, map kind, selection) of one picture, centre prior included."""
    size = image.shape[:2]
    prior = centre_prior(size, CENTRE_PRIOR_SIGMA)
    for kind, word, mask in truths(image, text, scene).values():
        if mask is None:
            skipped[kind] += 1
            continue
        base = dict(word_kind=kind, word=word, picture=picture)
        records.append(base | dict(map="centre prior", selection="-") | segmentation_scores(prior, mask))
        for label, (layers, steps) in sels.items():
            for map_kind in map_kinds(pipeline):
                m = one_map(trace, pipeline, map_kind, word, picture, layers, steps, size)
                records.append(base | dict(map=map_kind, selection=label) | segmentation_scores(m, mask))


def position_aurocs(trace, pipeline, picture, image, positions) -> None:
    """For every token of the picture's prompt: the AUROC of its raw map against the container mask, by position."""
    mask = oracle.read(image).mask
    if not mask.any() or mask.all():
        return
    stack, tokens = token_maps(trace, frame=picture)  # [K, G, G] every token (the trace keeps them all)
    maps = upsampled(stack, image.shape[:2])  # [K, H, W]
    for position, (token, m) in enumerate(zip(tokens, maps)):
        positions[position].append((token, segmentation_scores(m, mask)["auroc"]))


def run_model(pipeline: str, args) -> dict:
    """Generate the pictures of one model under a trace and score them."""
    pipe = load_pipeline(pipeline, "toy")
    records, skipped, positions = [], defaultdict(int), defaultdict(list)
    sels = selections(pipeline, args.steps)
    layers = LAYER_GROUPS[pipeline]
    pictures = 0
    for k in range(-(-args.n // RECIPE_STEPS)):
        toy = random_toy_recipe(args.seed + k, RECIPE_STEPS)
        with cooklab.trace(pipe, capture=CAPTURE[pipeline], layers=layers) as tr:
            out = pipe(
                toy.to_recipe(), **toy_call(pipeline, seed=args.seed + k, steps=args.steps, guidance=args.guidance)
            )
        for n, picture in enumerate(out.images[: args.n - pictures]):
            image = np.asarray(picture.convert("RGB"))  # [64, 64, 3] uint8
            score_picture(tr, pipeline, n, image, toy.texts[n], toy.scenes[n], sels, records, skipped)
            position_aurocs(tr, pipeline, n, image, positions)
            for r in records:
                r.setdefault("recipe", k)
        pictures += min(len(out.images), args.n - pictures)
    return dict(pictures=pictures, records=records, skipped=dict(skipped), positions=summarise_positions(positions))


def mean_se(values) -> tuple[float, float]:
    """(mean, standard error of the mean); the error is 0 for a single value."""
    values = list(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return statistics.fmean(values), se


def summarise(records) -> list[dict]:
    """Mean and standard error of every score per (map, word kind, selection), with the number of words."""
    groups = defaultdict(list)
    for r in records:
        groups[(r["map"], r["word_kind"], r["selection"])].append(r)
    rows = []
    for (map_kind, word_kind, selection), rs in groups.items():
        row = dict(map=map_kind, word_kind=word_kind, selection=selection, n=len(rs))
        for key in SCORE_KEYS:
            row[key], row[key + "_se"] = mean_se(r[key] for r in rs)
        rows.append(row)
    return rows


def summarise_positions(positions) -> list[dict]:
    """Per prompt position: the number of tokens seen there, their mean AUROC and the tokens seen most often."""
    rows = []
    for position in sorted(positions):
        seen = positions[position]
        counts = defaultdict(int)
        for token, _ in seen:
            counts[token] += 1
        common = sorted(counts, key=counts.get, reverse=True)[:3]
        mean, se = mean_se(a for _, a in seen)
        rows.append(dict(position=position, n=len(seen), auroc=mean, auroc_se=se, tokens=common))
    return rows


def fmt(row: dict, key: str) -> str:
    return f"{row[key]:.2f} ± {row[key + '_se']:.2f}"


def main_table(results: dict) -> list[str]:
    """The headline table: every map kind over all layers and steps, next to the centre prior."""
    lines = [
        "| model | map | words | n | IoU (area) | IoU @0.3 | IoU @0.4 | IoU @0.5 | AUROC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, result in results.items():
        for word_kind in ("container", "control: the verb vs the container", "ingredient"):
            for row in result["summary"]:
                if row["word_kind"] == word_kind and row["selection"] in ("all layers, all steps", "-"):
                    cells = " | ".join(fmt(row, k) for k in SCORE_KEYS)
                    lines.append(f"| {model} | {row['map']} | {word_kind} | {row['n']} | {cells} |")
    return lines


def selection_table(results: dict) -> list[str]:
    """AUROC and IoU (area) of the renormalised word map per layer group and third of the steps."""
    lines = ["| model | words | layers / steps | n | IoU (area) | AUROC |", "|---|---|---|---|---|---|"]
    for model, result in results.items():
        for row in result["summary"]:
            if row["map"] == "word, renormalised":
                lines.append(
                    f"| {model} | {row['word_kind']} | {row['selection']} | {row['n']} | "
                    f"{fmt(row, 'iou_area')} | {fmt(row, 'auroc')} |"
                )
    return lines


def position_table(results: dict) -> list[str]:
    """Mean AUROC against the container mask of every token at each prompt position."""
    lines = ["| model | position | tokens there (most often) | n | AUROC vs container |", "|---|---|---|---|---|"]
    for model, result in results.items():
        for row in result["positions"]:
            tokens = ", ".join(f"`{t}`" for t in row["tokens"])
            lines.append(f"| {model} | {row['position']} | {tokens} | {row['n']} | {fmt(row, 'auroc')} |")
    return lines


def write_docs(path: Path, results: dict, args, seconds: float) -> None:
    """Replace the text between the markers of ``path`` with the three tables."""
    text = path.read_text(encoding="utf-8")
    if MARK_BEGIN not in text or MARK_END not in text:
        raise SystemExit(
            f"{path}: the markers {MARK_BEGIN!r} ... {MARK_END!r} are missing; add them where the tables go."
        )
    pictures = ", ".join(f"{m}: {r['pictures']} pictures" for m, r in results.items())
    skipped = "; ".join(f"{m}: {dict(r['skipped']) or 'none'}" for m, r in results.items())
    body = [
        MARK_BEGIN,
        "",
        f"`python benchmarks/attention_segmentation.py{' --quick' if args.quick else ''}` ({pictures}; "
        f"{args.steps} steps, CFG {args.guidance:g}, seed {args.seed}; {seconds:.0f} s on "
        f"{torch.get_num_threads()} CPU thread(s)). Mean ± standard error over the scored words; words left out "
        f"because the oracle did not find their object: {skipped}.",
        "",
        *main_table(results),
        "",
        "Per layer group and third of the denoising steps (the renormalised word map):",
        "",
        *selection_table(results),
        "",
        "By position in the prompt (every token's own map, raw mass, all layers and steps, against the container):",
        "",
        *position_table(results),
        "",
        MARK_END,
    ]
    start, end = text.index(MARK_BEGIN), text.index(MARK_END) + len(MARK_END)
    path.write_text(text[:start] + "\n".join(body) + text[end:], encoding="utf-8")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20, help="pictures per model (default 20)")
    p.add_argument("--steps", type=int, default=30, help="denoising steps (default 30)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance (default 3)")
    p.add_argument("--seed", type=int, default=0, help="recipe k is random_toy_recipe(seed + k), noise seed + k")
    p.add_argument("--quick", action="store_true", help="N = 4, 10 steps: a check that the script runs")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attention_segmentation.json")
    p.add_argument("--docs", type=Path, default=ROOT / "docs" / "attention_maps.md", help="page the tables go into")
    p.add_argument("--no-docs", action="store_true", help="write the JSON only")
    return p


def main() -> None:
    args = build_parser().parse_args()
    if args.quick:
        args.n, args.steps = 4, 10
    start = time.perf_counter()
    results = {}
    for model, pipeline in MODELS.items():
        result = run_model(pipeline, args)
        results[model] = dict(
            pictures=result["pictures"],
            skipped=result["skipped"],
            summary=summarise(result["records"]),
            positions=result["positions"],
            records=[r for r in result["records"] if r["selection"] in ("all layers, all steps", "-")],
        )
        print(f"{model}: {result['pictures']} pictures, {time.perf_counter() - start:.0f} s", flush=True)
    seconds = time.perf_counter() - start
    print("\n".join(main_table(results)))
    write_json(
        args.out, "attention_segmentation", {k: str(v) for k, v in vars(args).items()}, seconds=seconds, **results
    )
    if not args.no_docs:
        write_docs(args.docs, results, args, seconds)
    print(f"{seconds:.0f} s; wrote {args.out}" + ("" if args.no_docs else f" and {args.docs}"))


if __name__ == "__main__":
    main()
