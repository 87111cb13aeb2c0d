"""The generated image-classification tasks of the demo zoo: a miniature of the papers' 8/14/20-task benchmark.

Every task is a deterministic, batched renderer ``draw(canvas, labels, nuisance)`` plus class names and prompt
templates. Tasks come in groups of related ones, as in the benchmark (MNIST/SVHN/GTSRB/EMNIST/KMNIST are all
glyphs; EuroSAT/RESISC45 are both remote sensing), and unrelated ones (textures, colours, counting,
orientation, faces, ...). Each task names the benchmark dataset whose slot it takes, so the 8 ⊂ 14 ⊂ 20 suites
keep the benchmark's order.

``nuisance`` (0 … 1) scales everything that is not the label: clutter, noise, jitter, low contrast. The task's
own data uses ``ZooConfig.task_nuisance`` (0.7); contrastive pre-training sees renderings spread over
[0, ``TrainConfig.pretrain_nuisance``], half of them captioned with another class of their task
(``TrainConfig.caption_confusion``), which is what leaves room between zero-shot and fine-tuned accuracy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from spectral.zoo import render as R
from spectral.zoo.render import Canvas, paint

DrawFn = Callable[[Canvas, Tensor, float], Tensor]


def b(t: Tensor | float) -> Tensor:
    """(n,) → (n, 1, 1) for broadcasting against (n, H, W) grids."""
    return t.view(-1, 1, 1) if isinstance(t, Tensor) else torch.tensor(float(t))


def by_class(cv: Canvas, labels: Tensor, fns: list[Callable[[Canvas, float], Tensor]], nz: float) -> Tensor:
    """Render each class with its own function on a sub-canvas of the samples with that label."""
    out = torch.empty(cv.n, 3, cv.size, cv.size)
    for c, fn in enumerate(fns):
        idx = (labels == c).nonzero().view(-1)
        if idx.numel():
            out[idx] = fn(Canvas(int(idx.numel()), cv.size, cv.g), nz)
    return out


@dataclass(frozen=True)
class TaskSpec:
    """One generated classification task."""

    name: str
    analogue: str  # the benchmark dataset whose slot this task takes
    group: str  # tasks of one group are related (shared primitives, concepts, prompts)
    classes: tuple[str, ...]
    templates: tuple[str, ...]
    draw: DrawFn = field(repr=False, compare=False)
    #: concept id per class; classes of different tasks with the same concept are positives for each other in
    #: contrastive pre-training (e.g. the digit 3 in MNIST-like and SVHN-like tasks)
    concepts: tuple[str, ...] = ()
    description: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def concept_ids(self) -> tuple[str, ...]:
        return self.concepts or tuple(f"{self.name}:{c}" for c in self.classes)

    def render(self, labels: Tensor, g: torch.Generator, nuisance: float = 1.0, size: int = 32) -> Tensor:
        """Images (n, 3, size, size) in [0, 1] for integer ``labels``, deterministic given ``g``'s state."""
        cv = Canvas(int(labels.numel()), size, g)
        img = self.draw(cv, labels.view(-1), float(nuisance))
        return img.clamp(0, 1)

    def prompts(self, class_index: int) -> list[str]:
        return [t.format(self.classes[class_index]) for t in self.templates]


# =============================================================================================================
# glyphs: digits (MNIST), house numbers (SVHN), signs (GTSRB), letters (EMNIST), rotated digits (KMNIST)
# =============================================================================================================
DIGITS = "0123456789"
LETTERS = "ABCDEFGHJK"


def _glyph_on_black(chars: str, full_rotation: bool = False) -> DrawFn:
    def draw(cv: Canvas, y: Tensor, nz: float) -> Tensor:
        angle = cv.uniform(-math.pi, math.pi) if full_rotation else cv.uniform(-0.35, 0.35) * (0.3 + nz)
        cx, cy = cv.uniform(-0.2, 0.2) * nz, cv.uniform(-0.2, 0.2) * nz
        height = cv.uniform(1.05, 1.45) - 0.25 * nz * cv.uniform(0, 1)
        thick = cv.uniform(0.45, 0.7) - (0.05 if full_rotation else 0.0)
        ink = cv.glyph(chars, y, cx, cy, height, angle, thick)
        img = paint(cv.fill(torch.zeros(3)), ink, torch.ones(3) * b(cv.uniform(0.75, 1.0)).view(-1, 1))
        return R.finish(cv, img, noise=0.06 * nz)
    return draw


def _house_numbers(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.35 + 0.5 * nz)
    ink_color = R.contrast_color(cv, img, 0.3 + 0.3 * nz)
    # distractor digits to the left and right, partly cut off (SVHN crops show neighbours)
    for side in (-1.0, 1.0):
        present = cv.coin(0.8 * nz).float()
        other = cv.randint(0, 10)
        ink = cv.glyph(DIGITS, other, side * cv.uniform(0.75, 0.95), cv.uniform(-0.1, 0.1), cv.uniform(1.0, 1.3),
                       cv.uniform(-0.15, 0.15), 0.5)
        img = paint(img, ink * b(present), ink_color)
    ink = cv.glyph(DIGITS, y, cv.uniform(-0.12, 0.12) * nz, cv.uniform(-0.12, 0.12) * nz, cv.uniform(1.05, 1.4),
                   cv.uniform(-0.2, 0.2) * nz, cv.uniform(0.4, 0.6))
    img = paint(img, ink, ink_color)
    return R.finish(cv, img, noise=0.08 * nz, blur=nz > 0.5, contrast=cv.uniform(1 - 0.5 * nz, 1.0))


SIGN_CLASSES = (
    "stop", "yield", "speed limit 30", "speed limit 50", "speed limit 80", "no entry", "ahead only", "turn left",
    "turn right", "priority road",
)


def _arrow(u: Tensor, v: Tensor, size: Tensor | float) -> Tensor:
    """Arrow pointing along +u, about 2·size long."""
    shaft = R.sd_rect(u + 0.25 * size, v, 0.55 * size, 0.14 * size)
    head = R.sd_polygon(u - 0.3 * size, v, 0.55 * size, 3.0)
    return R.union(shaft, head)


def _signs(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.3 + 0.6 * nz)
    cx, cy = cv.uniform(-0.2, 0.2) * nz, cv.uniform(-0.2, 0.2) * nz
    rad = b(cv.uniform(0.62, 0.85) - 0.15 * nz * cv.uniform(0, 1))
    tilt = cv.uniform(-0.25, 0.25) * nz
    u, v = cv.local(cx, cy, tilt)
    red, white, blue, yellow = (cv.named(c, 0.12 * nz) for c in ("red", "white", "blue", "yellow"))
    black = cv.named("black", 0.05)
    yl = y.view(-1, 1, 1)

    def sel(k: int | tuple[int, ...]) -> Tensor:
        ks = (k,) if isinstance(k, int) else k
        m = torch.zeros_like(yl, dtype=torch.bool)
        for kk in ks:
            m = m | (yl == kk)
        return m.float()

    disk = cv.alpha(R.sd_disk(u, v, rad))
    inner = cv.alpha(R.sd_disk(u, v, 0.76 * rad))
    bar = cv.alpha(R.sd_rect(u, v, 0.6 * rad, 0.16 * rad))
    # stop: red octagon with a white bar
    octagon = cv.alpha(R.sd_polygon(u, v, rad * 1.05, 8.0)) * sel(0)
    img = paint(img, octagon, red)
    img = paint(img, bar * sel(0), white)
    # yield: inverted triangle, red border
    uu, vv = cv.local(cx, cy, tilt + math.pi / 2)
    tri_out = cv.alpha(R.sd_polygon(uu, vv, rad * 1.15, 3.0)) * sel(1)
    tri_in = cv.alpha(R.sd_polygon(uu, vv, rad * 0.7, 3.0)) * sel(1)
    img = paint(paint(img, tri_out, red), tri_in, white)
    # round red-rimmed signs: speed limits (two digits) and no entry
    speed = sel((2, 3, 4))
    img = paint(img, disk * (speed + sel(5)), red)
    img = paint(img, inner * speed, white)
    first = torch.tensor([3, 5, 8])[(y.clamp(2, 4) - 2)]
    h = rad.view(-1) * 0.75
    for digit, off in ((first, -0.3), (torch.zeros_like(y), 0.3)):
        gx = cx + off * rad.view(-1) * torch.cos(tilt)
        gy = cy + off * rad.view(-1) * torch.sin(tilt)
        ink = cv.glyph(DIGITS, digit, gx, gy, h, tilt, 0.55)
        img = paint(img, ink * speed, black)
    img = paint(img, bar * sel(5), white)
    # blue mandatory signs with a white arrow: ahead / left / right
    mand = sel((6, 7, 8))
    img = paint(img, disk * mand, blue)
    arrow_angle = torch.tensor([-math.pi / 2, math.pi, 0.0])[(y.clamp(6, 8) - 6)] + tilt
    au, av = cv.local(cx, cy, arrow_angle)
    img = paint(img, cv.alpha(_arrow(au, av, 0.55 * rad)) * mand, white)
    # priority road: white diamond with a yellow centre
    du, dv = cv.local(cx, cy, tilt + math.pi / 4)
    img = paint(img, cv.alpha(R.sd_rect(du, dv, 0.78 * rad, 0.78 * rad)) * sel(9), white)
    img = paint(img, cv.alpha(R.sd_rect(du, dv, 0.55 * rad, 0.55 * rad)) * sel(9), yellow)
    return R.finish(cv, img, noise=0.06 * nz, blur=nz > 0.5, contrast=cv.uniform(1 - 0.5 * nz, 1.0))


# =============================================================================================================
# remote sensing: aerial scenes (RESISC45) and land use (EuroSAT) share primitives and some concepts
# =============================================================================================================
def _ground(cv: Canvas, nz: float, base: str = "green") -> Tensor:
    grass = {"green": (0.25, 0.55, 0.2), "dry": (0.6, 0.55, 0.3), "dark": (0.1, 0.3, 0.12)}[base]
    col = torch.tensor(grass) + 0.12 * nz * (torch.rand(cv.n, 3, generator=cv.g) - 0.5)
    img = cv.fill(col.clamp(0, 1))
    return img * (0.85 + 0.3 * cv.smooth_noise(6))


def _stripes_field(
    cv: Canvas, nz: float, colors: list[tuple[float, float, float]], freq: tuple[float, float]
) -> Tensor:
    u, _ = cv.local(0.0, 0.0, cv.uniform(0, math.pi))
    f = b(cv.uniform(*freq))
    phase = b(cv.uniform(0, 6.3))
    band = torch.floor((u * f + phase) % len(colors)).long().clamp(0, len(colors) - 1)
    table = torch.tensor(colors)
    img = table[band].permute(0, 3, 1, 2)
    return img * (0.85 + 0.3 * cv.smooth_noise(8)) + 0.05 * nz * cv.normal(cv.n, 3, 1, 1)


def _forest(cv: Canvas, nz: float) -> Tensor:
    img = cv.fill(torch.tensor((0.08, 0.28, 0.1)))
    crowns = cv.smooth_noise(12)
    return img * (0.6 + 0.9 * crowns) + 0.04 * nz * cv.normal(cv.n, 3, 1, 1)


def _river(cv: Canvas, nz: float, width: float = 0.16) -> Tensor:
    img = _ground(cv, nz)
    u, v = cv.local(0.0, cv.uniform(-0.3, 0.3), cv.uniform(0, math.pi))
    amp, freq, ph = b(cv.uniform(0.1, 0.35)), b(cv.uniform(1.5, 3.5)), b(cv.uniform(0, 6.3))
    d = width * 0.5 * (1 + 0.3 * nz) - (v - amp * torch.sin(freq * u + ph)).abs()
    return paint(img, cv.alpha(d), torch.tensor((0.15, 0.3, 0.6)))


def _highway(cv: Canvas, nz: float, lanes: float = 0.2) -> Tensor:
    img = _ground(cv, nz, "dry" if nz > 0.6 else "green")
    u, v = cv.local(cv.uniform(-0.2, 0.2), cv.uniform(-0.2, 0.2), cv.uniform(0, math.pi))
    img = paint(img, cv.alpha(R.sd_rect(u, v, 3.0, lanes)), torch.tensor((0.42, 0.42, 0.44)))
    dash = (torch.sin(u * 18) > 0).float()
    img = paint(img, cv.alpha(R.sd_rect(u, v, 3.0, 0.02)) * dash, torch.tensor((0.95, 0.85, 0.2)))
    return img


def _residential(cv: Canvas, nz: float, spacing: float = 0.5) -> Tensor:
    img = _ground(cv, nz)
    u, v = cv.local(cv.uniform(-1, 1), cv.uniform(-1, 1), cv.uniform(0, math.pi / 2))
    s = spacing
    street = torch.minimum((torch.remainder(u, s) - s / 2).abs(), (torch.remainder(v, s) - s / 2).abs())
    img = paint(img, cv.alpha(0.035 - (s / 2 - street).abs()), torch.tensor((0.55, 0.55, 0.55)))
    hu, hv = torch.remainder(u, s) - s / 2, torch.remainder(v, s) - s / 2
    roofs = cv.alpha(R.sd_rect(hu, hv, 0.12, 0.12))
    roof_color = cv.palette(("red", "brown", "orange", "gray"), 0.1)
    return paint(img, roofs, roof_color)


def _sea(cv: Canvas, nz: float) -> Tensor:
    img = cv.fill(torch.tensor((0.08, 0.2, 0.45)) + 0.1 * nz * (torch.rand(cv.n, 3, generator=cv.g) - 0.5))
    return img * (0.85 + 0.3 * cv.smooth_noise(4))


def _lake(cv: Canvas, nz: float) -> Tensor:
    img = _ground(cv, nz)
    u, v = cv.local(cv.uniform(-0.3, 0.3), cv.uniform(-0.3, 0.3), cv.uniform(0, 6.3))
    phi = torch.atan2(v, u)
    r = b(cv.uniform(0.4, 0.65)) * (1 + 0.18 * torch.sin(3 * phi + b(cv.uniform(0, 6.3))))
    return paint(img, cv.alpha(R.sd_disk(u, v, r)), torch.tensor((0.12, 0.25, 0.55)))


def _runway(cv: Canvas, nz: float) -> Tensor:
    img = _ground(cv, nz, "dry")
    u, v = cv.local(cv.uniform(-0.2, 0.2), cv.uniform(-0.2, 0.2), cv.uniform(0, math.pi))
    img = paint(img, cv.alpha(R.sd_rect(u, v, 3.0, 0.2)), torch.tensor((0.35, 0.35, 0.37)))
    dash = (torch.sin(u * 14) > 0.3).float()
    img = paint(img, cv.alpha(R.sd_rect(u, v, 3.0, 0.025)) * dash, torch.tensor((0.95, 0.95, 0.95)))
    apron = cv.alpha(R.sd_rect(u - 0.3, v - 0.55, 0.35, 0.12))
    return paint(img, apron, torch.tensor((0.6, 0.6, 0.6)))


def _baseball(cv: Canvas, nz: float) -> Tensor:
    img = _ground(cv, nz)
    u, v = cv.local(cv.uniform(-0.2, 0.2), cv.uniform(-0.2, 0.2), cv.uniform(0, 6.3))
    outfield = cv.alpha(R.intersect(R.sd_disk(u + 0.3, v + 0.3, 1.0), 1.2 - u, v + 1.8))
    img = paint(img, outfield * 0.6, torch.tensor((0.3, 0.65, 0.25)))
    img = paint(img, cv.alpha(R.sd_polygon(u, v, 0.45, 4.0)), torch.tensor((0.7, 0.5, 0.3)))
    return paint(img, cv.alpha(R.sd_polygon(u, v, 0.25, 4.0)), torch.tensor((0.3, 0.6, 0.25)))


def _harbor(cv: Canvas, nz: float) -> Tensor:
    u, v = cv.local(cv.uniform(-0.3, 0.3), 0.0, cv.uniform(0, 6.3))
    img = cv.fill(torch.tensor((0.55, 0.55, 0.55)))
    img = paint(img, cv.alpha(u + 0.0), torch.tensor((0.1, 0.25, 0.5)))
    for k in range(3):
        pier = cv.alpha(R.sd_rect(u - 0.45, v - (k - 1) * 0.55, 0.5, 0.05))
        img = paint(img, pier, torch.tensor((0.7, 0.7, 0.7)))
        boat = cv.alpha(R.sd_rect(u - 0.5, v - (k - 1) * 0.55 - 0.15, 0.12, 0.05))
        img = paint(img, boat, torch.tensor((0.95, 0.95, 0.95)))
    return img


def _parking(cv: Canvas, nz: float) -> Tensor:
    u, v = cv.local(cv.uniform(-1, 1), cv.uniform(-1, 1), cv.uniform(0, math.pi / 2))
    img = cv.fill(torch.tensor((0.4, 0.4, 0.42)))
    cu, cv_ = torch.remainder(u, 0.22) - 0.11, torch.remainder(v, 0.5) - 0.25
    cars = cv.alpha(R.sd_rect(cu, cv_, 0.06, 0.13))
    occupied = (cv.smooth_noise(16)[:, 0] > 0.3).float()
    colors = cv.smooth_noise(16, 3)
    return img * (1 - (cars * occupied)[:, None]) + colors * (cars * occupied)[:, None]


def _farmland(cv: Canvas, nz: float) -> Tensor:
    return _stripes_field(cv, nz, [(0.45, 0.6, 0.2), (0.75, 0.7, 0.35), (0.3, 0.5, 0.15), (0.6, 0.45, 0.25)],
                          (1.5, 3.0))


AERIAL_CLASSES = (
    "airport", "baseball diamond", "farmland", "forest", "harbor", "highway", "lake", "parking lot",
    "residential area", "river",
)
_AERIAL_FNS = [_runway, _baseball, _farmland, _forest, _harbor, _highway, _lake, _parking, _residential, _river]


def _aerial(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = by_class(cv, y, _AERIAL_FNS, nz)
    return R.finish(cv, img, noise=0.05 * nz, contrast=cv.uniform(1 - 0.35 * nz, 1.0))


def _industrial(cv: Canvas, nz: float) -> Tensor:
    img = cv.fill(torch.tensor((0.5, 0.5, 0.5)))
    for _ in range(3):
        u, v = cv.local(cv.uniform(-0.8, 0.8), cv.uniform(-0.8, 0.8), cv.uniform(0, math.pi / 2))
        tone = cv.uniform(0.6, 0.95)
        img = paint(img, cv.alpha(R.sd_rect(u, v, b(cv.uniform(0.2, 0.5)), b(cv.uniform(0.15, 0.35)))),
                    tone[:, None].expand(cv.n, 3))
    return img


def _pasture(cv: Canvas, nz: float) -> Tensor:
    img = cv.fill(torch.tensor((0.45, 0.65, 0.3)))
    return img * (0.93 + 0.14 * cv.smooth_noise(3))


def _herbaceous(cv: Canvas, nz: float) -> Tensor:
    img = cv.fill(torch.tensor((0.35, 0.45, 0.2)))
    return img * (0.6 + 0.8 * cv.smooth_noise(10, 3))


def _permanent_crop(cv: Canvas, nz: float) -> Tensor:
    img = cv.fill(torch.tensor((0.55, 0.45, 0.3)))
    u, v = cv.local(cv.uniform(-1, 1), cv.uniform(-1, 1), cv.uniform(0, math.pi / 2))
    tu, tv = torch.remainder(u, 0.25) - 0.125, torch.remainder(v, 0.25) - 0.125
    return paint(img, cv.alpha(R.sd_disk(tu, tv, 0.07)), torch.tensor((0.15, 0.4, 0.12)))


def _annual_crop(cv: Canvas, nz: float) -> Tensor:
    return _stripes_field(cv, nz, [(0.6, 0.5, 0.3), (0.5, 0.65, 0.3)], (3.0, 6.0))


LANDUSE_CLASSES = (
    "annual crop", "forest", "herbaceous vegetation", "highway", "industrial buildings", "pasture",
    "permanent crop", "residential buildings", "river", "sea or lake",
)
_LANDUSE_FNS = [
    _annual_crop, _forest, _herbaceous, lambda cv, nz: _highway(cv, nz, 0.12), _industrial, _pasture,
    _permanent_crop, lambda cv, nz: _residential(cv, nz, 0.35), lambda cv, nz: _river(cv, nz, 0.12), _sea,
]


def _landuse(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = by_class(cv, y, _LANDUSE_FNS, nz)
    img = R.downsample_blur(img, 2 if nz < 0.5 else 4)
    cast = 1 + 0.3 * nz * (torch.rand(cv.n, 3, 1, 1, generator=cv.g) - 0.5)
    return R.finish(cv, img * cast, noise=0.07 * nz)


# =============================================================================================================
# scenes (SUN397), shapes (Cars: the fine-grained slot), textures (DTD)
# =============================================================================================================
def _sky_ground(
    cv: Canvas, nz: float, sky: tuple, ground: tuple, horizon: tuple[float, float] = (-0.2, 0.2)
) -> tuple[Tensor, Tensor]:
    h = b(cv.uniform(*horizon))
    jit = 0.1 * nz
    sky_c = (torch.tensor(sky) + jit * (torch.rand(cv.n, 3, generator=cv.g) - 0.5)).clamp(0, 1)
    ground_c = (torch.tensor(ground) + jit * (torch.rand(cv.n, 3, generator=cv.g) - 0.5)).clamp(0, 1)
    img = paint(cv.fill(sky_c), cv.alpha(cv.y - h), ground_c)
    return img, h


def _beach(cv, nz):
    img, h = _sky_ground(cv, nz, (0.55, 0.75, 0.95), (0.9, 0.8, 0.55))
    return paint(img, cv.alpha(R.intersect(cv.y - h, h + 0.3 - cv.y)), torch.tensor((0.15, 0.45, 0.75)))


def _forest_scene(cv, nz):
    img, h = _sky_ground(cv, nz, (0.7, 0.8, 0.9), (0.15, 0.35, 0.12))
    for k in range(6):
        x0 = b(cv.uniform(-1, 1))
        u, v = cv.x - x0, cv.y - (h - 0.15)
        img = paint(img, cv.alpha(R.sd_polygon(v, u, b(cv.uniform(0.25, 0.45)), 3.0)) * 1.0,
                    torch.tensor((0.05, 0.3 + 0.04 * k, 0.1)))
    return img


def _ocean(cv, nz):
    img, h = _sky_ground(cv, nz, (0.5, 0.7, 0.95), (0.1, 0.3, 0.65), (-0.5, -0.1))
    waves = (torch.sin(cv.y * 25 + 3 * torch.sin(cv.x * 4 + b(cv.uniform(0, 6)))) > 0.7).float() * (cv.y > h).float()
    return paint(img, waves * 0.5, torch.tensor((0.8, 0.9, 1.0)))


def _desert(cv, nz):
    img, h = _sky_ground(cv, nz, (0.45, 0.65, 0.95), (0.85, 0.7, 0.4))
    dune = cv.alpha(cv.y - h - 0.15 - 0.12 * torch.sin(cv.x * 3 + b(cv.uniform(0, 6))))
    img = paint(img, dune, torch.tensor((0.75, 0.55, 0.3)))
    sun = cv.alpha(R.sd_disk(cv.x - b(cv.uniform(-0.7, 0.7)), cv.y + 0.7, 0.15))
    return paint(img, sun, torch.tensor((1.0, 0.95, 0.6)))


def _mountains(cv, nz):
    img, h = _sky_ground(cv, nz, (0.5, 0.7, 0.95), (0.92, 0.94, 0.97), (0.2, 0.5))
    for _ in range(3):
        x0 = b(cv.uniform(-0.9, 0.9))
        rad = b(cv.uniform(0.5, 0.8))
        u, v = cv.x - x0, cv.y - h
        mount = R.sd_polygon(-v, u, rad, 3.0)
        img = paint(img, cv.alpha(mount), torch.tensor((0.45, 0.42, 0.45)))
        cap = R.intersect(mount, -(cv.y - (h - 0.6 * rad)))
        img = paint(img, cv.alpha(cap), torch.tensor((0.97, 0.97, 1.0)))
    return img


def _city_night(cv, nz):
    img, h = _sky_ground(cv, nz, (0.03, 0.04, 0.15), (0.08, 0.08, 0.1), (0.4, 0.7))
    for _ in range(5):
        x0, w, top = b(cv.uniform(-1, 1)), b(cv.uniform(0.12, 0.25)), b(cv.uniform(-0.6, 0.2))
        building = R.intersect(w - (cv.x - x0).abs(), cv.y - top)
        img = paint(img, cv.alpha(building), torch.tensor((0.12, 0.12, 0.16)))
        windows = ((torch.sin(cv.x * 40) > 0.3) & (torch.sin(cv.y * 40) > 0.3)).float()
        img = paint(img, cv.alpha(building - 0.03) * windows * 0.8, torch.tensor((1.0, 0.85, 0.3)))
    return img


def _sunset(cv, nz):
    img, h = _sky_ground(cv, nz, (0.95, 0.45, 0.2), (0.2, 0.1, 0.15))
    grad = ((cv.y + 1) / 2).clamp(0, 1)[None, None]
    img = img * (1 - 0.5 * (1 - grad)) + torch.tensor((0.5, 0.2, 0.6)).view(1, 3, 1, 1) * 0.5 * (1 - grad)
    img = paint(img, cv.alpha(R.sd_disk(cv.x - b(cv.uniform(-0.5, 0.5)), cv.y - h, 0.3)) * (cv.y < h).float(),
                torch.tensor((1.0, 0.75, 0.2)))
    return img


def _meadow(cv, nz):
    img, h = _sky_ground(cv, nz, (0.55, 0.75, 0.95), (0.45, 0.75, 0.3), (-0.4, 0.0))
    dots = (cv.smooth_noise(16)[:, 0] > 0.8).float() * (cv.y > h).float()
    return paint(img, dots, cv.palette(("yellow", "white", "pink", "red"), 0.1))


SCENE_CLASSES = ("beach", "forest", "ocean", "desert", "snowy mountains", "city at night", "sunset", "meadow")
_SCENE_FNS = [_beach, _forest_scene, _ocean, _desert, _mountains, _city_night, _sunset, _meadow]


def _scenes(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = by_class(cv, y, _SCENE_FNS, nz)
    # weather, haze and colour casts: a coloured smooth-noise veil and a per-image tint
    veil = cv.smooth_noise(4, 3)
    amount = (0.55 * nz * torch.rand(cv.n, generator=cv.g)).view(-1, 1, 1, 1)
    img = img * (1 - amount) + veil * amount
    tint = 1 + 0.5 * nz * (torch.rand(cv.n, 3, 1, 1, generator=cv.g) - 0.5)
    bright = cv.uniform(1 - 0.4 * nz, 1 + 0.2 * nz).view(-1, 1, 1, 1)
    return R.finish(cv, img * bright * tint, noise=0.08 * nz, contrast=cv.uniform(1 - 0.5 * nz, 1.0))


SHAPE_CLASSES = ("circle", "triangle", "square", "pentagon", "hexagon", "star", "cross", "ring")


def _shapes(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.2 + 0.6 * nz)
    u, v = cv.local(cv.uniform(-0.15, 0.15) * (nz + 0.3), cv.uniform(-0.15, 0.15) * (nz + 0.3), cv.uniform(0, 6.3))
    rad = b(cv.uniform(0.6, 0.85) - 0.2 * nz * cv.uniform(0, 1))
    yl = y.view(-1, 1, 1)
    sides = torch.tensor([64.0, 3.0, 4.0, 5.0, 6.0, 5.0, 4.0, 64.0])[y].view(-1, 1, 1)
    d = R.sd_polygon(u, v, rad, sides)
    # star: a pentagon whose edges are pulled in between the vertices
    phi = torch.atan2(v, u)
    r = torch.sqrt(u * u + v * v + 1e-12)
    star = rad * (0.55 + 0.45 * torch.cos(5 * phi).clamp(min=0) ** 3) - r
    cross = R.union(R.sd_rect(u, v, rad, 0.3 * rad), R.sd_rect(u, v, 0.3 * rad, rad))
    ring = R.sd_ring(u, v, 0.7 * rad, 0.35 * rad)
    d = torch.where(yl == 5, star, torch.where(yl == 6, cross, torch.where(yl == 7, ring, d)))
    img = paint(img, cv.alpha(d), R.contrast_color(cv, img))
    return R.finish(cv, img, noise=0.05 * nz, contrast=cv.uniform(1 - 0.4 * nz, 1.0))


TEXTURE_CLASSES = ("striped", "checkered", "dotted", "wavy", "zigzagged", "grid", "speckled", "concentric circles")


def _textures(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    u, v = cv.local(cv.uniform(-1, 1), cv.uniform(-1, 1), cv.uniform(0, math.pi))
    f = b(cv.uniform(7, 14))
    yl = y.view(-1, 1, 1)
    sharp = 6.0
    pats = [
        torch.sin(f * u),
        torch.sin(f * u) * torch.sin(f * v),
        torch.cos(f * u) * torch.cos(f * v) - 0.5,
        torch.sin(f * u + 2.0 * torch.sin(0.6 * f * v)),
        torch.sin(f * (u + 0.25 * (2 / math.pi) * torch.asin(torch.sin(0.8 * f * v)))),
        torch.maximum(torch.cos(f * u), torch.cos(f * v)) - 0.8,
        (cv.smooth_noise(24)[:, 0] - 0.72) * 6,
        torch.sin(f * torch.sqrt(u * u + v * v + 1e-9)),
    ]
    val = torch.zeros_like(u)
    for k, p in enumerate(pats):
        val = torch.where(yl == k, p, val)
    p = torch.sigmoid(val * sharp)
    bgc = cv.random_colors()
    fg = ((1 - bgc) * 0.7 + 0.3 * cv.random_colors()).clamp(0, 1)  # always distinguishable from the background
    contrast = cv.uniform(1 - 0.5 * nz, 1.0)
    fg = bgc + (fg - bgc) * contrast[:, None]
    img = bgc[:, :, None, None] * (1 - p[:, None]) + fg[:, :, None, None] * p[:, None]
    return R.finish(cv, img, noise=0.08 * nz, blur=nz > 0.5)


# =============================================================================================================
# 14-task additions: objects (CIFAR100), colours (STL10), flowers (Flowers102), orientation (Pets),
#                    tissue (PCAM), faces (FER2013)
# =============================================================================================================
OBJECT_SHAPES = ("circle", "square", "triangle")
OBJECT_COLORS = ("red", "green", "blue", "yellow")
OBJECT_CLASSES = tuple(f"{c} {s}" for s in OBJECT_SHAPES for c in OBJECT_COLORS)


def _shape_sd(u: Tensor, v: Tensor, shape: Tensor, rad: Tensor) -> Tensor:
    s = shape.view(-1, 1, 1)
    return torch.where(s == 0, R.sd_disk(u, v, rad),
                       torch.where(s == 1, R.sd_polygon(u, v, rad * 1.2, 4.0), R.sd_polygon(u, v, rad * 1.3, 3.0)))


def _objects(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.3 + 0.6 * nz) * 0.6 + 0.2
    shape, color = y // len(OBJECT_COLORS), y % len(OBJECT_COLORS)
    table = torch.stack([R.rgb(c) for c in OBJECT_COLORS])
    col = (table[color] + 0.25 * nz * (torch.rand(cv.n, 3, generator=cv.g) - 0.5)).clamp(0, 1)
    u, v = cv.local(cv.uniform(-0.3, 0.3) * nz, cv.uniform(-0.3, 0.3) * nz, cv.uniform(0, 6.3))
    img = paint(img, cv.alpha(_shape_sd(u, v, shape, b(cv.uniform(0.35, 0.6)))), col)
    return R.finish(cv, img, noise=0.06 * nz)


COLOR_CLASSES = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink", "brown", "gray")


def _colors(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    grey = cv.uniform(0.1, 0.9)[:, None].expand(cv.n, 3)
    img = cv.fill(grey) * (1 - 0.5 * nz) + cv.clutter(1.0) * 0.5 * nz
    table = torch.stack([R.rgb(c) for c in COLOR_CLASSES])
    col = table[y] * cv.uniform(1 - 0.35 * nz, 1.0)[:, None] + 0.14 * nz * (torch.rand(cv.n, 3, generator=cv.g) - 0.5)
    u, v = cv.local(cv.uniform(-0.3, 0.3), cv.uniform(-0.3, 0.3), cv.uniform(0, 6.3))
    img = paint(img, cv.alpha(_shape_sd(u, v, cv.randint(0, 3), b(cv.uniform(0.3, 0.6)))), col.clamp(0, 1))
    return R.finish(cv, img, noise=0.05 * nz)


FLOWER_CLASSES = ("three petals", "four petals", "five petals", "six petals", "seven petals", "eight petals")


def _flowers(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = _ground(cv, nz, "dark" if nz > 0.5 else "green")
    k = (y + 3).float()
    cx, cy = cv.uniform(-0.2, 0.2) * nz, cv.uniform(-0.2, 0.2) * nz
    rad = cv.uniform(0.6, 0.85)
    base = cv.uniform(0, 6.3)
    petal_color = cv.palette(("pink", "purple", "red", "white", "orange", "blue"), 0.15 * nz)
    for j in range(8):
        present = (j < k).float().view(-1, 1, 1)
        ang = base + 2 * math.pi * j / k
        pu, pv = cv.local(cx + 0.45 * rad * torch.cos(ang), cy + 0.45 * rad * torch.sin(ang), ang)
        petal = cv.alpha(R.sd_ellipse(pu, pv, b(0.42 * rad), b(0.13 * rad * (1.3 - 0.05 * k))))
        img = paint(img, petal * present, petal_color)
    u, v = cv.local(cx, cy)
    img = paint(img, cv.alpha(R.sd_disk(u, v, b(0.16 * rad))), torch.tensor((0.95, 0.8, 0.15)))
    return R.finish(cv, img, noise=0.05 * nz, blur=nz > 0.5)


FACE_CLASSES = ("happy", "sad", "surprised", "angry", "neutral", "sleepy")


def _faces(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.2 + 0.5 * nz)
    cx, cy = cv.uniform(-0.15, 0.15) * nz, cv.uniform(-0.15, 0.15) * nz
    rad = b(cv.uniform(0.7, 0.9))
    tilt = cv.uniform(-0.3, 0.3) * nz
    u, v = cv.local(cx, cy, tilt)
    u, v = u / rad, v / rad  # face units
    skin = cv.palette(("yellow", "orange", "pink"), 0.1)
    img = paint(img, cv.alpha(R.sd_disk(u, v, 1.0) * rad), skin)
    dark = torch.tensor((0.1, 0.07, 0.05))
    yl = y.view(-1, 1, 1)
    open_eyes = R.union(R.sd_disk(u - 0.35, v + 0.25, 0.12), R.sd_disk(u + 0.35, v + 0.25, 0.12))
    closed_eyes = R.union(R.sd_rect(u - 0.35, v + 0.22, 0.16, 0.035), R.sd_rect(u + 0.35, v + 0.22, 0.16, 0.035))
    eyes = torch.where(yl == 5, closed_eyes, open_eyes)
    smile = R.intersect(R.sd_ring(u, v + 0.05, 0.5, 0.1), v - 0.25)
    frown = R.intersect(R.sd_ring(u, v - 0.9, 0.45, 0.1), 0.62 - v)
    o_mouth = R.sd_ring(u, v - 0.45, 0.18, 0.1)
    flat = R.sd_rect(u, v - 0.45, 0.32, 0.05)
    brows = R.union(R.sd_segment(u, v, -0.55, -0.6, -0.15, -0.42, 0.09),
                    R.sd_segment(u, v, 0.15, -0.42, 0.55, -0.6, 0.09))
    mouth = torch.where(yl == 0, smile, torch.where((yl == 1) | (yl == 3), frown, torch.where(yl == 2, o_mouth, flat)))
    feat = R.union(eyes, mouth)
    feat = torch.where(yl == 3, R.union(feat, brows), feat)
    img = paint(img, cv.alpha(feat * rad), dark)
    return R.finish(cv, img, noise=0.06 * nz, contrast=cv.uniform(1 - 0.4 * nz, 1.0))


ORIENTATION_CLASSES = ("right", "down right", "down", "down left", "left", "up left", "up", "up right")


def _orientation(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.2 + 0.6 * nz)
    angle = y.float() * (math.pi / 4) + cv.uniform(-0.3, 0.3) * nz
    u, v = cv.local(cv.uniform(-0.2, 0.2) * nz, cv.uniform(-0.2, 0.2) * nz, angle)
    color = R.contrast_color(cv, img)
    img = paint(img, cv.alpha(_arrow(u, v, b(cv.uniform(0.55, 0.8)))), color)
    return R.finish(cv, img, noise=0.06 * nz)


TISSUE_CLASSES = ("healthy tissue", "tumor tissue")


def _tissue(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.fill(torch.tensor((0.93, 0.75, 0.85))) * (0.9 + 0.2 * cv.smooth_noise(6, 3))
    tumor = y.float()
    overlap = min(1.0, 1.1 * nz)
    count = torch.round(4 + 10 * (tumor * (1 - overlap) + overlap * torch.rand(cv.n, generator=cv.g)))
    size = 0.07 + 0.07 * (tumor * (1 - overlap) + overlap * torch.rand(cv.n, generator=cv.g))
    darkness = 0.4 + 0.4 * tumor
    nucleus = (torch.tensor((0.45, 0.2, 0.55)) * (1 - 0.6 * darkness[:, None])).clamp(0, 1)
    for j in range(15):
        present = (j < count).float().view(-1, 1, 1)
        u, v = cv.local(cv.uniform(-0.9, 0.9), cv.uniform(-0.9, 0.9), cv.uniform(0, 6.3))
        ecc = b(1 + 0.6 * tumor * torch.rand(cv.n, generator=cv.g))
        nuc = cv.alpha(R.sd_ellipse(u, v, b(size) * ecc, b(size)))
        img = paint(img, nuc * present, nucleus)
    return R.finish(cv, img, noise=0.05 * nz, blur=True)


# =============================================================================================================
# 20-task additions: letters (EMNIST), counting (CIFAR10), positions (Food101), clothing (FashionMNIST),
#                    symbols (RenderedSST2), rotated digits (KMNIST)
# =============================================================================================================
COUNT_CLASSES = ("one dot", "two dots", "three dots", "four dots", "five dots", "six dots")


def _counting(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.1 + 0.5 * nz)
    count = y + 1
    cells = torch.rand(cv.n, 9, generator=cv.g).argsort(1)
    color = R.contrast_color(cv, img)
    rad = b(cv.uniform(0.13, 0.2))
    for j in range(6):
        present = (j < count).float().view(-1, 1, 1)
        cell = cells[:, j]
        cx = (cell % 3 - 1).float() * 0.62 + cv.uniform(-0.1, 0.1) * nz
        cy = (cell // 3 - 1).float() * 0.62 + cv.uniform(-0.1, 0.1) * nz
        u, v = cv.local(cx, cy)
        img = paint(img, cv.alpha(R.sd_disk(u, v, rad)) * present, color)
    return R.finish(cv, img, noise=0.06 * nz)


POSITION_CLASSES = ("top left", "top right", "bottom left", "bottom right", "center")


def _positions(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.2 + 0.5 * nz)
    cx = torch.tensor([-0.5, 0.5, -0.5, 0.5, 0.0])[y] + cv.uniform(-0.2, 0.2) * nz
    cy = torch.tensor([-0.5, -0.5, 0.5, 0.5, 0.0])[y] + cv.uniform(-0.2, 0.2) * nz
    u, v = cv.local(cx, cy, cv.uniform(0, 6.3))
    color = R.contrast_color(cv, img)
    img = paint(img, cv.alpha(_shape_sd(u, v, cv.randint(0, 3), b(cv.uniform(0.2, 0.3)))), color)
    return R.finish(cv, img, noise=0.06 * nz)


CLOTHING_CLASSES = ("t-shirt", "trousers", "dress", "sneaker", "bag", "hat")


def _clothing(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    scale = b(cv.uniform(0.8, 1.05))
    u, v = cv.local(cv.uniform(-0.1, 0.1) * nz, cv.uniform(-0.1, 0.1) * nz, cv.uniform(-0.2, 0.2) * nz)
    u, v = u / scale, v / scale
    tshirt = R.union(R.sd_rect(u, v - 0.1, 0.38, 0.55), R.sd_rect(*_rot(u + 0.5, v + 0.3, 0.6), 0.2, 0.13),
                     R.sd_rect(*_rot(u - 0.5, v + 0.3, -0.6), 0.2, 0.13))
    trousers = R.union(R.sd_rect(u, v + 0.65, 0.38, 0.12), R.sd_rect(u - 0.2, v - 0.1, 0.16, 0.75),
                       R.sd_rect(u + 0.2, v - 0.1, 0.16, 0.75))
    dress = R.intersect(0.12 + 0.35 * (v + 0.8) / 1.6 - u.abs(), 0.8 - v.abs())
    sneaker = R.union(R.sd_rect(u, v - 0.3, 0.75, 0.16), R.intersect(R.sd_disk(u + 0.35, v - 0.1, 0.38), 0.3 - v))
    bag = R.union(R.sd_rect(u, v - 0.2, 0.6, 0.45), R.intersect(R.sd_ring(u, v + 0.25, 0.3, 0.09), -(v + 0.25)))
    hat = R.union(R.sd_rect(u, v - 0.35, 0.8, 0.08), R.intersect(R.sd_disk(u, v - 0.3, 0.42), 0.3 - v))
    yl = y.view(-1, 1, 1)
    d = tshirt
    for k, dk in enumerate((trousers, dress, sneaker, bag, hat), start=1):
        d = torch.where(yl == k, dk, d)
    tone = cv.uniform(0.45, 1.0)[:, None]
    img = paint(cv.fill(torch.zeros(3)), cv.alpha(d * scale), tone.expand(cv.n, 3))
    texture = 1 - 0.35 * nz * cv.smooth_noise(10)
    return R.finish(cv, img * texture, noise=0.05 * nz)


def _rot(u: Tensor, v: Tensor, a: float) -> tuple[Tensor, Tensor]:
    c, s = math.cos(a), math.sin(a)
    return c * u + s * v, -s * u + c * v


SYMBOL_CLASSES = ("plus sign", "minus sign", "multiplication sign", "equals sign", "slash", "ring")


def _symbols(cv: Canvas, y: Tensor, nz: float) -> Tensor:
    img = cv.clutter(0.2 + 0.5 * nz)
    scale = b(cv.uniform(0.7, 1.0))
    u, v = cv.local(cv.uniform(-0.2, 0.2) * nz, cv.uniform(-0.2, 0.2) * nz, cv.uniform(-0.25, 0.25) * nz)
    u, v = u / scale, v / scale
    plus = R.union(R.sd_rect(u, v, 0.65, 0.12), R.sd_rect(u, v, 0.12, 0.65))
    ru, rv = _rot(u, v, math.pi / 4)
    times = R.union(R.sd_rect(ru, rv, 0.65, 0.12), R.sd_rect(ru, rv, 0.12, 0.65))
    minus = R.sd_rect(u, v, 0.65, 0.12)
    equals = R.union(R.sd_rect(u, v - 0.25, 0.6, 0.1), R.sd_rect(u, v + 0.25, 0.6, 0.1))
    su, sv = _rot(u, v, -math.pi / 3)
    slash = R.sd_rect(su, sv, 0.75, 0.1)
    ring = R.sd_ring(u, v, 0.5, 0.2)
    yl = y.view(-1, 1, 1)
    d = plus
    for k, dk in enumerate((minus, times, equals, slash, ring), start=1):
        d = torch.where(yl == k, dk, d)
    color = R.contrast_color(cv, img)
    img = paint(img, cv.alpha(d * scale), color)
    return R.finish(cv, img, noise=0.06 * nz)


# =============================================================================================================
# the task list and the suites
# =============================================================================================================
_DIGIT_CONCEPTS = tuple(f"digit {d}" for d in DIGITS)

TASKS: dict[str, TaskSpec] = {t.name: t for t in [
    # -- the 8-task suite, in the benchmark's order: SUN397 Cars RESISC45 EuroSAT SVHN GTSRB MNIST DTD
    TaskSpec("scenes", "SUN397", "scenes", SCENE_CLASSES,
             ("a photo of a {}.", "a landscape photo of a {}.", "a view of a {}."), _scenes,
             description="Outdoor scene layouts: horizon, sky and ground colours, scene elements."),
    TaskSpec("shapes", "Cars", "shapes", SHAPE_CLASSES,
             ("a photo of a {}.", "a {} shape.", "a drawing of a {}."), _shapes,
             description="Outline shapes on clutter; circle / hexagon / pentagon are the fine-grained part."),
    TaskSpec("aerial", "RESISC45", "remote sensing", AERIAL_CLASSES,
             ("satellite imagery of {}.", "an aerial photo of a {}.", "a satellite photo of the {}."), _aerial,
             concepts=tuple(f"land:{c}" for c in ("airport", "baseball", "farmland", "forest", "harbor", "highway",
                                                   "lake", "parking", "residential", "river")),
             description="Top-down scenes at any rotation: runways, lakes, rivers, parking lots, ..."),
    TaskSpec("landuse", "EuroSAT", "remote sensing", LANDUSE_CLASSES,
             ("a centered satellite photo of {}.", "a low resolution satellite photo of {}.",
              "a satellite photo of {}."), _landuse,
             concepts=tuple(f"land:{c}" for c in ("annual crop", "forest", "herbaceous", "highway", "industrial",
                                                   "pasture", "permanent crop", "residential", "river", "sea")),
             description="Low-resolution land-use patches; shares primitives and concepts with 'aerial'."),
    TaskSpec("house_numbers", "SVHN", "glyphs", tuple(DIGITS),
             ('a photo of the number: "{}".', "a street sign of the number {}.", "the house number {}."),
             _house_numbers, concepts=_DIGIT_CONCEPTS,
             description="Coloured digits on clutter with neighbouring distractor digits."),
    TaskSpec("signs", "GTSRB", "glyphs", SIGN_CLASSES,
             ('a zoomed in photo of a "{}" traffic sign.', 'a centered photo of a "{}" traffic sign.',
              'a photo of a "{}" traffic sign.'), _signs,
             description="Traffic-sign plates: shape, colour, digits and arrows on clutter."),
    TaskSpec("digits", "MNIST", "glyphs", tuple(DIGITS),
             ('a photo of the number: "{}".', "a handwritten digit {}.", "the number {}."),
             _glyph_on_black(DIGITS), concepts=_DIGIT_CONCEPTS,
             description="White digits on black, jittered (MNIST-like)."),
    TaskSpec("textures", "DTD", "textures", TEXTURE_CLASSES,
             ("a photo of a {} texture.", "a photo of a {} pattern.", "a {} surface."), _textures,
             description="Periodic and random patterns in random colours, scales and orientations."),
    # -- 14-task additions: CIFAR100 STL10 Flowers102 OxfordIIITPet PCAM FER2013
    TaskSpec("objects", "CIFAR100", "shapes", OBJECT_CLASSES,
             ("a photo of a {}.", "a drawing of a {}.", "an image of a {}."), _objects,
             description="Colour × shape combinations (12 classes)."),
    TaskSpec("colors", "STL10", "colour", COLOR_CLASSES,
             ("a photo of something {}.", "the color {}.", "a {} object."), _colors,
             description="Name the colour of the object under lighting changes."),
    TaskSpec("flowers", "Flowers102", "counting", FLOWER_CLASSES,
             ("a photo of a flower with {}.", "a flower with {}.", "a blossom with {}."), _flowers,
             description="Flowers with 3 to 8 petals."),
    TaskSpec("orientation", "OxfordIIITPet", "orientation", ORIENTATION_CLASSES,
             ("an arrow pointing {}.", "a photo of an arrow pointing {}.", "the direction {}."), _orientation,
             description="Arrows in eight directions."),
    TaskSpec("tissue", "PCAM", "microscopy", TISSUE_CLASSES,
             ("a histopathology slide showing {}.", "a microscope image of {}.", "a slide of {}."), _tissue,
             description="Binary: sparse small nuclei vs dense, large, dark nuclei (overlapping)."),
    TaskSpec("faces", "FER2013", "faces", FACE_CLASSES,
             ("a photo of a {} face.", "a drawing of a {} face.", "a face looking {}."), _faces,
             description="Cartoon facial expressions."),
    # -- 20-task additions: EMNIST CIFAR10 Food101 FashionMNIST RenderedSST2 KMNIST
    TaskSpec("letters", "EMNIST", "glyphs", tuple(LETTERS),
             ('a photo of the letter: "{}".', "a handwritten letter {}.", "the letter {}."),
             _glyph_on_black(LETTERS), description="White capital letters on black (EMNIST-like)."),
    TaskSpec("counting", "CIFAR10", "counting", COUNT_CLASSES,
             ("a photo of {}.", "an image with {}.", "a picture showing {}."), _counting,
             description="Count 1 to 6 dots."),
    TaskSpec("positions", "Food101", "layout", POSITION_CLASSES,
             ("a shape in the {} of the image.", "an object at the {}.", "a photo with a shape at the {}."),
             _positions, description="Where the object is."),
    TaskSpec("clothing", "FashionMNIST", "silhouettes", CLOTHING_CLASSES,
             ("a photo of a {}.", "a silhouette of a {}.", "a grey {}."), _clothing,
             description="Clothing silhouettes on black (FashionMNIST-like)."),
    TaskSpec("symbols", "RenderedSST2", "glyphs", SYMBOL_CLASSES,
             ("a photo of a {}.", "the symbol {}.", "a drawing of a {}."), _symbols,
             description="Rendered maths symbols."),
    TaskSpec("rotated_digits", "KMNIST", "glyphs", tuple(DIGITS),
             ('a photo of the number: "{}".', "a rotated digit {}.", "the number {} upside down."),
             _glyph_on_black(DIGITS, full_rotation=True), concepts=_DIGIT_CONCEPTS,
             description="Thin digits at any rotation (6 and 9 collide, as in KMNIST's hard glyphs)."),
]}

ALL_TASKS: tuple[str, ...] = tuple(TASKS)
SUITES: dict[int, tuple[str, ...]] = {8: ALL_TASKS[:8], 14: ALL_TASKS[:14], 20: ALL_TASKS[:20]}

#: templates used only in contrastive pre-training captions, on top of each task's own templates
GENERIC_TEMPLATES: tuple[str, ...] = ("{}.", "an image of {}.", "a picture of {}.")


def get_task(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise KeyError(f"unknown zoo task {name!r}; tasks are {list(TASKS)}") from None


def suite(num_tasks: int) -> tuple[str, ...]:
    if num_tasks not in SUITES:
        raise ValueError(f"the zoo has suites of {sorted(SUITES)} tasks, not {num_tasks}")
    return SUITES[num_tasks]
