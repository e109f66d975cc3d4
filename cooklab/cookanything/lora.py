"""LoRA adapters on the Flux transformer: CookAnything's training-based mode, in the ecosystem's format.

CookAnything's training-based mode fine-tunes a rank-16 LoRA on the Flux transformer (RecipeGen,
20K steps) and uses it together with SRC, Flexible RoPE and CSCC. A LoRA replaces a frozen
projection ``W x`` by

    W x + (alpha / r) B A x        A [r, d_in], B [d_out, r], B = 0 at the start (the adapter starts as the identity)

and only ``A`` and ``B`` are trained. cooklab builds the adapter with peft (``LoraConfig``) through
diffusers' own ``transformer.add_adapter``, saves it with ``FluxPipeline.save_lora_weights`` (one
``pytorch_lora_weights.safetensors`` with ``transformer.``-prefixed keys and the peft config as
metadata), and loads any such adapter, ours or a published one, with ``FluxPipeline.load_lora_weights``.
So an adapter trained here is read by plain diffusers, and one trained elsewhere by cooklab.

A per-call scale ``s`` multiplies ``alpha / r``; ``s = 0`` adds exactly nothing (tested: bit-identical
to no adapter).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import CheckpointError, ConfigError

ADAPTER_NAME = "cookanything"
WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # diffusers' file name for LoRA weights
FLUX_ATTENTION_PROJECTIONS = (
    "to_q",
    "to_k",
    "to_v",
    "to_out.0",
    "add_q_proj",
    "add_k_proj",
    "add_v_proj",
    "to_add_out",
)
FLUX_FEED_FORWARD = (  # the double blocks' MLPs of the image and the text stream
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
)
LORA_TARGET_PRESETS = {  # the names diffusers' Flux LoRA script adapts (--lora_layers; its default: both)
    "attention": FLUX_ATTENTION_PROJECTIONS,
    "attention+feed_forward": FLUX_ATTENTION_PROJECTIONS + FLUX_FEED_FORWARD,
}


@dataclass(frozen=True)
class LoraSpec:
    """The adapter: rank, alpha, dropout and the projections it wraps (default: the paper's rank 16 on attention)."""

    rank: int = 16
    alpha: float = 16.0  # scaling alpha / rank = 1
    dropout: float = 0.0
    target_modules: tuple[str, ...] = field(default=FLUX_ATTENTION_PROJECTIONS)

    def __post_init__(self):
        if int(self.rank) < 1:
            raise ConfigError(f"LoRA rank={self.rank}: use at least 1 (CookAnything: 16).")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise ConfigError(f"LoRA dropout={self.dropout}: use a value in [0, 1).")
        if not self.target_modules:
            raise ConfigError(
                "LoRA target_modules is empty: name the projections to adapt, e.g. ['to_q', 'to_k', 'to_v']."
            )

    def peft_config(self):
        """The peft ``LoraConfig`` of this spec (B initialised to zero: the adapter starts as the identity)."""
        from peft import LoraConfig

        return LoraConfig(
            r=int(self.rank),
            lora_alpha=float(self.alpha),
            lora_dropout=float(self.dropout),
            target_modules=list(self.target_modules),
            init_lora_weights=True,
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "target_modules": list(self.target_modules)}


def target_modules_of(targets: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The module names of a preset of ``LORA_TARGET_PRESETS`` (``"attention"``, ``"attention+feed_forward"``),
    or an explicit list of names as given."""
    if isinstance(targets, str):
        if targets not in LORA_TARGET_PRESETS:
            raise ConfigError(
                f"LoRA target_modules={targets!r} is not a preset: give one of {sorted(LORA_TARGET_PRESETS)} or a "
                "list of module names (e.g. ['to_q', 'to_k', 'to_v'])."
            )
        return LORA_TARGET_PRESETS[targets]
    return tuple(targets)


def unmatched_targets(transformer, target_modules) -> list[str]:
    """The target names that match no module of ``transformer`` under peft's rule (a module whose name is the target
    or ends in ``"." + target``)."""
    names = [name for name, _ in transformer.named_modules()]
    return [t for t in target_modules if not any(n == t or n.endswith("." + t) for n in names)]


def add_lora(transformer, spec: LoraSpec, adapter_name: str = ADAPTER_NAME) -> list:
    """Wrap ``transformer``'s target projections with a new trainable LoRA;
    returns its parameters (the only trainable ones). Every target name must match a module of ``transformer``.
    """
    unmatched = unmatched_targets(transformer, spec.target_modules)
    if unmatched:
        raise ConfigError(
            f"LoRA target_modules {unmatched} match no module of the transformer: give a preset "
            f"({', '.join(f'{k}: {list(v)}' for k, v in LORA_TARGET_PRESETS.items())}) or names of its modules "
            "(transformer.named_modules())."
        )
    transformer.requires_grad_(False)
    transformer.add_adapter(spec.peft_config(), adapter_name=adapter_name)
    transformer.set_adapter(adapter_name)
    params = [p for name, p in transformer.named_parameters() if "lora_" in name and f".{adapter_name}." in name]
    for p in params:
        p.requires_grad_(True)
    return params


def lora_state_dict(transformer, adapter_name: str = ADAPTER_NAME) -> dict:
    """The adapter's weights with peft's key names (no adapter name), as diffusers saves them."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=adapter_name)


def load_lora_state_dict(transformer, state: dict, adapter_name: str = ADAPTER_NAME) -> None:
    """Put saved adapter weights (``lora_state_dict``'s keys) back into an adapter of the same spec."""
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(transformer, state, adapter_name=adapter_name)
    unexpected = [k for k in getattr(result, "unexpected_keys", []) if "lora_" in k]
    if unexpected:
        raise CheckpointError(
            f"the saved adapter has weights this one lacks ({unexpected[:3]} ...): it was trained with "
            "another rank or target_modules; resume with the spec in its config.json."
        )


def save_lora(transformer, directory: str | Path, spec: LoraSpec, adapter_name: str = ADAPTER_NAME) -> Path:
    """Write the adapter as ``FluxPipeline.save_lora_weights`` does (readable by
    ``FluxPipeline.load_lora_weights``).
    """
    from diffusers import FluxPipeline

    directory = Path(directory)
    state = {k: v.detach().to("cpu").contiguous() for k, v in lora_state_dict(transformer, adapter_name).items()}
    metadata = {**spec.peft_config().to_dict()}
    metadata["target_modules"] = sorted(metadata["target_modules"])  # a set in peft; JSON needs a list
    FluxPipeline.save_lora_weights(
        directory, transformer_lora_layers=state, weight_name=WEIGHT_NAME, transformer_lora_adapter_metadata=metadata
    )
    return directory / WEIGHT_NAME
