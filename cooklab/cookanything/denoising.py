"""The denoising of a CookAnything canvas: noise, the canvas's attention processors, the flow-matching loop, decoding.

Stages 2, 4-6 of ``CookAnything.__call__`` (stages 1 and 3 are the canvas, ``canvas.py``):

2. ``_noise``: region n's latents are drawn from ``Generator(device).manual_seed(seed + n)``
   exactly as ``FluxPipeline`` draws one image's, then packed (``pack_latents``) one region
   after another;
4. ``attention_processors``: ``RegionalFluxAttnProcessor`` (``regional.py``) on every attention
   layer for a ``with`` block; SRC runs where the canvas's ``RegionalState`` says;
5. ``_denoise``: the scheduler shift ``mu`` comes from the canvas's real image sequence length;
   each step is one ``predict`` (the transformer on the whole canvas), two with true CFG;
6. ``_decode``: each region's latent is decoded on its own and the canvas is their vertical stack.

``predict`` and ``attention_processors`` are what LoRA training (``cooklab.training``) calls too.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import PIL.Image
import torch
from diffusers.pipelines.flux.pipeline_flux import retrieve_timesteps
from diffusers.utils.torch_utils import randn_tensor
from einops import rearrange

from ..console import ProgressBar
from .canvas import CanvasText
from .chunked import AnchorPin, last_pinned_step
from .flow_matching import pack_latents, time_shift_mu, unpack_latents
from .regional import RegionalFluxAttnProcessor, RegionalState, RegionLayout

__all__ = ["CanvasDenoising"]


class CanvasDenoising:
    """``CookAnything``'s denoising stages (a mixin:
    ``self.pipe`` is a ``FluxPipeline``, ``self._trace`` the trace).
    """

    def _noise(self, n_regions, height, width, seed, dtype, device) -> torch.Tensor:
        """[1, N P, C 4] packed canvas latents; region n drawn from Generator(device).manual_seed(seed + n).

        Each region's latent [1, C, H/8, W/8] is drawn exactly as ``FluxPipeline.prepare_latents``
        draws one image's; Flux then packs every 2 x 2 patch of latent pixels into one token of
        ``C 2 2`` channels. Regions follow each other (region-major), which is the raster order of
        the tall canvas.
        """
        channels = self.pipe.transformer.config.in_channels // 4
        latent_h, latent_w = (
            2 * (height // (self.pipe.vae_scale_factor * 2)),
            2 * (width // (self.pipe.vae_scale_factor * 2)),
        )
        regions = torch.cat(
            [
                randn_tensor(
                    (1, channels, latent_h, latent_w),
                    generator=torch.Generator(device).manual_seed(seed + n),
                    device=device,
                    dtype=dtype,
                )
                for n in range(n_regions)
            ]
        )  # [N, C, H/8, W/8]
        return pack_latents(regions)  # [1, N P, C 4]

    @contextmanager
    def attention_processors(self, state: RegionalState, install: bool):
        """Regional processors on every attention layer for the ``with`` block;
        the stock ones are back on every way out.

        state: what the processors read (the canvas's ``RegionalState``: layout, alpha, the layers and
        steps where SRC runs). ``install=False`` (SRC off and no trace) leaves the stock processors
        untouched. Training keeps them on through backward (gradient checkpointing recomputes in backward).
        """
        pipe = self.pipe
        originals = dict(pipe.transformer.attn_processors)
        try:  # from the moment processors are installed, every path out restores the stock ones
            if install:
                pipe.transformer.set_attn_processor(
                    {name: RegionalFluxAttnProcessor(name, state) for name in originals}
                )
            yield
        finally:
            if install:
                pipe.transformer.set_attn_processor(dict(originals))
            pipe.maybe_free_model_hooks()

    # ---- 5. denoising ------------------------------------------------------------------------
    def _timesteps(self, image_seq_len: int, num_inference_steps: int):
        """The flow-matching schedule, shifted by ``mu`` from the canvas's real image sequence length N P."""
        pipe = self.pipe
        sigmas = np.linspace(1.0, 1 / num_inference_steps, num_inference_steps)
        if getattr(pipe.scheduler.config, "use_flow_sigmas", False):
            sigmas = None
        mu = time_shift_mu(pipe.scheduler.config, image_seq_len)
        timesteps, _ = retrieve_timesteps(pipe.scheduler, num_inference_steps, self.device, sigmas=sigmas, mu=mu)
        return timesteps, mu

    def predict(self, latents, t, guidance, embeds, pooled, txt_ids, img_ids, model=None) -> torch.Tensor:
        """One transformer call on the whole canvas: the flow prediction [1, N P, C 4].

        Args:
            latents: [1, N P, C 4] the canvas's packed latents at timestep ``t``.
            t: the scheduler's timestep (0 to 1000; sigma times 1000).
            guidance: [1] the guidance embedding's value, or None for a model without one.
            embeds, pooled: the text stream [1, T, D] and the pooled embedding [1, Dp] (``CanvasText``).
            txt_ids, img_ids: RoPE ids [T, 3] and [N P, 3] (``Canvas``).
            model: the transformer to call (default the pipeline's; LoRA training passes the one accelerate
                prepared).
        """
        model = self.pipe.transformer if model is None else model
        return model(
            hidden_states=latents,
            timestep=t.expand(1).to(latents.dtype) / 1000,
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=embeds,
            txt_ids=txt_ids,
            img_ids=img_ids,
            return_dict=False,
        )[0]  # [1, N P, C 4]

    def _denoise(
        self,
        latents,
        state,
        text: CanvasText,
        txt_ids,
        img_ids,
        num_inference_steps,
        guidance_scale,
        true_cfg_scale,
        progress,
        anchor=None,
    ):
        """The flow-matching loop over the canvas; returns (final latents [1, N P, C 4], mu).

        With true CFG (``text.neg_embeds``) each step also predicts with the negative prompt and
        uses ``neg + true_cfg_scale * (pos - neg)``; the trace sees the conditional pass only.
        anchor: ``(z0 [1, A P, C 4], strength)`` of a chunk's anchor regions (the canvas's first A
        regions, ``chunked.AnchorPin``): their tokens are set to ``(1 - sigma_i) z0 + sigma_i eps``,
        eps their starting noise, before every pinned step i (and after the last, for strength 0).
        """
        pipe, device = self.pipe, self.device
        timesteps, mu = self._timesteps(latents.shape[1], num_inference_steps)
        guidance = (
            torch.full([1], guidance_scale, device=device, dtype=torch.float32)
            if pipe.transformer.config.guidance_embeds
            else None
        )
        pipe.scheduler.set_begin_index(0)
        pin = None
        if anchor is not None:
            z0, strength = anchor
            sigmas = pipe.scheduler.sigmas  # [S + 1], ending in 0
            pin = AnchorPin(z0, latents[:, : z0.shape[1]].clone(), sigmas, last_pinned_step(sigmas, strength))
        for i, t in enumerate(ProgressBar(timesteps, desc="denoising", enabled=progress)):
            if pin is not None:
                latents = pin.apply(latents, i)
            state.step = i
            if self._trace is not None:
                self._trace.set_step(i, float(t))
            noise_pred = self.predict(
                latents, t, guidance, text.embeds, text.pooled, txt_ids, img_ids
            )  # [1, N P, C 4]
            if text.neg_embeds is not None:  # true CFG
                state.observer = None  # the trace records the conditional branch only
                neg_noise_pred = self.predict(latents, t, guidance, text.neg_embeds, text.neg_pooled, txt_ids, img_ids)
                state.observer = self._trace
                noise_pred = neg_noise_pred + true_cfg_scale * (noise_pred - neg_noise_pred)
            latents = pipe.scheduler.step(noise_pred, t, latents, return_dict=False)[0]
        if pin is not None:
            latents = pin.apply(latents, len(timesteps))
        return latents, mu

    # ---- 6. outputs ----------------------------------------------------------------------------
    def _decode(self, latents, layout: RegionLayout, output_type):
        """Each region's latent decoded on its own; returns
        (images, canvas), the canvas the regions stacked top to bottom.

        ``output_type="latent"`` returns the packed latents instead: each region's [1, P, C 4] and the canvas's.
        """
        pipe, n = self.pipe, layout.n_regions
        if output_type == "latent":
            return list(rearrange(latents, "1 (n p) c -> n 1 p c", n=n)), latents
        images = []
        for z in unpack_latents(latents, n, layout.rows).split(1):  # [1, C, H/8, W/8]
            z = (z / pipe.vae.config.scaling_factor) + pipe.vae.config.shift_factor
            image = pipe.vae.decode(z, return_dict=False)[0]
            images.append(pipe.image_processor.postprocess(image, output_type=output_type)[0])
        if output_type == "pil":
            canvas = PIL.Image.fromarray(rearrange([np.asarray(im) for im in images], "n h w rgb -> (n h) w rgb"))
        elif output_type == "np":
            canvas = rearrange(images, "n h w rgb -> (n h) w rgb")
        else:  # "pt": [3, H, W] tensors
            canvas = rearrange(images, "n rgb h w -> rgb (n h) w")
        return images, canvas
