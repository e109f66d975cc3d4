"""cooklab.runs: one run from call to folder, the flow under ``cooklab generate`` and ``cooklab demo``."""

import pytest

import cooklab
from cooklab.runs import TRACE_FIGURES, Run, load_pipeline, model_notes, result_summary, run_and_report, trace_figure

STEPS = ["Put a white bowl on the table", "Crack two eggs into the bowl"]
PLANS = [{"container": "bowl"}, {"container": "bowl", "reference_step": 1}]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_run_and_report_writes_the_run_and_its_trace(tmp_path):
    pipe = load_pipeline("recipe-diffusion", "tiny", seed=0, scheduler="EulerDiscreteScheduler")
    assert type(pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    recipe = cooklab.Recipe.from_steps(STEPS, plans=PLANS)
    run = Run(
        recipe,
        tmp_path / "run",
        model="tiny",
        pipeline="recipe-diffusion",
        command="test",
        call=dict(num_inference_steps=2, height=64, width=64, progress=False),
        notes=["a note"],
        trace=True,
        capture=("reference_share", "noise"),
        figures=("trace_reference_share.png", "trace_noise.png"),
        single_thread=True,
    )
    result = run_and_report(pipe, run)
    assert result.index == tmp_path / "run" / "index.html" and result.index.is_file() and result.seconds > 0
    assert [p.name for p in result.trace_files] == [
        "trace_summary.txt",
        "trace_reference_share.png",
        "trace_noise.png",
    ]
    assert all(p.read_bytes().startswith(PNG_MAGIC) for p in result.trace_files[1:])
    summary = result.trace_files[0].read_text(encoding="utf-8")
    assert "frame 0: no K/V reference" in summary and "frame 1 (K/V from frame 0): mean" in summary
    assert result.notes == [] and "a note" in result.index.read_text(encoding="utf-8")
    assert result_summary(result).startswith("2 frames in ") and "K/V sharing on steps 2" in result_summary(result)


def test_trace_figures_are_named_and_skipped_without_their_data(rd):
    with cooklab.trace(rd, capture=["noise"]) as tr:
        pass
    assert trace_figure(tr, "trace_noise.png") is None and trace_figure(tr, "trace_text_image.png") is None
    with pytest.raises(ValueError, match="choose from"):
        trace_figure(tr, "trace_everything.png")
    assert "trace_reference_share.png" in TRACE_FIGURES


def test_model_notes():
    recipe = cooklab.Recipe.from_steps(["Mash the avocado with lime"])
    assert any("random weights" in note for note in model_notes("tiny", "cookanything", recipe))
    toy = model_notes("toy", "recipe-diffusion", recipe)
    assert "Toy Kitchen SD model" in toy[0] and "know only the toy world's words" in toy[1]
    assert model_notes("org/model", "recipe-diffusion", recipe) == []


def test_mask_provider_specs():
    from cooklab.grounding import BoxMaskProvider
    from cooklab.runs import mask_provider

    assert mask_provider(None) is None and mask_provider("grounded-sam") == "grounded-sam"
    assert isinstance(mask_provider("box:16,16,48,48"), BoxMaskProvider)
    assert type(mask_provider("oracle")).__name__ == "OracleMaskProvider"
    for bad in ("box:1,2,3", "sam"):
        with pytest.raises(cooklab.ConfigError, match="--masks"):
            mask_provider(bad)
