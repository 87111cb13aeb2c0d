"""Batched, deterministic drawing primitives for the generated tasks.

Everything works on a batch of ``n`` images at once: coordinates are ``(H, W)`` grids in image units
(x to the right, y downwards, both in [-1, 1], pixel centres), per-sample parameters are ``(n,)`` tensors, and
shapes are signed distances in image units (positive inside) turned into anti-aliased alpha masks. All
randomness comes from the one ``torch.Generator`` of a :class:`Canvas`, so a batch is a pure function of its
seed and labels.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from spectral.zoo.font import glyph_bitmaps

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.90, 0.12, 0.10),
    "orange": (1.00, 0.55, 0.05),
    "yellow": (0.95, 0.90, 0.12),
    "green": (0.12, 0.70, 0.20),
    "cyan": (0.10, 0.85, 0.90),
    "blue": (0.10, 0.22, 0.90),
    "purple": (0.55, 0.15, 0.75),
    "pink": (1.00, 0.55, 0.78),
    "brown": (0.55, 0.30, 0.10),
    "gray": (0.50, 0.50, 0.50),
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.05),
}


def rgb(name: str) -> Tensor:
    return torch.tensor(COLORS[name])


class Canvas:
    """A batch of ``n`` images of ``size``×``size`` pixels being drawn with one random generator."""

    def __init__(self, n: int, size: int, g: torch.Generator) -> None:
        self.n, self.size, self.g = n, size, g
        lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2.0 - 1.0
        self.y, self.x = torch.meshgrid(lin, lin, indexing="ij")

    # -- randomness ---------------------------------------------------------------------------------------
    def uniform(self, lo: float, hi: float, n: int | None = None) -> Tensor:
        return torch.rand(self.n if n is None else n, generator=self.g) * (hi - lo) + lo

    def randint(self, lo: int, hi: int, shape: tuple[int, ...] | None = None) -> Tensor:
        return torch.randint(lo, hi, shape if shape is not None else (self.n,), generator=self.g)

    def normal(self, *shape: int) -> Tensor:
        return torch.randn(*shape, generator=self.g)

    def coin(self, p: float) -> Tensor:
        return torch.rand(self.n, generator=self.g) < p

    def random_colors(self, lo: float = 0.0, hi: float = 1.0) -> Tensor:
        return torch.rand(self.n, 3, generator=self.g) * (hi - lo) + lo

    def palette(self, names: list[str] | tuple[str, ...], jitter: float = 0.0) -> Tensor:
        """A random colour per sample from named colours, jittered per channel."""
        table = torch.stack([rgb(c) for c in names])
        pick = table[self.randint(0, len(names))]
        return (pick + jitter * (torch.rand(self.n, 3, generator=self.g) * 2 - 1)).clamp(0, 1)

    def named(self, name: str, jitter: float = 0.0) -> Tensor:
        return self.palette((name,), jitter)

    # -- geometry -----------------------------------------------------------------------------------------
    def local(self, cx: Tensor | float, cy: Tensor | float, angle: Tensor | float = 0.0) -> tuple[Tensor, Tensor]:
        """Coordinates relative to (cx, cy), rotated by ``angle``: (n, H, W) each, still in image units."""
        cx, cy, angle = (_b(self, v) for v in (cx, cy, angle))
        dx, dy = self.x - cx, self.y - cy
        c, s = torch.cos(angle), torch.sin(angle)
        return c * dx + s * dy, -s * dx + c * dy

    def alpha(self, d: Tensor, softness: float = 1.0) -> Tensor:
        """Signed distance (image units, > 0 inside) → anti-aliased coverage in [0, 1] (about one pixel wide)."""
        return torch.sigmoid(d * (self.size / softness))

    # -- images -------------------------------------------------------------------------------------------
    def fill(self, color: Tensor) -> Tensor:
        color = color if color.ndim == 2 else color.expand(self.n, 3)
        return color[:, :, None, None].expand(self.n, 3, self.size, self.size).clone()

    def smooth_noise(self, res: int, channels: int = 1) -> Tensor:
        """Low-frequency noise in [0, 1]: uniform values on a res×res grid, bilinearly upsampled, (n, c, H, W)."""
        coarse = torch.rand(self.n, channels, res, res, generator=self.g)
        return F.interpolate(coarse, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def clutter(self, amount: Tensor | float, res: int = 5) -> Tensor:
        """A cluttered background: a random colour mixed with ``amount`` of coloured smooth noise."""
        base = self.fill(self.random_colors())
        noise = self.smooth_noise(res, 3)
        a = _b(self, amount)[:, None]
        return base * (1 - a) + noise * a

    def glyph(
        self, chars: str, index: Tensor, cx: Tensor, cy: Tensor, height: Tensor, angle: Tensor | float = 0.0,
        thickness: Tensor | float = 0.5,
    ) -> Tensor:
        """Alpha mask (n, H, W) of glyph ``chars[index]`` centred at (cx, cy), ``height`` tall (image units)."""
        bitmaps = glyph_bitmaps(chars)[index]
        cx, cy, height, angle = (_b(self, v).view(-1) for v in (cx, cy, height, angle))
        half_w, half_h = height * (5 / 7) / 2, height / 2
        c, s = torch.cos(angle), torch.sin(angle)
        theta = torch.stack([
            torch.stack([c / half_w, s / half_w, -(c * cx + s * cy) / half_w], -1),
            torch.stack([-s / half_h, c / half_h, (s * cx - c * cy) / half_h], -1),
        ], 1)
        grid = F.affine_grid(theta, [self.n, 1, self.size, self.size], align_corners=False)
        ink = F.grid_sample(bitmaps, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[:, 0]
        thr = 1.0 - _b(self, thickness)  # thicker strokes ← lower threshold
        return ((ink - thr) * 5 + 0.5).clamp(0, 1)


def contrast_color(cv: Canvas, img: Tensor, margin: float = 0.45) -> Tensor:
    """A random colour (n, 3) that stands out from the mean luminance of each background image."""
    lum = img.mean((1, 2, 3))
    level = torch.rand(cv.n, generator=cv.g) * (1 - margin)
    base = torch.where(lum > 0.5, level * 0.6, 1 - level * 0.6)
    tint = (torch.rand(cv.n, 3, generator=cv.g) - 0.5) * 0.5
    return (base[:, None] + tint).clamp(0, 1)


def _b(cv: Canvas, v: Tensor | float) -> Tensor:
    """A scalar or (n,) parameter as an (n, 1, 1) tensor."""
    t = v if isinstance(v, Tensor) else torch.tensor(float(v))
    return t.float().view(-1, 1, 1) if t.ndim else t.float().expand(cv.n).reshape(-1, 1, 1)


def paint(img: Tensor, alpha: Tensor, color: Tensor) -> Tensor:
    """Composite ``color`` ((3,) or (n, 3)) over ``img`` (n, 3, H, W) with coverage ``alpha`` (n, H, W)."""
    color = color if color.ndim == 2 else color.expand(img.shape[0], 3)
    a = alpha[:, None]
    return img * (1 - a) + color[:, :, None, None] * a


def finish(cv: Canvas, img: Tensor, noise: float = 0.0, blur: bool = False, contrast: Tensor | None = None) -> Tensor:
    """Optional blur, contrast scaling towards grey, pixel noise; clamped to [0, 1]."""
    if blur:
        img = F.avg_pool2d(F.pad(img, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    if contrast is not None:
        img = 0.5 + (img - 0.5) * contrast.view(-1, 1, 1, 1)
    if noise > 0:
        img = img + noise * cv.normal(*img.shape)
    return img.clamp(0, 1)


def downsample_blur(img: Tensor, factor: int = 2) -> Tensor:
    """Low resolution look (EuroSAT-style): average-pool then bilinear upsampling back to the same size."""
    size = img.shape[-1]
    small = F.avg_pool2d(img, factor)
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)


# -- signed distances (image units, positive inside), over local coordinates u, v -----------------------------
def sd_disk(u: Tensor, v: Tensor, r: Tensor | float) -> Tensor:
    return r - torch.sqrt(u * u + v * v + 1e-12)


def sd_ring(u: Tensor, v: Tensor, r: Tensor | float, width: Tensor | float) -> Tensor:
    return width / 2 - (torch.sqrt(u * u + v * v + 1e-12) - r).abs()


def sd_rect(u: Tensor, v: Tensor, hw: Tensor | float, hh: Tensor | float) -> Tensor:
    return torch.minimum(hw - u.abs(), hh - v.abs())


def sd_polygon(u: Tensor, v: Tensor, radius: Tensor | float, sides: Tensor | float) -> Tensor:
    """Regular polygon with circumradius ``radius`` and ``sides`` sides (per-sample tensors allowed), a vertex
    on the +u axis. Distance is exact along the apothem, approximate elsewhere (fine for masks)."""
    sides_t = sides if isinstance(sides, Tensor) else torch.tensor(float(sides))
    seg = 2 * math.pi / sides_t
    phi = torch.atan2(v, u)
    a = torch.remainder(phi, seg) - seg / 2
    r = torch.sqrt(u * u + v * v + 1e-12)
    return radius * torch.cos(math.pi / sides_t) - r * torch.cos(a)


def sd_ellipse(u: Tensor, v: Tensor, a: Tensor | float, b: Tensor | float) -> Tensor:
    k = torch.sqrt((u / a) ** 2 + (v / b) ** 2 + 1e-12)
    return (1 - k) * torch.minimum(torch.as_tensor(a), torch.as_tensor(b))


def sd_segment(u: Tensor, v: Tensor, x0: float, y0: float, x1: float, y1: float, width: float) -> Tensor:
    px, py = u - x0, v - y0
    dx, dy = x1 - x0, y1 - y0
    t = ((px * dx + py * dy) / (dx * dx + dy * dy)).clamp(0, 1)
    return width / 2 - torch.sqrt((px - t * dx) ** 2 + (py - t * dy) ** 2 + 1e-12)


def union(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.maximum(out, d)
    return out


def intersect(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.minimum(out, d)
    return out
