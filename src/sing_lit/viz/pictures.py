"""Pictures of what the model does, drawn with PIL: SR comparison grids (the paper's Fig. 5) and ranked lists.

Layout (all sizes in pixels; ``tile`` is one image, zoomed by an integer so it is at least
``MIN_TILE_W`` wide and its caption fits):

- SR grid, ``rows`` images x ``cols`` columns (``len(headers)``, ``len(SR_COLUMNS)`` by default), one
  header line on top (two with a ``title``) and a caption (PSNR) under each tile:
  width ``PAD + cols * (tile_w + PAD)``,
  height ``HEADER_H * (1 + bool(title)) + rows * (tile_h + LABEL_H + PAD) + PAD``.
- Ranked list, ``rows`` probes, each followed by its top-k gallery images:
  width ``PAD + (1 + k) * (tile_w + PAD) + SEP``, height ``PAD + rows * (tile_h + LABEL_H + PAD)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

from sing_lit.data.images import resize, scaled_size, to_uint8_tensor
from sing_lit.evaluation.sr_quality import psnr
from sing_lit.runtime.atomic import atomic_path

PAD, LABEL_H, HEADER_H, SEP, MIN_TILE_W, BOX = 4, 14, 14, 12, 64, 3
SR_COLUMNS = ("LR (nearest)", "bilinear", "bicubic", "SING SR", "HR")
MATCH, TEXT, BACKGROUND = (0, 200, 0), (0, 0, 0), (255, 255, 255)


def zoom_for(width: int) -> int:
    """Integer zoom that makes a tile at least ``MIN_TILE_W`` wide (nearest-neighbour, no blur)."""
    return max(1, math.ceil(MIN_TILE_W / width))


def to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) uint8, or float in [0, 1], to an RGB image."""
    if x.dtype != torch.uint8:
        x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
    return Image.fromarray(x.detach().cpu().permute(1, 2, 0).numpy(), "RGB")


def to_float(img: Image.Image) -> torch.Tensor:
    return to_uint8_tensor(img).float().div_(255.0)


@dataclass
class SRRow:
    """One row of the SR grid: each column's image (at the input size) and its PSNR against HR."""

    images: list[Image.Image]
    psnrs: list[float]
    columns: list[str] = field(default_factory=list)


LR_COLUMNS = ("LR (nearest)", "bilinear", "bicubic")


def sr_row_multi(hr: torch.Tensor, ratio: float, super_resolvers: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
                 resample: str = "bicubic", upscale: str = "bicubic") -> SRRow:
    """Down-sample one HR image (uint8, at the input size) by the anchor ratio m with ``resample``, then
    show it back at the input size: LR (nearest-upscaled, to show its pixels), bilinear, bicubic, each
    super-resolver in order (applied, as in training, to the ``upscale``-upscaled LR image as a float
    (1, 3, H, W) batch in [0, 1]) and HR. Column names: ``LR_COLUMNS``, the resolvers' keys, ``HR``."""
    hr_img = to_pil(hr)
    h, w = hr.shape[-2:]
    lr = resize(hr_img, scaled_size((h, w), ratio), resample)
    net_in = to_float(resize(lr, (h, w), upscale))
    srs = []
    with torch.no_grad():
        for super_resolve in super_resolvers.values():
            srs.append(super_resolve(net_in[None])[0].float().clamp(0, 1).cpu())
    interpolated = [lr.resize((w, h), Image.Resampling.NEAREST), resize(lr, (h, w), "bilinear"),
                    resize(lr, (h, w), "bicubic")]
    ref = to_float(hr_img)
    images = [*interpolated, *(to_pil(sr) for sr in srs), hr_img]
    psnrs = [float(psnr(to_float(im), ref)) for im in interpolated] + [float(psnr(sr, ref)) for sr in srs] + [math.inf]
    return SRRow(images, psnrs, [*LR_COLUMNS, *super_resolvers, "HR"])


def sr_row(hr: torch.Tensor, ratio: float, super_resolve: Callable[[torch.Tensor], torch.Tensor],
           resample: str = "bicubic", upscale: str = "bicubic") -> SRRow:
    """The ``SR_COLUMNS`` row of one model: :func:`sr_row_multi` with its SR net as the one super-resolver."""
    return sr_row_multi(hr, ratio, {SR_COLUMNS[3]: super_resolve}, resample, upscale)


def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _text(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, font) -> None:
    """Centre ``text`` in ``box`` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    draw.text((x0 + (x1 - x0 - (right - left)) / 2 - left, y0 + (y1 - y0 - (bottom - top)) / 2 - top), text,
              fill=TEXT, font=font)


def _tile(img: Image.Image, zoom: int) -> Image.Image:
    return img if zoom == 1 else img.resize((img.width * zoom, img.height * zoom), Image.Resampling.NEAREST)


def sr_grid(rows: Sequence[SRRow], tile_hw: tuple[int, int], headers: Sequence[str] = SR_COLUMNS,
            title: str | None = None) -> Image.Image:
    """The SR comparison grid (Fig. 5): one row per image, PSNR under each tile; ``title`` adds a line on top."""
    zoom = zoom_for(tile_hw[1])
    th, tw = tile_hw[0] * zoom, tile_hw[1] * zoom
    cols = len(headers)
    top = HEADER_H * (2 if title else 1)
    width = PAD + cols * (tw + PAD)
    canvas = Image.new("RGB", (width, top + len(rows) * (th + LABEL_H + PAD) + PAD), BACKGROUND)
    draw, font = ImageDraw.Draw(canvas), _font()
    if title:
        _text(draw, (0, 0, width, HEADER_H), title, font)
    for c, name in enumerate(headers):
        x = PAD + c * (tw + PAD)
        _text(draw, (x, top - HEADER_H, x + tw, top), name, font)
    for r, row in enumerate(rows):
        y = top + r * (th + LABEL_H + PAD)
        for c, (img, value) in enumerate(zip(row.images, row.psnrs)):
            x = PAD + c * (tw + PAD)
            canvas.paste(_tile(img, zoom), (x, y))
            _text(draw, (x, y + th, x + tw, y + th + LABEL_H), "PSNR (dB)" if math.isinf(value) else f"{value:.2f}",
                  font)
    return canvas


@dataclass
class RankedRow:
    """One probe and its top-k gallery images, best first, with which of them is the true match."""

    probe: Image.Image
    probe_label: str
    gallery: list[Image.Image]
    is_match: list[bool]


def ranked_strip(rows: Sequence[RankedRow], tile_hw: tuple[int, int], top_k: int) -> Image.Image:
    """Probe | its top-k gallery matches, ranks under each, the true match boxed in green."""
    zoom = zoom_for(tile_hw[1])
    th, tw = tile_hw[0] * zoom, tile_hw[1] * zoom
    canvas = Image.new("RGB", (PAD + (1 + top_k) * (tw + PAD) + SEP, PAD + len(rows) * (th + LABEL_H + PAD)),
                       BACKGROUND)
    draw, font = ImageDraw.Draw(canvas), _font()
    for r, row in enumerate(rows):
        y = PAD + r * (th + LABEL_H + PAD)
        canvas.paste(_tile(row.probe, zoom), (PAD, y))
        _text(draw, (PAD, y + th, PAD + tw, y + th + LABEL_H), row.probe_label, font)
        for i, (img, match) in enumerate(zip(row.gallery[:top_k], row.is_match[:top_k])):
            x = PAD + (1 + i) * (tw + PAD) + SEP
            canvas.paste(_tile(img, zoom), (x, y))
            if match:
                draw.rectangle((x, y, x + tw - 1, y + th - 1), outline=MATCH, width=BOX)
            _text(draw, (x, y + th, x + tw, y + th + LABEL_H), f"#{i + 1}", font)
    return canvas


def save_png(img: Image.Image, path: str | Path) -> Path:
    """Write a PNG atomically (a crash leaves the old picture or none, never half of one)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return path
