"""CookAnything's training-based mode: LoRA adapters (peft, diffusers' format) and their training on multi-step
canvases."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline

import cooklab
from cooklab import CheckpointError, ConfigError
from cooklab.cookanything.lora import LoraSpec, add_lora, save_lora
from cooklab.models import TINY_T5_MAX_LENGTH, tiny_flux
from cooklab.training import (
    LoraTrainer,
    TrainLoraConfig,
    canvas_attention,
    canvas_latents,
    encode_canvas,
    flow_matching_loss,
    load_examples,
    load_train_config,
    train_lora,
    write_toy_folder,
)

STEPS = ["Dice two carrots on a wooden board", "Fry the carrots in a black pan", "Serve the carrots on a white plate"]
KW = dict(num_inference_steps=2, max_sequence_length=TINY_T5_MAX_LENGTH, progress=False, output_type="np")


def images(out):
    return np.stack(out.images)


def randomise(params, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)


def config(tmp_path, **train):
    return TrainLoraConfig(
        name="t",
        out=tmp_path / "run",
        model="tiny",
        data={"toy": {"count": 3, "steps": 3}},
        lora={"rank": 4},
        canvas={"height": 32, "width": 32},
        train={"steps": 4, "checkpoint_every": 2, "learning_rate": 1e-3, **train},
    )


def test_a_few_steps_on_a_fixed_batch_lower_the_loss(ca):
    params = add_lora(ca.pipe.transformer, LoraSpec(rank=4))
    assert all(p.requires_grad for p in params) and not any(
        p.requires_grad for n, p in ca.pipe.transformer.named_parameters() if "lora_" not in n
    )
    canvas = ca.prepare_canvas(STEPS, height=32, width=32)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, canvas.layout.image_len, ca.pipe.transformer.config.in_channels, generator=g)
    noise = torch.randn(x0.shape, generator=g)
    sigma = torch.tensor(0.6)
    opt = torch.optim.AdamW(params, lr=1e-2)
    losses = []
    for _ in range(8):
        with canvas_attention(ca, canvas):
            loss = flow_matching_loss(ca, canvas, x0, noise, sigma, guidance=1.0)
            loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_an_adapter_starts_as_the_identity_and_scale_zero_is_no_adapter(ca):
    base = images(ca(STEPS, seed=0, **KW))
    params = add_lora(ca.pipe.transformer, LoraSpec(rank=4))
    assert np.array_equal(images(ca(STEPS, seed=0, **KW)), base)  # B = 0 at the start
    randomise(params)
    assert not np.array_equal(images(ca(STEPS, seed=0, **KW)), base)
    zero = ca(STEPS, seed=0, lora_scale=0.0, **KW)
    assert np.array_equal(images(zero), base) and zero.settings["lora"] == {"cookanything": 0.0}
    assert ca.lora["cookanything"]["scale"] == 1.0  # the call's scale does not stay
    ca.unload_lora()
    assert ca.lora == {} and np.array_equal(images(ca(STEPS, seed=0, **KW)), base)
    with pytest.raises(ConfigError, match="load_lora"):
        ca(STEPS, seed=0, lora_scale=0.5, **KW)


def test_a_saved_adapter_reloads_through_diffusers_and_cookanything(ca, tmp_path):
    params = add_lora(ca.pipe.transformer, LoraSpec(rank=4))
    randomise(params)
    trained = images(ca(STEPS, seed=0, **KW))
    save_lora(ca.pipe.transformer, tmp_path / "adapter", LoraSpec(rank=4))

    stock = tiny_flux(seed=0)  # diffusers' own loader on a fresh stock pipeline
    stock.set_progress_bar_config(disable=True)
    kw = dict(num_inference_steps=2, max_sequence_length=TINY_T5_MAX_LENGTH, output_type="np", height=32, width=32)
    before = stock(STEPS[0], generator=torch.Generator().manual_seed(0), **kw).images
    FluxPipeline.load_lora_weights(stock, tmp_path / "adapter")
    after = stock(STEPS[0], generator=torch.Generator().manual_seed(0), **kw).images
    assert not np.array_equal(before, after)

    fresh = cooklab.CookAnything.from_pipe(tiny_flux(seed=0)).load_lora(tmp_path / "adapter", scale=1.0)
    assert np.array_equal(images(fresh(STEPS, seed=0, **KW)), trained)
    assert fresh.lora["cookanything"]["source"] == str(tmp_path / "adapter")
    with cooklab.trace(fresh, capture=["layout"]) as tr:
        fresh(STEPS, seed=0, lora_scale=0.5, **KW)
    assert tr.canvas.lora == {"cookanything": 0.5}
    with pytest.raises(ConfigError, match="already loaded"):
        fresh.load_lora(tmp_path / "adapter")
    with pytest.raises(CheckpointError, match="pytorch_lora_weights"):
        cooklab.CookAnything.from_pipe(tiny_flux(seed=0)).load_lora(tmp_path / "nowhere")


def test_an_adapter_of_another_model_is_refused_and_nothing_stays(ca):
    """The shipped Toy Kitchen adapter has other widths than the tiny model: a CheckpointError, the base model
    intact."""
    base = images(ca(STEPS, seed=0, **KW))
    with pytest.raises(CheckpointError, match="not a LoRA for this Flux transformer"):
        ca.load_lora(Path(__file__).resolve().parents[1] / "data" / "toykitchen" / "lora" / "adapter")
    assert ca.lora == {} and np.array_equal(images(ca(STEPS, seed=0, **KW)), base)


def test_training_and_inference_build_the_same_canvas(tmp_path):
    trainer = LoraTrainer(config(tmp_path), progress=False)
    canvas, posterior = trainer.canvas_of(1)
    x0 = canvas_latents(posterior, trainer.ca.pipe.vae.config, "mode")
    recipe = trainer.examples[1].recipe
    ca = trainer.ca
    with cooklab.trace(ca, capture=["layout", "rope_ids"]) as tr:
        out = ca(recipe, seed=0, height=32, width=32, **{**KW, "max_sequence_length": None})
    assert out.layout == canvas.layout and tr.canvas.layout == canvas.layout
    assert torch.equal(tr.canvas.img_ids, canvas.img_ids.cpu()) and torch.equal(
        tr.canvas.txt_ids, canvas.txt_ids.cpu()
    )
    assert out.settings["regional_layers"] == sorted(canvas.state.layers)
    assert x0.shape == (1, canvas.layout.image_len, ca.pipe.transformer.config.in_channels)
    pictures = trainer.examples[1].images(32)
    assert torch.equal(encode_canvas(ca.pipe, pictures, 32, 32), x0)


def test_resume_takes_the_same_next_step_as_an_uninterrupted_run(tmp_path):
    cfg = config(tmp_path)
    whole = train_lora(cfg, progress=False)
    assert sorted(whole.losses) == [1, 2, 3, 4] and whole.resumed_from == 0
    out = Path(cfg.out)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    shutil.rmtree(out / "checkpoints" / "step-000004")  # as if killed after step 2's checkpoint
    again = train_lora(cfg, progress=False)
    assert again.resumed_from == 2 and again.losses == {3: whole.losses[3], 4: whole.losses[4]}
    rows = [json.loads(line) for line in (out / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]  # no duplicate rows
    info = json.loads((out / "training.json").read_text())
    assert info["steps"] == 4 and info["resumed_from"] == 2 and "peft" in info["versions"]
    changed = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"rank": 8})})
    shutil.rmtree(out / "checkpoints" / "step-000004")
    with pytest.raises(ConfigError, match="another lora"):
        train_lora(changed, progress=False)


def test_gradient_accumulation_and_checkpointing_run(tmp_path):
    cfg = config(tmp_path, steps=2, grad_accum=2, gradient_checkpointing=True, checkpoint_every=5)
    result = train_lora(cfg, progress=False)
    assert sorted(result.losses) == [1, 2]
    assert (Path(cfg.out) / "adapter" / "pytorch_lora_weights.safetensors").is_file()


def test_data_sources_and_their_errors(tmp_path):
    root = write_toy_folder(tmp_path / "toy", count=2, steps=3, size=32)
    from cooklab.training.config import DataSource

    folder = load_examples(DataSource(folder=root))
    assert [e.id for e in folder] == ["toy-5000", "toy-5001"] and len(folder[0].images()) == 3
    assert [e.id for e in load_examples(DataSource(recipegen=root))] == ["toy-5000", "toy-5001"]
    toy = load_examples(DataSource(toy={"count": 2, "steps": 3}))
    assert np.array_equal(np.asarray(toy[0].images(32)[1]), np.asarray(folder[0].images()[1]))  # the same renders
    manifest = tmp_path / "toy" / "train.jsonl"
    manifest.write_text(
        json.dumps(
            {
                "id": "a",
                "title": "T",
                "steps": ["one", "two"],
                "images": ["toy-5000/step_01.png", "toy-5000/step_02.png"],
            }
        )
        + "\n"
    )
    assert load_examples(DataSource(jsonl=manifest))[0].id == "a"
    (root / "toy-5001" / "step_03.png").unlink()
    with pytest.raises(ConfigError, match="one picture per step"):
        load_examples(DataSource(folder=root))
    with pytest.raises(ValueError, match="exactly one"):
        DataSource()


def test_the_cli_trains_from_a_config_file(tmp_path, capsys):
    from cooklab.cli import main

    (tmp_path / "train.yaml").write_text(
        "name: cli\nout: run\nmodel: tiny\ndata: {toy: {count: 2, steps: 2}}\nlora: {rank: 2}\n"
        "canvas: {height: 32, width: 32}\ntrain: {steps: 2, checkpoint_every: 1}\n"
    )
    assert load_train_config(tmp_path / "train.yaml").out == tmp_path / "run"
    assert main(["train-lora", str(tmp_path / "train.yaml")]) == 0
    assert "adapter in" in capsys.readouterr().out and (tmp_path / "run" / "adapter").is_dir()
    (tmp_path / "bad.yaml").write_text("name: x\nout: o\ndata: {}\n")
    assert main(["train-lora", str(tmp_path / "bad.yaml")]) == 2
    assert "exactly one data source" in capsys.readouterr().err


def test_the_loss_is_rectified_flow_at_the_noise_level_it_is_given(ca):
    canvas = ca.prepare_canvas(STEPS[:2], height=32, width=32)
    g = torch.Generator().manual_seed(3)
    x0, noise = (torch.randn(1, canvas.layout.image_len, 64, generator=g) for _ in range(2))
    seen = {}

    def model(hidden_states, timestep, **kwargs):  # a stand-in transformer: records its inputs, predicts 2 x
        seen["x"], seen["t"] = hidden_states, timestep
        return (2 * hidden_states,)

    sigma = torch.tensor(0.3)
    loss = flow_matching_loss(ca, canvas, x0, noise, sigma, guidance=1.0, model=model)
    x_sigma = 0.7 * x0 + 0.3 * noise
    assert torch.allclose(seen["x"], x_sigma) and torch.allclose(seen["t"], torch.tensor([0.3]))
    assert torch.allclose(loss, ((2 * x_sigma - (noise - x0)) ** 2).mean())


def test_sigma_is_shifted_as_the_sampler_shifts_the_canvas(tiny_flux):
    from diffusers.pipelines.flux.pipeline_flux import calculate_shift

    from cooklab.training import shift_sigma

    cfg = tiny_flux.scheduler.config
    u = torch.tensor([0.1, 0.5, 0.9])
    mu = calculate_shift(1024, cfg.base_image_seq_len, cfg.max_image_seq_len, cfg.base_shift, cfg.max_shift)
    assert torch.allclose(
        shift_sigma(u, cfg, 1024), torch.as_tensor(tiny_flux.scheduler.time_shift(mu, 1.0, u)).float()
    )
    static = {**cfg, "use_dynamic_shifting": False, "shift": 3.0}
    assert torch.allclose(shift_sigma(u, static, 1024), 3 * u / (1 + 2 * u))


def test_two_processes_train_each_on_its_share_and_resume_exactly(tmp_path):
    """torchrun with two CPU processes (DDP over gloo, as accelerate launch sets it up), bf16 mixed precision: every
    process's random state is checkpointed, and a resumed run takes the same steps as the uninterrupted one."""
    import os
    import subprocess
    import sys

    (tmp_path / "train.yaml").write_text(
        "name: ddp\nout: run\nmodel: tiny\ndata: {toy: {count: 6, steps: 2}}\nlora: {rank: 2}\n"
        "canvas: {height: 32, width: 32}\ntrain: {steps: 4, checkpoint_every: 2, learning_rate: 1.0e-3, "
        "mixed_precision: bf16}\n"
    )
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "cooklab",
        "train-lora",
        str(tmp_path / "train.yaml"),
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("trained ddp") == 1  # only the main process reports
    run = tmp_path / "run"
    assert sorted(p.name for p in (run / "checkpoints" / "step-000004").iterdir()) == [
        "adapter",
        "config.json",
        "rng-0.pt",
        "rng-1.pt",
        "state.pt",
    ]
    whole = [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines()]
    shutil.rmtree(run / "checkpoints" / "step-000004")
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "resumed at step 2" in again.stdout
    assert [json.loads(line) for line in (run / "loss.jsonl").read_text().splitlines()] == whole
