"""Baselines that Recipe Diffusion is compared against, built from the same Stable Diffusion pipeline.

``inpainting.py``: the paper's Inpainting (Container) and Inpainting (Interior) rows: a later frame
is the reference frame inpainted inside the container mask or its interior (stock
``StableDiffusionInpaintPipeline``), or everything but the container; by latent blending with the
text-to-image U-Net (default) or a 9-channel inpainting U-Net (``inpaint_unet=``).
``regional_sd.py``: CookAnything's mechanisms on the same U-Net (all steps on one canvas with SRC
and CSCC), the cross-backbone row. The modules (and with them
diffusers) are imported on first use.
"""

_PUBLIC = (
    "INPAINT_MODES",
    "REGIONS",
    "InpaintingBaseline",
    "InpaintingOptions",
    "binarize",
    "blend_mask",
    "interior_mask",
    "load_inpainting_unet",
    "rim_width",
)
_REGIONAL = ("RegionalSD", "RegionalSDOutput")

__all__ = list(_PUBLIC + _REGIONAL)


def __getattr__(name: str):  # the pipelines (and with them diffusers) are imported on first use
    if name in _PUBLIC:
        from . import inpainting

        return getattr(inpainting, name)
    if name in _REGIONAL:
        from . import regional_sd

        return getattr(regional_sd, name)
    raise AttributeError(f"module 'cooklab.baselines' has no attribute {name!r}")
