"""The ``cooklab`` command and the run report (fast: tiny model, 2 steps, or the toy models, 4 steps; CPU, offline)."""

from __future__ import annotations

import html
import json
import runpy
import sys
from pathlib import Path

import pytest

import cooklab
from cooklab.cli import main
from cooklab.recipe import recipes_dir, resolve_recipe, toy_recipes_dir
from cooklab.report import atomic_write

RECIPES = Path(__file__).resolve().parent.parent / "data" / "recipes"
OATS = RECIPES / "overnight_oats.yaml"  # the shortest shipped recipe (3 steps)
TOY_RECIPES = Path(__file__).resolve().parent.parent / "data" / "toykitchen" / "recipes"
TOY = TOY_RECIPES / "toy_kitchen.yaml"  # the demo's recipe (4 steps, Toy Kitchen words only)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _generate(out: Path, *extra: str, recipe: Path = OATS) -> int:
    return main(["generate", str(recipe), "--model", "tiny", "--steps", "2", "--out", str(out), *extra])


def _settings(out: Path) -> dict:
    return json.loads((out / "settings.json").read_text(encoding="utf-8"))


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


def test_generate_tiny_writes_the_run(tmp_path, capsys):
    recipe = cooklab.load_recipe(OATS)
    out = tmp_path / "run"
    assert _generate(out) == 0
    n = len(recipe)
    frames = sorted(p.name for p in out.glob("frame_*.png"))
    assert frames == [f"frame_{i:02d}.png" for i in range(n)]
    for name in [*frames, "storyboard.png"]:
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name

    data = _settings(out)
    assert data["model"] == "tiny" and data["pipeline"] == "recipe-diffusion"
    assert data["variant"] == "region_aware_kv"
    assert {"cooklab", "diffusers", "torch"} <= set(data["versions"])
    assert data["settings"]["num_inference_steps"] == 2 and data["settings"]["height"] == 64
    assert len(data["frames"]) == n
    for i, (frame, step) in enumerate(zip(data["frames"], recipe.steps, strict=True)):
        assert frame["index"] == i and frame["text"] == step.text and frame["image"] == f"frame_{i:02d}.png"
        assert {"reference", "kv_reference", "base_noise", "object_noise", "region_aware", "fallback", "mask"} <= set(
            frame
        )
        assert frame["mask"] is None or set(frame["mask"]) == {"area", "box", "source"}
    assert data["frames"][0]["reference"] is None and data["frames"][1]["kv_reference"] == 0

    page = (out / "index.html").read_text(encoding="utf-8")
    for step in recipe.steps:
        assert html.escape(step.text) in page
    assert 'src="storyboard.png"' in page and 'src="frame_00.png"' in page
    assert str(out / "index.html") in capsys.readouterr().out
    assert _leftovers(out) == []


def test_page_escapes_text(tmp_path):
    recipe = tmp_path / "tricky.yaml"
    recipe.write_text(
        'title: "Soup <script>alert(1)</script>"\n'
        "steps:\n"
        '  - text: "Heat <b>oil</b> & add \\"onions\\"."\n'
        "    container: pot\n"
        '  - text: "Stir; it\'s <i>done</i>."\n'
        "    container: pot\n"
        "    reference_step: 1\n",
        encoding="utf-8",
    )
    out = tmp_path / "run"
    assert _generate(out, recipe=recipe) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>oil</b>" not in page and "<i>done</i>" not in page
    assert html.escape('Heat <b>oil</b> & add "onions".') in page
    assert html.escape("Stir; it's <i>done</i>.") in page
    assert html.escape("Soup <script>alert(1)</script>") in page


def test_variant_independent_is_recorded(tmp_path):
    out = tmp_path / "run"
    assert _generate(out, "--variant", "independent") == 0
    data = _settings(out)
    assert data["variant"] == "independent"
    assert data["settings"]["sequential"] is False and data["settings"]["kv_sharing"] is False
    assert all(f["reference"] is None and f["kv_reference"] is None for f in data["frames"])


def test_no_flags_give_a_custom_mix(tmp_path):
    out = tmp_path / "run"
    assert _generate(out, "--no-kv-sharing", "--no-region-aware", "--scheduler", "euler", "--kv-layers", "up") == 0
    data = _settings(out)
    assert data["variant"] == "custom"
    assert data["settings"]["scheduler"] == "EulerDiscreteScheduler"
    assert data["frames"][1]["reference"] == 0 and data["frames"][1]["kv_reference"] is None


def test_start_and_reference_latent_options_reach_the_frames(tmp_path):
    out = tmp_path / "run"
    assert _generate(out, "--no-region-aware") == 0
    frame = _settings(out)["frames"][1]
    assert (frame["reference"], frame["start_from"], frame["reference_latent"]) == (0, "previous", "encoded")
    assert "its image encoded by the VAE" in (out / "index.html").read_text(encoding="utf-8")
    out = tmp_path / "final"
    assert _generate(out, "--no-region-aware", "--start-from", "reference", "--reference-latent", "final") == 0
    data = _settings(out)
    assert data["settings"]["start_from"] == "reference" and data["frames"][1]["reference_latent"] == "final"


def test_malformed_recipe_is_a_clean_error(tmp_path, capsys):
    bad = tmp_path / "broken_recipe.yaml"
    bad.write_text("title: Broken\nsteps:\n  - text: [unclosed\n", encoding="utf-8")
    assert _generate(tmp_path / "run", recipe=bad) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "broken_recipe.yaml" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_missing_recipe_is_a_clean_error(tmp_path, capsys):
    assert _generate(tmp_path / "run", recipe=tmp_path / "nope.yaml") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope.yaml" in err


def test_height_not_multiple_of_8(tmp_path, capsys):
    assert _generate(tmp_path / "run", "--height", "65") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "multiples of 8" in err


def test_conflicting_switches(tmp_path, capsys):
    assert _generate(tmp_path / "run", "--variant", "region_aware", "--no-sequential") == 2
    assert "sequential" in capsys.readouterr().err


def test_cookanything_tiny_writes_the_canvas_run(tmp_path, capsys):
    import PIL.Image

    recipe = cooklab.load_recipe(OATS)
    n = len(recipe)
    out = tmp_path / "run"
    assert _generate(out, "--pipeline", "cookanything") == 0
    frames = sorted(p.name for p in out.glob("frame_*.png"))
    assert frames == [f"frame_{i:02d}.png" for i in range(n)]
    for name in [*frames, "canvas.png", "storyboard.png"]:
        assert (out / name).read_bytes().startswith(PNG_MAGIC), name
    with PIL.Image.open(out / "canvas.png") as canvas:
        assert canvas.size == (64, n * 64)  # regions stacked vertically

    data = _settings(out)
    assert data["pipeline"] == "cookanything" and data["model"] == "tiny"
    assert data["mechanisms"] == ["Step-wise Regional Control", "Flexible RoPE", "CSCC"]
    settings = data["settings"]
    assert settings["num_inference_steps"] == 2 and settings["height"] == 64 and settings["guidance_scale"] == 3.5
    assert (
        settings["max_sequence_length"] == cooklab.models.TINY_T5_MAX_LENGTH
        and settings["attention_backend"] == "batched"
    )
    assert data["layout"]["n_regions"] == n and data["whole_description"]["tokens"] <= settings["max_sequence_length"]
    for i, (frame, step) in enumerate(zip(data["frames"], recipe.steps, strict=True)):
        assert frame["text"] == step.text and frame["image"] == f"frame_{i:02d}.png" and frame["noise_seed"] == i
        assert frame["canvas_rows"] == [64 * i, 64 * (i + 1)]
        assert {"start", "length", "own_length", "truncated"} <= set(frame["span"])
    # the oats recipe overflows the tiny T5's 64 tokens: the cut is reported, on the page too
    cut = data["whole_description"]["truncated_steps"]
    assert cut and all(data["frames"][i]["span"]["truncated"] for i in cut)
    assert any("cut at --max-sequence-length" in note for note in data["notes"])

    page = (out / "index.html").read_text(encoding="utf-8")
    for step in recipe.steps:
        assert html.escape(step.text) in page
    assert 'src="canvas.png"' in page and 'src="storyboard.png"' in page and "Whole description" in page
    assert "cut at the 64-token limit" in page or "cut off: beyond" in page
    assert "regional_layers" in page and "alpha" in page
    assert str(out / "index.html") in capsys.readouterr().out
    assert _leftovers(out) == []


def test_cookanything_switches_are_recorded(tmp_path):
    out = tmp_path / "run"
    assert _generate(out, "--pipeline", "cookanything", "--no-regional", "--no-flexible-rope", "--lam", "0.5") == 0
    data = _settings(out)
    s = data["settings"]
    assert s["regional"] is False and s["flexible_rope"] is False and s["cscc"] is True and s["lam"] == 0.5
    assert data["mechanisms"] == ["CSCC"] and data["layout"]["base_text_len"] == 0
    assert _generate(out, "--overwrite") == 0  # a Recipe Diffusion run in the same folder leaves no canvas behind
    assert not (out / "canvas.png").exists() and _settings(out)["pipeline"] == "recipe-diffusion"


def test_cookanything_trace(tmp_path):
    out = tmp_path / "run"
    assert _generate(out, "--pipeline", "cookanything", "--trace") == 0
    summary = (out / "trace_summary.txt").read_text(encoding="utf-8")
    assert (
        "text -> image attention" in summary and "step 3: 1.000" in summary
    )  # SRC: each text is read by its region only
    assert "base branch" in summary
    assert _leftovers(out) == []


def test_cookanything_generates_a_long_recipe_in_chunks(tmp_path, capsys):
    long = tmp_path / "long.yaml"
    long.write_text("title: Long\nsteps:\n" + "".join(f"  - Step number {i} of the long recipe.\n" for i in range(13)))
    out = tmp_path / "run"
    assert (
        _generate(
            out, "--pipeline", "cookanything", "--chunk-size", "5", "--height", "32", "--width", "32", recipe=long
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "the 13 steps are generated as 3 canvases of at most 5 regions (--chunk-size; steps 1-5, 6-9, 10-13)" in err
    data = _settings(out)
    assert len(list(out.glob("frame_*.png"))) == 13 and data["settings"]["anchor"] == "fixed"
    assert [f["chunk"] for f in data["frames"]] == [1] * 5 + [2] * 4 + [3] * 4
    assert data["frames"][5]["anchors"] == [5] and data["frames"][12]["anchors"] == [9]
    assert "chunk</dt><dd>2 of 3 (anchor steps: 5)" in (out / "index.html").read_text(encoding="utf-8")
    assert data["settings"]["chunk_text"] == "window"  # each chunk's own base prompt and CSCC window
    assert data["settings"]["chunks"][1]["cscc_window"][1] == 9
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "Read by each chunk in part" in page and "CSCC windows of steps 1-5, 5-9, 9-13" in page
    cut = ", ".join(map(str, data["settings"]["truncated_steps"]))  # a chunk's 5 steps outgrow the toy T5's 64
    assert f"step(s) {cut} lose tokens" in page
    whole = ("--chunk-size", "5", "--chunk-text", "whole", "--height", "32", "--width", "32", "--overwrite")
    assert _generate(out, "--pipeline", "cookanything", *whole, recipe=long) == 0
    assert _settings(out)["settings"]["chunk_text"] == "whole"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--chunk-size", "0"), "--chunk-size 0: give the most regions"),
        (("--chunk-size", "3", "--anchor-regions", "3"), "--anchor-regions 3 with --chunk-size 3"),
        (("--anchor-strength", "0.5"), "--anchor-strength needs --anchor renoise"),
        (("--anchor", "renoise", "--anchor-strength", "2"), "--anchor-strength 2: give a noise level in (0, 1]"),
        (("--anchor", "none", "--anchor-strength", "0.5"), "drop it with --anchor none"),
    ],
)
def test_impossible_chunk_options_name_the_flag(tmp_path, capsys, extra, message):
    assert _generate(tmp_path / "run", "--pipeline", "cookanything", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--height", "72"], "multiples of 16"),
        (["--width", "0"], "multiples of 16"),
        (["--alpha", "1.5"], "between 0 and 1"),
        (["--lam", "-1"], ">= 0"),
        (["--max-sequence-length", "600"], "--max-sequence-length 600"),
        (["--no-flexible-rope", "--rope-step-axis"], "--rope-step-axis needs Flexible RoPE"),
        (["--attention-backend", "batched", "--image-attention", "global"], "--image-attention region"),
        (["--variant", "independent"], "--variant: an option of Recipe Diffusion"),
    ],
)
def test_cookanything_bad_options_fail_before_loading(tmp_path, capsys, monkeypatch, extra, message):
    import cooklab.models

    monkeypatch.setattr(cooklab.models, "tiny_flux", lambda *a, **k: pytest.fail("the model was loaded"))
    assert _generate(tmp_path / "run", "--pipeline", "cookanything", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err


def test_cookanything_options_need_their_pipeline(tmp_path, capsys):
    assert _generate(tmp_path / "run", "--alpha", "0.3", "--no-cscc") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "--alpha" in err and "--no-cscc" in err
    assert "options of CookAnything" in err and "--pipeline cookanything" in err
    assert _generate(tmp_path / "run", "--alpha", "0") == 2  # a zero is given too
    assert "--alpha: an option of CookAnything" in capsys.readouterr().err


def test_variant_choices_match_the_pipeline():
    from cooklab.cli.options import VARIANT_NAMES
    from cooklab.recipe_diffusion.pipeline import VARIANTS

    assert VARIANT_NAMES == tuple(VARIANTS)


def test_usage_errors_return_2(capsys):
    assert main(["generate"]) == 2
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0
    assert "generate" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_runs_both_pipelines_on_the_toy_models(tmp_path, capsys):
    import PIL.Image

    from cooklab.toykitchen.oracle import container_consistency

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "4"]) == 0
    runs = ("independent", "region_aware_kv", "cookanything_no_src", "cookanything")
    for name in runs:
        for file in ("index.html", "settings.json"):
            assert (out / name / file).is_file(), (name, file)
        assert (out / name / "storyboard.png").read_bytes().startswith(PNG_MAGIC), name
        assert len(list((out / name).glob("frame_*.png"))) == 4
    traces = {
        "region_aware_kv": ["trace_reference_share.png", "trace_reference_share_map.png", "trace_noise.png"],
        "independent": [],
        "cookanything": ["trace_text_image.png", "trace_base_contribution.png"],
        "cookanything_no_src": [],
    }
    for name, figures in traces.items():
        for figure in figures:
            assert (out / name / figure).read_bytes().startswith(PNG_MAGIC), (name, figure)
        assert (out / name / "trace_summary.txt").is_file() == bool(figures)
        assert _leftovers(out / name) == []

    ind, ra, no_src, ca = (_settings(out / name) for name in runs)
    assert ra["variant"] == "region_aware_kv" and ind["variant"] == "independent"
    assert (
        ra["pipeline"] == ind["pipeline"] == "recipe-diffusion"
        and ca["pipeline"] == no_src["pipeline"] == "cookanything"
    )
    assert ra["model"] == ind["model"] == ca["model"] == no_src["model"] == "toy"
    assert ra["settings"]["guidance_scale"] == 3.0 and ra["settings"]["height"] == 64
    assert ra["settings"]["mask_provider"] == "OracleMaskProvider"
    masked = [f for f in ra["frames"] if f["mask"] is not None]
    assert [f["index"] for f in masked] == [1, 2, 3] and all(f["mask"]["source"] == "oracle" for f in masked)
    assert all(f["region_aware"] for f in masked)  # the oracle found the container in every reference frame
    assert all(f["reference"] is None for f in ind["frames"])
    assert ca["mechanisms"] == ["Step-wise Regional Control", "Flexible RoPE", "CSCC"]
    assert no_src["mechanisms"] == ["Flexible RoPE", "CSCC"]  # the same call without SRC
    for key in ("true_cfg_scale", "max_sequence_length", "num_inference_steps", "seed", "alpha", "lam"):
        assert no_src["settings"][key] == ca["settings"][key], key
    assert ca["settings"]["true_cfg_scale"] == 3.0 and ca["settings"]["max_sequence_length"] == 64

    summary = (out / "cookanything" / "trace_summary.txt").read_text(encoding="utf-8")
    assert "step 4: 1.000" in summary  # SRC: each step's text is read by its own region only
    assert "frame 1 (K/V from frame 0)" in (out / "region_aware_kv" / "trace_summary.txt").read_text(encoding="utf-8")
    stdout = capsys.readouterr().out
    assert "Toy Kitchen" in stdout and "docs/toykitchen.md" in stdout and "OracleMaskProvider" in stdout
    assert "noise until" not in stdout and "random weights" not in stdout
    for name in runs:
        assert str(out / name / "index.html") in stdout
    assert "Toy Kitchen" in " ".join(ra["notes"]) and "Toy Kitchen" in " ".join(ca["notes"])

    # under each run's line, the oracle's container consistency of the frames the run saved
    lines = stdout.splitlines()
    captions = {}
    for name in runs:
        frames = [PIL.Image.open(path) for path in sorted((out / name).glob("frame_*.png"))]
        kept = container_consistency(frames)
        assert len(kept) == 3
        line = next(i for i, text in enumerate(lines) if text.startswith(f"{name}: "))
        assert lines[line + 1] == f"  oracle: container kept in {sum(kept)} of 3 later frames", name
        captions[name] = f"container kept in {sum(kept)} of 3 later frames (oracle)"
    assert sum("trivially high" in text for text in lines) == 1  # the no-SRC run's number explained, once

    # compare.png and the page that shows it and links every run's page
    assert (out / "compare.png").read_bytes().startswith(PNG_MAGIC)
    assert f"compare: {out / 'compare.png'}; open {out / 'index.html'}" in lines
    page = (out / "index.html").read_text(encoding="utf-8")
    assert 'src="compare.png"' in page
    assert "Recipe Diffusion: independent vs region-aware noise + K/V sharing" in page
    assert "CookAnything: without SRC vs with SRC" in page
    links = [page.index(f'href="{name}/index.html"') for name in runs]
    assert links == sorted(links)  # the pairs in order: without the mechanism, then with it
    for name in runs:
        assert captions[name] in page, name
    assert _leftovers(out) == []


@pytest.mark.slow
def test_demo_on_a_recipe_outside_the_toy_world_says_so(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--steps", "2", "--recipe", "overnight_oats"]) == 0
    stdout = capsys.readouterr().out
    assert "know only the toy world's words" in stdout
    assert (out / "independent" / "storyboard.png").is_file() and (out / "cookanything" / "canvas.png").is_file()
    page = (out / "index.html").read_text(encoding="utf-8")
    assert (
        (out / "compare.png").is_file()
        and 'href="region_aware_kv/index.html"' in page
        and "CookAnything: without SRC" in page
    )


@pytest.mark.parametrize("pipeline", ["recipe-diffusion", "cookanything"])
def test_generate_toy_is_the_default_model(tmp_path, capsys, pipeline):
    out = tmp_path / "run"
    assert main(["generate", str(TOY), "--pipeline", pipeline, "--steps", "4", "--out", str(out)]) == 0  # no --model
    data = _settings(out)
    s = data["settings"]
    assert data["model"] == "toy" and s["num_inference_steps"] == 4 and s["height"] == s["width"] == 64
    assert any("Toy Kitchen" in note for note in data["notes"])
    if pipeline == "recipe-diffusion":
        assert s["guidance_scale"] == 3.0 and s["mask_provider"] == "OracleMaskProvider"
        assert [f["mask"]["source"] for f in data["frames"][1:]] == ["oracle"] * 3
    else:
        assert s["true_cfg_scale"] == 3.0 and s["max_sequence_length"] == 64 and (out / "canvas.png").is_file()
    assert "know only the toy world's words" not in capsys.readouterr().err


def test_generate_toy_options(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "generate",
                "toy_kitchen",
                "--model",
                "toy",
                "--steps",
                "4",
                "--masks",
                "box:16,16,48,48",
                "--guidance",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    data = _settings(out)
    assert data["settings"]["guidance_scale"] == 2.0 and data["frames"][1]["mask"]["source"] == "box"
    assert (
        main(
            [
                "generate",
                "toy_kitchen",
                "--pipeline",
                "cookanything",
                "--model",
                "toy",
                "--steps",
                "4",
                "--true-cfg-scale",
                "1",
                "--guidance",
                "5",
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    data = _settings(out)
    assert data["settings"]["true_cfg_scale"] == 1.0
    assert any("--guidance has no effect on toy_flux" in note for note in data["notes"])
    # words the toy models never saw
    assert main(["generate", "guacamole", "--steps", "2", "--out", str(out), "--overwrite"]) == 0
    assert "know only the toy world's words" in capsys.readouterr().err


def test_trace_writes_summary(tmp_path):
    out = tmp_path / "run"
    assert _generate(out, "--trace") == 0
    summary = (out / "trace_summary.txt").read_text(encoding="utf-8")
    assert "reference share" in summary and "frame 1 (K/V from frame 0)" in summary
    assert (out / "trace_reference_share.png").read_bytes().startswith(PNG_MAGIC)
    assert _leftovers(out) == []


def test_atomic_write_replaces_or_leaves_untouched(tmp_path):
    target = tmp_path / "sub" / "file.txt"
    atomic_write(target, "first")
    atomic_write(target, b"second")
    assert target.read_text() == "second"

    def fails(file):
        file.write(b"half of it")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        atomic_write(target, fails)
    assert target.read_text() == "second"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.txt"]


def test_rerun_with_fewer_steps_removes_stale_frames(tmp_path):
    out = tmp_path / "run"
    assert _generate(out, recipe=RECIPES / "guacamole.yaml") == 0
    assert _generate(out, "--overwrite", recipe=OATS) == 0
    assert len(list(out.glob("frame_*.png"))) == len(cooklab.load_recipe(OATS))


def test_recipe_resolution_from_another_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert recipes_dir() == RECIPES and toy_recipes_dir() == TOY_RECIPES
    assert resolve_recipe(None) == TOY
    assert resolve_recipe("pancakes") == RECIPES / "pancakes.yaml"
    assert resolve_recipe("data/recipes/pancakes.yaml") == RECIPES / "pancakes.yaml"
    assert resolve_recipe("toy_kitchen") == TOY and resolve_recipe("toy_kitchen.yaml") == TOY
    assert resolve_recipe("data/toykitchen/recipes/toy_kitchen.yaml") == TOY
    assert resolve_recipe("data/recipes/toy_kitchen.yaml") == Path(
        "data/recipes/toy_kitchen.yaml"
    )  # not in that folder
    (tmp_path / "pancakes.yaml").write_text("title: Mine\nsteps: [Mix.]\n")
    assert resolve_recipe("pancakes.yaml") == Path("pancakes.yaml")  # a real file wins


def test_python_m_cooklab(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["cooklab", "--version"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("cooklab", run_name="__main__")
    assert exit_.value.code == 0 and cooklab.__version__ in capsys.readouterr().out


def test_masks_box_applies_region_aware_noise(tmp_path):
    import json

    from cooklab.cli import main

    out = tmp_path / "run"
    assert (
        main(
            [
                "generate",
                "pancakes",
                "--model",
                "tiny",
                "--steps",
                "12",
                "--masks",
                "box:16,16,48,48",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    frames = json.loads((out / "settings.json").read_text())["frames"]
    assert any(f["region_aware"] for f in frames)
    assert main(["generate", "pancakes", "--model", "tiny", "--masks", "box:1,2,3", "--out", str(out)]) == 2


def test_grounded_sam_without_the_hub_is_a_clear_error(tmp_path, capsys):
    from cooklab.cli import main

    code = main(
        [
            "generate",
            "guacamole",
            "--model",
            "tiny",
            "--steps",
            "2",
            "--masks",
            "grounded-sam",
            "--out",
            str(tmp_path / "g"),
        ]
    )
    assert code == 2 and "hub" in capsys.readouterr().err


def test_plan_command_and_planned_generation_with_both_pipelines(tmp_path, capsys):
    import json

    from cooklab.cli import main

    raw = tmp_path / "raw.txt"
    raw.write_text(
        "Fried eggs\n1. Heat oil in a black frying pan.\n2. Crack two eggs into the pan.\n"
        "3. Slide the eggs onto a white plate.\n"
    )
    assert (
        main(
            [
                "plan",
                str(raw),
                "--agent",
                "rules",
                "--out",
                str(tmp_path / "plan.json"),
                "--recipe-out",
                str(tmp_path / "planned.yaml"),
            ]
        )
        == 0
    )
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert [s["container"] for s in plan["steps"]] == ["frying pan", "frying pan", "plate"]
    assert [s["reference_step"] for s in plan["steps"]] == [None, 1, None]
    assert main(["plan", str(raw), "--agent", "rules"]) == 0
    assert json.loads(capsys.readouterr().out)["agent"] == "rules"
    rd = tmp_path / "rd"
    assert (
        main(
            [
                "generate",
                str(raw),
                "--model",
                "tiny",
                "--steps",
                "12",
                "--agent",
                "rules",
                "--masks",
                "box:16,16,48,48",
                "--out",
                str(rd),
            ]
        )
        == 0
    )
    frames = json.loads((rd / "settings.json").read_text())["frames"]
    assert frames[1]["reference"] == 0 and frames[1]["region_aware"]
    ca = tmp_path / "ca"
    assert (
        main(
            [
                "generate",
                str(tmp_path / "planned.yaml"),
                "--pipeline",
                "cookanything",
                "--model",
                "tiny",
                "--steps",
                "2",
                "--agent",
                "rules",
                "--out",
                str(ca),
            ]
        )
        == 0
    )
    assert (ca / "canvas.png").exists()
