"""Run groundingdino-py 0.4.0 on transformers 5 and current torch, without editing site-packages.

groundingdino-py (the GroundingDINO code the paper used) was written against transformers 4.
On transformers 5 and torch >= 2.4 it breaks in these places; each is fixed here, by adding
what is missing or by how the model is built, never by changing the installed package:

1. ``BertModelWarper.__init__`` (``groundingdino/models/GroundingDINO/bertwarper.py``) copies
   ``BertModel.get_extended_attention_mask``, ``invert_attention_mask`` and ``get_head_mask``;
   transformers 5 removed all three (``AttributeError`` while building the model).
   ``ensure_bert_compat()`` adds faithful re-implementations to ``BertModel`` - only those
   that are missing, so on transformers 4 it changes nothing. It must run before the model is
   built (the warper keeps bound methods). The pure functions ``extended_attention_mask``,
   ``inverted_attention_mask`` and ``expanded_head_mask`` hold the maths.
2. The text encoder is loaded with ``BertModel.from_pretrained(text_encoder_type)`` and
   ``AutoTokenizer.from_pretrained(text_encoder_type)``, where ``text_encoder_type`` is the
   config's ``"bert-base-uncased"``: a hub download (fails offline), and any other hub id is
   refused (only that exact name or an existing folder is accepted). ``build_groundingdino``
   sets it to a *local folder* of bert-base-uncased and checks the folder first.
3. The config turns on activation checkpointing (``use_checkpoint`` / ``use_transformer_ckpt``),
   which calls ``torch.utils.checkpoint.checkpoint`` without ``use_reentrant``: torch warns on
   every block and announced an error for that call. Checkpointing only trades memory for
   compute in training, so ``build_groundingdino`` switches both off; outputs are unchanged.
4. ``groundingdino.util.inference.load_model`` calls ``torch.load`` without ``weights_only``,
   whose default became ``True`` in torch 2.6; cooklab loads checkpoints itself
   (``original.load_groundingdino_weights``) with ``map_location="cpu"`` and an explicit choice.
5. ``get_tokenlizer`` prints ``final text_encoder_type: ...`` on every build, and the forward
   pass raises deprecation warnings cooklab's user cannot act on (``torch.cuda.amp.autocast``,
   ``torch.meshgrid`` without ``indexing``). ``build_groundingdino`` swallows the print and
   ``quiet_upstream_warnings()`` filters exactly those warnings around a forward pass.
6. ``BertModelWarper.forward`` calls ``self.embeddings(..., past_key_values_length=...)`` and
   ``self.encoder(..., past_key_values=..., head_mask=..., return_dict=...)`` and reads
   ``encoder_outputs.past_key_values``. transformers renames these keywords from release to
   release (5.24: ``cache_length`` and ``cache``; the output field ``cache``).
   ``adapt_bert_calls(warper)`` reads the signatures the *installed* ``BertEmbeddings`` and
   ``BertEncoder`` have and gives that one warper instance translating ``forward`` methods
   (instance attributes: no class of transformers or groundingdino is changed, module names
   and state-dict keys stay as they are). It follows signatures, never version numbers: a
   keyword the installed method takes is passed as it is; a renamed one is passed under its
   new name (``KEYWORD_RENAMES``); one with no counterpart is dropped only when it carries its
   neutral value (``None``, ``0``, ``False``), and otherwise ``BertCompatError`` names the
   keyword and the installed transformers version.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
import transformers
from transformers import BertModel

from ..errors import CheckpointError

__all__ = [
    "KEYWORD_RENAMES",
    "RESTORED_BERT_METHODS",
    "BertCompatError",
    "adapt_bert_calls",
    "build_groundingdino",
    "ensure_bert_compat",
    "expanded_head_mask",
    "extended_attention_mask",
    "inverted_attention_mask",
    "quiet_upstream_warnings",
    "swint_ogc_config",
]

# ---------------------------------------------------------------------------
# The maths of the three removed BertModel methods (pure functions)
# ---------------------------------------------------------------------------


def extended_attention_mask(
    attention_mask: torch.Tensor, input_shape, dtype: torch.dtype, is_decoder: bool = False
) -> torch.Tensor:
    """A 0/1 keep-mask -> the additive attention bias BERT adds to its attention scores.

    ``attention_mask`` is 1 (keep) / 0 (mask), either per key ``[B, S]`` or per query-key
    pair ``[B, S, S]`` (GroundingDINO passes the latter: tokens attend only within their own
    sub-sentence). It is broadcast over heads (and queries)::

        [B, S]    -> m[:, None, None, :]   [B, 1, 1, S]
        [B, S, S] -> m[:, None, :, :]      [B, 1, S, S]

    and turned into an additive bias ``(1 - m) * min_dtype``, where ``min_dtype =
    torch.finfo(dtype).min``: 0 where attention is allowed, the most negative finite number
    where it is not, so ``softmax(scores + bias)`` gives masked keys a weight of exactly 0
    (unless a whole row is masked) without producing ``-inf - -inf = nan``.

    For a decoder (``is_decoder=True``) a ``[B, S]`` mask is first combined with the causal
    mask ``causal[i, j] = (j <= i)`` (keys before any cached prefix are always visible):
    ``m[:, None, :, :] = causal[:, None, :, :] * m[:, None, None, :]``.
    """
    if attention_mask.dim() == 3:
        extended = attention_mask[:, None, :, :]  # [B, 1, S, S]
    elif attention_mask.dim() == 2:
        if is_decoder:
            batch, seq_len = tuple(input_shape)[:2]
            ids = torch.arange(seq_len, device=attention_mask.device)
            causal = (
                (ids[None, None, :] <= ids[None, :, None]).expand(batch, seq_len, seq_len).to(attention_mask.dtype)
            )  # [B, S, S]
            prefix = attention_mask.shape[1] - seq_len  # cached keys in front of the current tokens
            if prefix > 0:
                causal = torch.cat(
                    [torch.ones(batch, seq_len, prefix, device=attention_mask.device, dtype=causal.dtype), causal],
                    dim=-1,
                )
            extended = causal[:, None, :, :] * attention_mask[:, None, None, :]  # [B, 1, S, prefix + S]
        else:
            extended = attention_mask[:, None, None, :]  # [B, 1, 1, S]
    else:
        raise ValueError(
            f"Wrong shape for input_ids (shape {tuple(input_shape)}) or attention_mask (shape "
            f"{tuple(attention_mask.shape)})"
        )
    extended = extended.to(dtype=dtype)
    return (1.0 - extended) * torch.finfo(dtype).min


def inverted_attention_mask(encoder_attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A 0/1 keep-mask over *encoder* tokens -> the additive bias of cross-attention.

    Same broadcast and inversion as ``extended_attention_mask`` without the causal part::

        [B, S_enc]        -> [B, 1, 1, S_enc]
        [B, S_q, S_enc]   -> [B, 1, S_q, S_enc]
        bias = (1 - m) * torch.finfo(dtype).min        0 = attend, min_dtype = masked
    """
    if encoder_attention_mask.dim() == 3:
        extended = encoder_attention_mask[:, None, :, :]
    elif encoder_attention_mask.dim() == 2:
        extended = encoder_attention_mask[:, None, None, :]
    else:
        raise ValueError(f"encoder_attention_mask must be 2-D or 3-D, got shape {tuple(encoder_attention_mask.shape)}")
    extended = extended.to(dtype=dtype)
    return (1.0 - extended) * torch.finfo(dtype).min


def expanded_head_mask(
    head_mask: torch.Tensor | None, num_hidden_layers: int, dtype: torch.dtype, is_attention_chunked: bool = False
):
    """A per-head keep-mask -> one multiplicative mask per layer, or ``[None] * layers``.

    1.0 keeps a head, 0.0 silences it (multiplies its attention probabilities
    ``[B, heads, S, S]``). The mask is made 5-D so that ``head_mask[layer]`` broadcasts over
    batch and positions::

        None               -> [None] * num_hidden_layers          (no head is masked)
        [heads]            -> [layers, 1, heads, 1, 1]  (the same mask for every layer)
        [layers, heads]    -> [layers, 1, heads, 1, 1]
        [layers, B, heads, S, S] is passed through

    and cast to ``dtype``; ``is_attention_chunked`` appends a trailing axis. Note that
    transformers 5's attention layers no longer read a head mask: this restores the method's
    contract for callers like GroundingDINO (which always passes ``None``), not the effect.
    """
    if head_mask is None:
        return [None] * num_hidden_layers
    if head_mask.dim() == 1:
        head_mask = head_mask[None, None, :, None, None].expand(num_hidden_layers, -1, -1, -1, -1)
    elif head_mask.dim() == 2:
        head_mask = head_mask[:, None, :, None, None]
    if head_mask.dim() != 5:
        raise ValueError(f"head_mask.dim != 5, instead {head_mask.dim()}")
    head_mask = head_mask.to(dtype=dtype)
    if is_attention_chunked:
        head_mask = head_mask.unsqueeze(-1)
    return head_mask


# ---------------------------------------------------------------------------
# The methods, as transformers 4 defined their signatures
# ---------------------------------------------------------------------------


def _get_extended_attention_mask(self, attention_mask, input_shape, device=None, dtype=None):
    """Additive attention bias from a 0/1 mask (restored by cooklab; see ``extended_attention_mask``)."""
    return extended_attention_mask(
        attention_mask, input_shape, dtype or self.dtype, is_decoder=bool(self.config.is_decoder)
    )


def _invert_attention_mask(self, encoder_attention_mask):
    """Additive cross-attention bias from a 0/1 mask (restored by cooklab; see ``inverted_attention_mask``)."""
    return inverted_attention_mask(encoder_attention_mask, self.dtype)


def _get_head_mask(self, head_mask, num_hidden_layers, is_attention_chunked=False):
    """Per-layer head mask or [None] * layers (restored by cooklab; see ``expanded_head_mask``)."""
    return expanded_head_mask(head_mask, num_hidden_layers, self.dtype, is_attention_chunked)


#: What ``ensure_bert_compat`` may add to ``transformers.BertModel``.
RESTORED_BERT_METHODS = {
    "get_extended_attention_mask": _get_extended_attention_mask,
    "invert_attention_mask": _invert_attention_mask,
    "get_head_mask": _get_head_mask,
}


def ensure_bert_compat() -> tuple[str, ...]:
    """Give ``transformers.BertModel`` the three methods groundingdino-py calls, if it lacks them.

    Returns the names added by this call (empty when nothing was missing: on transformers 4,
    or on any later call). Idempotent; a method the installed transformers defines is never
    replaced. Call it before building groundingdino-py's model.
    """
    added = []
    for name, method in RESTORED_BERT_METHODS.items():
        if not hasattr(BertModel, name):
            setattr(BertModel, name, method)
            added.append(name)
    return tuple(added)


# ---------------------------------------------------------------------------
# Keyword names that moved (fix 6)
# ---------------------------------------------------------------------------

#: Keywords groundingdino-py passes (transformers 4 names) -> the names later releases use.
KEYWORD_RENAMES = {
    "past_key_values_length": ("cache_length", "past_key_values_length"),
    "past_key_values": ("cache", "past_key_values"),
}


class BertCompatError(CheckpointError):
    """groundingdino-py calls BERT in a way the installed transformers no longer accepts."""


def _fail(what: str, detail: str) -> BertCompatError:
    return BertCompatError(
        f"groundingdino-py's BERT text encoder cannot run on transformers {transformers.__version__}: {what} "
        f"{detail}. "
        "cooklab.grounding.groundingdino_compat (fix 6) adapts renamed keywords; this one it does not know. "
        "Fix: install the transformers version of cooklab's lock (requirements/lock.txt), or use the default "
        "transformers backend (cooklab.grounding.GroundedSAM), and report the version."
    )


def _translating(method, what: str):
    """Wrap a bound ``forward`` so the keywords groundingdino-py passes reach it under the names it takes."""
    params = inspect.signature(method).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    @functools.wraps(method)
    def forward(*args, **kwargs):
        for name in list(kwargs):
            if name in params:
                continue
            target = next((new for new in KEYWORD_RENAMES.get(name, ()) if new in params), None)
            if target is not None:
                kwargs[target] = kwargs.pop(name)
            elif name in KEYWORD_RENAMES or not takes_any:
                value = kwargs.pop(name)
                if value is not None and value is not False and not (isinstance(value, int) and value == 0):
                    raise _fail(
                        what, f"got {name}={value!r}, which its forward{inspect.signature(method)} has no place for"
                    )
        return method(*args, **kwargs)

    return forward


class _EncoderOutput(dict):
    """The encoder's output with the transformers-4 field names groundingdino-py reads."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        if isinstance(key, (int, slice)):
            return tuple(v for v in self.values() if v is not None)[key]
        return super().__getitem__(key)


def _encoder_forward(method):
    """``encoder.forward`` that accepts groundingdino's keywords and returns its field names."""
    translate = _translating(method, "BertEncoder.forward")
    params = inspect.signature(method).parameters

    @functools.wraps(method)
    def forward(*args, **kwargs):
        if "head_mask" not in params:  # groundingdino passes get_head_mask(None) = [None] * layers: nothing to apply
            head_mask = kwargs.pop("head_mask", None)
            if head_mask is not None and any(m is not None for m in head_mask):
                raise _fail("BertEncoder.forward", "received a head mask, which its layers no longer take")
        out = translate(*args, **kwargs)
        if hasattr(out, "past_key_values") or not hasattr(out, "last_hidden_state"):
            return out
        return _EncoderOutput(
            last_hidden_state=out.last_hidden_state,
            past_key_values=getattr(out, "cache", None),
            hidden_states=getattr(out, "hidden_states", None),
            attentions=getattr(out, "attentions", None),
            cross_attentions=getattr(out, "cross_attentions", None),
        )

    return forward


def adapt_bert_calls(warper) -> tuple[str, ...]:
    """Fix 6: make one ``BertModelWarper``'s calls fit the installed ``BertEmbeddings`` / ``BertEncoder``.

    Returns the names of the sub-modules whose ``forward`` was wrapped (empty when the
    installed signatures already take groundingdino-py's keywords). Idempotent per instance.
    """
    adapted = []
    embeddings, encoder = warper.embeddings, warper.encoder
    if "forward" not in vars(embeddings):
        wanted = {"input_ids", "position_ids", "token_type_ids", "inputs_embeds", "past_key_values_length"}
        if not wanted <= set(inspect.signature(embeddings.forward).parameters):
            embeddings.forward = _translating(embeddings.forward, "BertEmbeddings.forward")
            adapted.append("embeddings")
    if "forward" not in vars(encoder):
        params = set(inspect.signature(encoder.forward).parameters)
        if not {"past_key_values", "head_mask", "return_dict", "output_attentions"} <= params:
            encoder.forward = _encoder_forward(encoder.forward)
            adapted.append("encoder")
    return tuple(adapted)


# ---------------------------------------------------------------------------
# Building groundingdino-py's model
# ---------------------------------------------------------------------------

_BERT_HELP = "`hf download google-bert/bert-base-uncased --local-dir DIR` on a machine with hub access, and pass DIR"


def swint_ogc_config() -> str:
    """Path of the GroundingDINO SwinT-OGC config bundled with groundingdino-py (the paper's detector)."""
    import groundingdino

    return str(Path(groundingdino.__file__).parent / "config" / "GroundingDINO_SwinT_OGC.py")


def check_text_encoder(text_encoder) -> Path:
    """The local folder of groundingdino-py's BERT text encoder; a CheckpointError naming the fix otherwise."""
    folder = Path(str(text_encoder)).expanduser()
    if not folder.is_dir():
        raise CheckpointError(
            f"text_encoder {str(text_encoder)!r} is not a local folder. groundingdino-py loads its BERT text encoder "
            "with "
            "BertModel.from_pretrained(<folder>) (a hub id other than 'bert-base-uncased' is refused, and that one "
            "needs "
            f"the network). Fix: {_BERT_HELP}."
        )
    if not (folder / "config.json").is_file() or not any(
        (folder / name).is_file() for name in ("vocab.txt", "tokenizer.json")
    ):
        raise CheckpointError(
            f"text_encoder folder {str(folder)!r} lacks config.json or the tokenizer files (vocab.txt / "
            "tokenizer.json); "
            f"it must hold bert-base-uncased's model and tokenizer. Fix: {_BERT_HELP}."
        )
    return folder


def build_groundingdino(config, text_encoder, **overrides) -> torch.nn.Module:
    """Build groundingdino-py's ``GroundingDINO`` (random weights, eval mode) in a way that runs here.

    ``config``: a groundingdino-py config file (``swint_ogc_config()`` for the paper's SwinT-OGC)
    or a dict of its settings. ``text_encoder``: a *local folder* with bert-base-uncased
    (model + tokenizer); its weights are overwritten by a GroundingDINO checkpoint, but its
    config and vocabulary are needed. ``overrides`` replace config entries (tests shrink the
    model with them). Applies fixes 1-3 and 5 of this module's docstring.
    """
    from groundingdino.models import build_model
    from groundingdino.util.slconfig import SLConfig

    folder = check_text_encoder(text_encoder)
    if isinstance(config, dict):
        args = SLConfig(dict(config))
    else:
        path = Path(str(config)).expanduser()
        if not path.is_file():
            raise CheckpointError(
                f"groundingdino_config {str(config)!r} is not a file; pass a groundingdino-py config .py file, e.g. "
                f"cooklab.grounding.original.SWINT_OGC_CONFIG ({swint_ogc_config()})."
            )
        args = SLConfig.fromfile(str(path))
    args.text_encoder_type = str(folder)  # fix 2
    args.use_checkpoint = False  # fix 3 (Swin backbone)
    args.use_transformer_ckpt = False  # fix 3 (encoder layers)
    for key, value in overrides.items():
        setattr(args, key, value)
    ensure_bert_compat()  # fix 1, before BertModelWarper copies the methods
    with contextlib.redirect_stdout(io.StringIO()), quiet_upstream_warnings():  # fix 5
        model = build_model(args)
    adapt_bert_calls(model.bert)  # fix 6
    tokenizer = model.tokenizer
    if len(tokenizer) <= 2:
        raise CheckpointError(
            f"text_encoder folder {str(folder)!r}: its tokenizer has only {len(tokenizer)} tokens. Fix: {_BERT_HELP}."
        )
    return model.eval()


@contextlib.contextmanager
def quiet_upstream_warnings() -> Iterator[None]:
    """Silence the deprecation warnings groundingdino-py / timm raise on current torch (fix 5), nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.autocast.*", category=FutureWarning)
        warnings.filterwarnings("ignore", message=r"torch\.meshgrid: in an upcoming release", category=UserWarning)
        warnings.filterwarnings(
            "ignore", message=r"Importing from timm\.models\.layers is deprecated", category=FutureWarning
        )
        yield
