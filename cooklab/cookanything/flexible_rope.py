"""Flexible RoPE (CookAnything, Sec. 3.3): position ids that restart in every step region.

Flux rotates each query and key by a rotation that depends on the token's position, so
attention scores depend on *relative* positions. An image token at grid cell (i, j) is

    z~_{i,j} = z_{i,j} R(i, j)

where ``R(i, j)`` is block-diagonal: ``FluxPosEmbed`` splits the head into three groups of
channel pairs (16, 56, 56 dims in FLUX.1) and rotates the pairs of group ``a`` by angles
``id_a * theta_k`` for the three position ids ``(id_0, id_1, id_2) = (0, i, j)``. Axis 0 is
unused in text-to-image (Kontext puts an image index there), axis 1 is the row and axis 2
the column. Text tokens all get ids ``(0, 0, 0)``, i.e. no rotation.

CookAnything draws all N steps on one canvas of N equal regions. With ordinary ("global")
ids the canvas is one tall image, so region n's rows are ``n * rows + i``: the last step
sits far from position 0 in RoPE space, while its text tokens sit at (0, 0, 0). RoPE
attention weakens with relative distance (the paper's "long-range dependency attenuation"),
so late regions follow their prompt less cleanly: the paper sees repeated step images from
step 2 and blurring by step 9. Flexible RoPE gives
every region its own rotation ``R^(n)(i, j)`` whose ids restart at (0, 0):

    z~^(n)_{i,j} = z^(n)_{i,j} R^(n)(i, j),    R^(n)(i, j) = R(i, j)  (optionally with id_0 = n)

so every region is at the same distance from the text as a single image would be. Which
region a token belongs to is then told by the regional attention mask (SRC), or, with
``step_axis=True``, by the otherwise unused axis 0 holding the step index n.

Token order and shapes (region-major, as for a vertical stack of regions):

    text ids   [T, 3]              zeros
    image ids  [N * rows * cols, 3] region n = rows n*rows*cols .. (n+1)*rows*cols - 1,
                                    row-major inside a region (as ``FluxPipeline`` packs)

``rows`` and ``cols`` are the *packed* token grid of one region (latent height and width
divided by 2). Stacking regions vertically makes region-major order equal to the raster
order of the tall canvas, so the same packed latents work with both kinds of ids. In
einops notation the image ids are ``"(n h w) ids"``: region n, then row h, then column w
(``RopeIds.grid`` unfolds them to ``"n h w ids"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat

from ..errors import ConfigError

__all__ = ["RopeIds", "canvas_image_ids", "single_image_ids", "text_ids"]


def _check_positive(**sizes: int) -> None:
    for name, value in sizes.items():
        if int(value) != value or value < 1:
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def single_image_ids(rows: int, cols: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Position ids of one image of ``rows x cols`` packed tokens: [rows*cols, 3] = (0, row, col).

    The same tensor as ``FluxPipeline._prepare_latent_image_ids(None, rows, cols, device, dtype)``.
    """
    _check_positive(rows=rows, cols=cols)
    ids = torch.zeros(rows, cols, 3)  # built in float32 and cast at the end, as the pipeline does
    ids[..., 1] = repeat(torch.arange(rows), "h -> h w", w=cols)  # row index, constant along a row
    ids[..., 2] = repeat(torch.arange(cols), "w -> h w", h=rows)  # column index, constant down a column
    return rearrange(ids, "h w ids -> (h w) ids").to(device=device, dtype=dtype)  # raster order, as Flux packs


def canvas_image_ids(
    n_regions: int,
    rows: int,
    cols: int,
    flexible: bool = True,
    step_axis: bool = False,
    device=None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Position ids of a canvas of ``n_regions`` regions of ``rows x cols`` tokens: [N*rows*cols, 3].

    * ``flexible=True`` (Flexible RoPE): every region gets ``single_image_ids(rows, cols)``;
      with ``step_axis=True`` axis 0 holds the region (step) index n.
    * ``flexible=False`` (original RoPE): the canvas is one tall image, region n's rows are
      ``n * rows + i``; equal to ``single_image_ids(n_regions * rows, cols)``. ``step_axis``
      must be False then (the step is already encoded in the row).
    """
    _check_positive(n_regions=n_regions, rows=rows, cols=cols)
    if not flexible:
        if step_axis:
            raise ConfigError(
                "step_axis=True needs flexible=True: global ids already tell regions apart by their rows; "
                "use flexible=True, step_axis=True to put the step index on axis 0"
            )
        return single_image_ids(n_regions * rows, cols, device=device, dtype=dtype)
    region = single_image_ids(rows, cols)  # [rows*cols, 3]
    ids = repeat(region, "p ids -> (n p) ids", n=n_regions)  # [N*rows*cols, 3], region-major
    if step_axis:
        ids[:, 0] = repeat(torch.arange(n_regions), "n -> (n p)", p=rows * cols)  # n for every token of region n
    return ids.to(device=device, dtype=dtype)


def text_ids(n_tokens: int, device=None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Position ids of ``n_tokens`` text tokens: [T, 3] zeros, as Flux uses (text is not rotated)."""
    if int(n_tokens) != n_tokens or n_tokens < 0:
        raise ConfigError(f"n_tokens must be a non-negative integer, got {n_tokens!r}")
    return torch.zeros(n_tokens, 3, device=device, dtype=dtype)


@dataclass
class RopeIds:
    """The position ids of one generation: text [T, 3] and image [N*rows*cols, 3].

    Flux concatenates them text first (``all_ids``), which is the order of ``region_of_token``.
    """

    text: torch.Tensor  # [T, 3]
    image: torch.Tensor  # [N*rows*cols, 3]
    n_regions: int
    rows: int
    cols: int
    flexible: bool
    step_axis: bool

    @classmethod
    def build(
        cls,
        n_text_tokens: int,
        n_regions: int,
        rows: int,
        cols: int,
        flexible: bool = True,
        step_axis: bool = False,
        device=None,
        dtype: torch.dtype = torch.float32,
    ) -> RopeIds:
        """Make the text and canvas ids together (arguments as in ``text_ids`` and ``canvas_image_ids``)."""
        image = canvas_image_ids(n_regions, rows, cols, flexible, step_axis, device=device, dtype=dtype)
        return cls(text_ids(n_text_tokens, device, dtype), image, n_regions, rows, cols, flexible, step_axis)

    @property
    def all_ids(self) -> torch.Tensor:
        """[T + N*rows*cols, 3]: text then image ids, the sequence ``FluxPosEmbed`` sees."""
        return torch.cat([self.text, self.image], dim=0)

    def region_of_token(self) -> torch.Tensor:
        """[T + N*rows*cols] int64: the region of every token in ``all_ids`` order, -1 for text."""
        text = torch.full((self.text.shape[0],), -1, dtype=torch.long)
        image = repeat(torch.arange(self.n_regions), "n -> (n p)", p=self.rows * self.cols)
        return torch.cat([text, image]).to(self.image.device)

    def grid(self, n: int) -> torch.Tensor:
        """[rows, cols, 3]: a view of region n's ids laid out on its grid, for plotting."""
        if not 0 <= n < self.n_regions:
            raise ConfigError(
                f"region {n} does not exist: there are {self.n_regions} regions (0..{self.n_regions - 1})"
            )
        return rearrange(self.image, "(n h w) ids -> n h w ids", n=self.n_regions, h=self.rows)[n]
