"""Baselines that Recipe Diffusion is compared against, built from the same Stable Diffusion pipeline.

``inpainting.py``: the paper's Inpainting (Container) and Inpainting (Interior) rows: a later frame
is the reference frame inpainted inside the container mask or its interior (stock
``StableDiffusionInpaintPipeline``). The module (and with it diffusers) is imported on first use.
"""

_PUBLIC = ("REGIONS", "InpaintingBaseline", "InpaintingOptions", "binarize", "blend_mask", "interior_mask", "rim_width")

__all__ = list(_PUBLIC)


def __getattr__(name: str):  # the pipeline (and with it diffusers) is imported on first use
    if name in _PUBLIC:
        from . import inpainting

        return getattr(inpainting, name)
    raise AttributeError(f"module 'cooklab.baselines' has no attribute {name!r}")
