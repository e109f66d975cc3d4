"""The gallery: both pipelines and their ablations on the Toy Kitchen, and the notebooks as a browser shows them.

``cooklab gallery`` (``make gallery`` runs the browser test first) writes ``gallery.md`` and its images:

* one ablation figure per pipeline: the same recipe and seed with every mechanism on and with each
  one switched off (the pipeline's named runs, ``cooklab.named_runs``), a row of frames per run and
  the Toy Kitchen oracle's container consistency under it
  (``cooklab.toykitchen.oracle.container_consistency``);
* the notebooks' explorers as JupyterLab drew them with their mechanism on and off, from the
  screenshots that ``tests/test_notebooks_browser.py`` saves (``outputs/browser/<notebook>/explorer<k>_on.png``
  and ``explorer<k>_off.png``), downscaled and reduced to 256 colours, with the change the browser test
  measured when it flipped the toggle and the minimum it requires (``changes.json``).

Everything runs offline on the Toy Kitchen models; the images are regenerated, never edited by hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .fileio import atomic_write, check_output_folder
from .images import read_picture
from .named_runs import DEMO_STEPS, PIPELINE_TITLES, TOY_GUIDANCE, TOY_SIZE, NamedRun, named_runs, toy_call

__all__ = ["ABLATIONS", "Ablation", "ExplorerShots", "GalleryConfig", "check_gallery_out", "write_gallery"]


@dataclass(frozen=True)
class Ablation:
    """One row of an ablation figure: a named run (``cooklab.named_runs``) and a remark after the row's consistency."""

    run: NamedRun
    remark: str | None = None

    @property
    def name(self) -> str:
        """The run's name in ``NAMED_RUNS``."""
        return self.run.name

    @property
    def call(self) -> Mapping[str, Any]:
        """The keyword arguments that make the run (on top of ``toy_call``'s)."""
        return self.run.call

    @property
    def label(self) -> str:
        """The row's label: the run's title."""
        return self.run.title


REMARKS = {  # shown after a row's consistency
    "cookanything_no_src": (
        "trivially high: every region attends to the whole canvas and the regions become near-copies"
    ),
}
# {pipeline: rows, the full method first}: every named run of the pipeline
ABLATIONS: dict[str, tuple[Ablation, ...]] = {
    pipeline: tuple(Ablation(run, REMARKS.get(run.name)) for run in named_runs(pipeline))
    for pipeline in PIPELINE_TITLES
}
IMAGE_DIR = "img/gallery"  # relative to the gallery page
SCREENSHOT_WIDTH = 1000  # pixels; JupyterLab's screenshots are 1400 wide


@dataclass
class GalleryConfig:
    """What ``write_gallery`` makes: ``out/gallery.md`` and its images in ``out/img/gallery``."""

    out: Path = Path("docs")
    # tests/test_notebooks_browser.py's screenshots (None or missing: none)
    screenshots: Path = Path("outputs/browser")
    recipe: str | None = None  # None: the demo's Toy Kitchen recipe
    seed: int = 0
    steps: int = DEMO_STEPS  # denoising steps per frame (the demo's)
    size: int = TOY_SIZE  # the Toy Kitchen models' resolution
    guidance: float = TOY_GUIDANCE  # CFG of toy_sd, true CFG of toy_flux
    pipelines: tuple[str, ...] = ("recipe-diffusion", "cookanything")
    notebooks: list[str] = field(default_factory=list)  # filled by write_gallery: the notebooks with a screenshot
    overwrite: bool = False  # out holds an earlier gallery.md of cooklab: replace it and its images

    def __post_init__(self):
        unknown = [p for p in self.pipelines if p not in ABLATIONS]
        if unknown:
            raise ConfigError(f"gallery: unknown pipeline(s) {unknown}; use {sorted(ABLATIONS)}.")
        if self.steps < 1:
            raise ConfigError(f"gallery: steps={self.steps}; use at least 1 denoising step.")


def _ablation_rows(pipeline: str, recipe, config: GalleryConfig, device) -> list[tuple[str, list, str]]:
    """Run every ablation of ``pipeline`` on ``recipe``: one ``(label, frames, consistency caption)`` per row."""
    from .runs import consistency_text, load_pipeline, one_thread, quiet_loading
    from .toykitchen.oracle import OracleMaskProvider, container_consistency

    common = toy_call(pipeline, seed=config.seed, steps=config.steps, size=config.size, guidance=config.guidance)
    if pipeline == "recipe-diffusion":
        common |= dict(mask_provider=OracleMaskProvider())
    with quiet_loading():
        pipe = load_pipeline(pipeline, "toy", config.seed, device)
    rows = []
    for ablation in ABLATIONS[pipeline]:
        with quiet_loading(), one_thread():
            out = pipe(recipe, **common, **ablation.call)
        kept = container_consistency(out.images)  # [N - 1] bool: frames 2..N keep frame 1's container
        remark = f"; {ablation.remark}" if ablation.remark else ""
        rows.append((ablation.label, list(out.images), f"{consistency_text(kept)} (oracle){remark}"))
        print(f"gallery: {pipeline} {ablation.name}: {consistency_text(kept)}")
    return rows


@dataclass(frozen=True)
class ExplorerShots:
    """One explorer's screenshots with its mechanism on and off, and the change the browser test measured."""

    on: Path
    off: Path
    change: dict | None = None  # {"toggle", "change", "minimum"} from changes.json (None: not recorded)


def _screenshots(folder: Path | None) -> dict[str, list[ExplorerShots]]:
    """``{notebook stem: [each explorer's on/off screenshots]}`` from the browser test's folder."""
    import json

    if folder is None or not folder.is_dir():
        return {}
    found = {}
    for notebook in sorted(p for p in folder.iterdir() if p.is_dir()):
        record = notebook / "changes.json"
        changes = {c["explorer"]: c for c in json.loads(record.read_text())} if record.is_file() else {}
        shots = []
        for on in sorted(notebook.glob("explorer*_on.png")):
            k = int(on.stem.removeprefix("explorer").removesuffix("_on"))
            off = on.with_name(f"explorer{k}_off.png")
            if off.is_file():
                shots.append(ExplorerShots(on, off, changes.get(k)))
        if shots:
            found[notebook.name] = shots
    return found


def _change_line(k: int, change: dict | None) -> str:
    """What the browser test measured when it flipped explorer ``k``'s mechanism toggle."""
    if change is None:
        return f"Explorer {k}: no change recorded (run `make gallery` again)."
    figures = ", ".join(f"{c:.3f}" for c in change.get("per_figure", []))
    resized = "".join(f"; figure {i + 1} changed size" for i in change.get("resized", []))
    return (
        f"Explorer {k}, {change['toggle']}: the figures changed by a mean |pixel difference| of "
        f"{change['change']:.3f} (0-1 scale; the browser test requires at least {change['minimum']:g})"
        + (f"; figure by figure {figures}{resized}." if figures else ".")
    )


def _small_png(path: Path) -> bytes:
    """A screenshot at most ``SCREENSHOT_WIDTH`` wide, in 256 colours (a tenth of the bytes, text still sharp)."""
    import io

    import PIL.Image

    image = read_picture(path, "take the screenshots again with `make test-browser`, then `make gallery`.")
    if image.width > SCREENSHOT_WIDTH:
        image = image.resize(
            (SCREENSHOT_WIDTH, round(image.height * SCREENSHOT_WIDTH / image.width)), PIL.Image.LANCZOS
        )
    buffer = io.BytesIO()
    image.quantize(colors=256).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _is_gallery_page(path: Path) -> bool:
    """True when ``path`` is a gallery.md that ``write_gallery`` wrote (its heading, the line naming its command)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return text.startswith("# Gallery\n") and "`cooklab gallery` writes this page" in text


def _gallery_images(page: Path) -> set[str]:
    """The image files of ``IMAGE_DIR`` an earlier gallery page shows (none when there is no page)."""
    if not page.is_file():
        return set()
    names = {part.split(")", 1)[0] for part in page.read_text(encoding="utf-8").split(f"]({IMAGE_DIR}/")[1:]}
    return {name for name in names if name and "/" not in name}


def check_gallery_out(config: GalleryConfig) -> None:
    """Check where the gallery goes before any model loads (``ConfigError`` naming the fix).

    The gallery writes only ``out/gallery.md`` and ``out/img/gallery/``, so ``out`` may hold other
    files (``docs``); an earlier gallery there is replaced only with ``config.overwrite``; a
    ``gallery.md`` that cooklab did not write, a file where a folder goes, or an image folder of
    other files is refused.
    """
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"gallery: out {out} is a file; give the folder gallery.md goes to (default: docs).")
    page = out / "gallery.md"
    previous = page.is_file() and _is_gallery_page(page)
    if page.exists() and not previous:
        raise ConfigError(f"gallery: {page} is not a gallery page of cooklab: give another out folder.")
    if previous and not config.overwrite:
        raise ConfigError(
            f"gallery: {page} is an earlier gallery of cooklab: pass overwrite=True (on the command line: "
            "--overwrite) to replace it and its images, or give another out folder."
        )
    check_output_folder(out / IMAGE_DIR, overwrite=config.overwrite, holds_previous=lambda _: previous, what="gallery")


def write_gallery(config: GalleryConfig, device=None) -> Path:
    """Make the ablation figures and copy the screenshots into ``config.out``; write ``gallery.md``.

    ``config.out`` is checked first (``check_gallery_out``); over an earlier gallery, its images that
    this one does not write again are removed (those its page showed, nothing else). Returns the path
    of ``gallery.md``.
    """
    from . import load_recipe
    from .recipe import DEMO_RECIPE, resolve_recipe
    from .report import write_figure
    from .viz import comparison_figure

    check_gallery_out(config)
    out, images = Path(config.out), Path(config.out) / IMAGE_DIR
    earlier = _gallery_images(out / "gallery.md")  # the earlier gallery's images (config.overwrite)
    written = set()
    path = resolve_recipe(config.recipe or DEMO_RECIPE)
    recipe = load_recipe(path)
    lines = [
        "# Gallery",
        "",
        "Both pipelines and their ablations on the Toy Kitchen, and every notebook's explorer as JupyterLab draws it.",
        "Regenerated by one command, `make gallery` (the browser test, `tests/test_notebooks_browser.py`, saves the",
        f"screenshots; then `cooklab gallery` writes this page and `{IMAGE_DIR}/`). Nothing here is edited by hand.",
        "",
        f"Recipe {recipe.title!r} (`{Path(path).name}`, {len(recipe)} steps), the Toy Kitchen "
        f"models (`cooklab.models.toy_sd`, `toy_flux`; docs/toykitchen.md), {config.size}×{config.size} per frame, "
        f"seed {config.seed}, {config.steps} denoising steps, guidance {config.guidance:g}. Under each row: the "
        "oracle's container consistency (the later frames that keep frame 1's container colour with a mask IoU "
        "≥ 0.5). In the toy world a mechanism's effect can be small or absent for one seed: the studies in "
        "docs/results.md and docs/toykitchen.md average over recipes and seeds; these pictures show what the "
        "switches do, not how often.",
        "",
    ]
    for pipeline in config.pipelines:
        rows = _ablation_rows(pipeline, recipe, config, device)
        name = f"ablations_{pipeline.replace('-', '_')}.png"
        title = f"{PIPELINE_TITLES[pipeline]} on {recipe.title!r}: the method and each mechanism switched off"
        written.add(write_figure(comparison_figure(rows, recipe.texts, title=title), images / name).name)
        lines += [
            f"## {PIPELINE_TITLES[pipeline]}: ablations",
            "",
            f"![{PIPELINE_TITLES[pipeline]} ablations]({IMAGE_DIR}/{name})",
            "",
        ]
        lines += [f"- {label}: {caption}" for label, _, caption in rows] + [""]
    shots = _screenshots(config.screenshots)
    config.notebooks = sorted(shots)
    lines += [
        "## The notebooks in JupyterLab",
        "",
        "Each explorer as JupyterLab draws it after Run All, with its mechanism on (first picture) and after the "
        "browser test switched it off (second), on the same seed.",
        "",
    ]
    if not shots:
        lines += [
            "No screenshots: run the browser test first (`make test-browser`, or `make gallery` which does).",
            "",
        ]
    for stem, explorers in shots.items():
        lines += [f"### `{stem}.ipynb`", ""]
        for k, shot in enumerate(explorers):
            lines += [_change_line(k, shot.change), ""]
            for state, file in (("on", shot.on), ("off", shot.off)):
                name = f"{stem}_{file.stem}.png"
                written.add(atomic_write(images / name, _small_png(file)).name)
                lines += [f"![{stem}: explorer {k}, mechanism {state}]({IMAGE_DIR}/{name})", ""]
    page = atomic_write(out / "gallery.md", "\n".join(lines))
    for name in sorted(earlier - written):  # an earlier gallery's images this one did not write again
        (images / name).unlink(missing_ok=True)
    return page
