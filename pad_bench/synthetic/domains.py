"""Procedural synthetic person re-ID domains, written as JPEGs in the Market-1501 layout.

Each domain has its own style (background texture, illumination, colour cast or colour
transform, blur, noise, resolution, cameras) and its own clothing palette, so that training on
one domain after another forgets the earlier ones. Identities are disjoint across domains.
Every random draw comes from `numpy.random.default_rng` seeded by (seed, domain, purpose, index),
so a seed gives byte-identical files whatever the generation order. Each domain folder also holds
`attributes.json`: every identity's attribute record and caption (`attributes.py`).
"""
from __future__ import annotations

import colorsys
import json
import math
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..errors import UserError
from ..io import atomic_write, atomic_write_json
from .attributes import attributes_of, caption, colour_name
from ..data.datasets.base import ImageRecord, split_counts

SYNTH_VERSION = 2  # bump when the renderer changes: it invalidates cached sets
WORLD_VERSION = 2  # the world the criteria were measured on (docs/synthetic.md#world-criteria); any knob change is a new one
MAX_TRAIN_DOMAINS = 8
MAX_UNSEEN_DOMAINS = 4
MANIFEST = "synth.json"
ATTRIBUTES_FILE = "attributes.json"
SS = 2  # supersampling factor of the drawing canvas (anti-aliasing)

RGB = tuple[float, float, float]

# (seed, domain, PURPOSE, index) keys of the random streams
_ORDER, _STYLE, _LAYOUT, _LOOK, _IMAGE, _OUTFIT = range(6)


def train_domain_name(i: int) -> str:
    return f"synth_d{i}"


def unseen_domain_name(i: int) -> str:
    return f"synth_u{i}"


_DOMAIN_DIR = re.compile(r"synth_[du]\d+")


# ---- configuration ---------------------------------------------------------------------------
_BOUNDS = {
    "seed": (0, 2**32 - 1),
    "n_train_domains": (1, MAX_TRAIN_DOMAINS),
    "n_unseen_domains": (0, MAX_UNSEEN_DOMAINS),
    "train_ids": (1, 9999),
    "test_ids": (1, 9999),
    "images_per_id": (1, 1000),
    "query_per_id": (1, 1000),
    "gallery_per_id": (2, 1000),  # one on a query camera, one on another camera
    "distractors": (0, 100000),
    "height": (32, 1024),
    "width": (16, 512),
    "jpeg_quality": (1, 100),
    "outfits": (0, 9999),
}


def check_int_bounds(cfg: object, bounds: dict[str, tuple[int, int]], label: str) -> None:
    """A one-line error for the first field of cfg that is not an integer inside its bounds."""
    for name, (lo, hi) in bounds.items():
        value = getattr(cfg, name)
        if not isinstance(value, int) or not lo <= value <= hi:
            raise UserError(f"{label} {name}={value!r} is out of range; use an integer in {lo}..{hi}")


@dataclass(frozen=True)
class SynthConfig:
    """Size and style strength of the synthetic set. The defaults are world version 2
    (docs/synthetic.md#world-criteria): 7 domains, about 14k images, 1,280 training images of 160
    identities per domain and test sets of 240 queries; the float knobs scale the style draws."""

    seed: int = 0
    n_train_domains: int = 5
    n_unseen_domains: int = 2
    train_ids: int = 160
    test_ids: int = 120
    images_per_id: int = 8
    query_per_id: int = 2
    gallery_per_id: int = 4
    distractors: int = 40
    height: int = 128
    width: int = 64
    jpeg_quality: int = 90
    nuisance: float = 0.5  # scales each domain's blur, noise and resolution loss
    camera_tint: float = 1.0  # scales how far each camera's colour tint is from neutral
    palette: float = 1.0  # scales the hue range of a domain's clothing
    palette_shift: float = 1.0  # how far the palettes' hue centres move from one domain to the next
    cast: float = 1.0  # scales the saturation of each domain's lighting colour cast
    colour_transform: float = 1.0  # how far each domain's colour transform is from none
    outfits: int = 0  # >0: a domain's identities share this many outfits, so their captions repeat

    def __post_init__(self) -> None:
        check_int_bounds(self, _BOUNDS, "synth")
        for name in ("nuisance", "camera_tint", "palette", "palette_shift", "cast", "colour_transform"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 3.0:
                raise UserError(f"synth {name}={value!r} is out of range; use a number in 0..3")

    def domain_names(self) -> list[str]:
        """Training domains first, then unseen ones; the index is the domain's stream key."""
        return ([train_domain_name(i + 1) for i in range(self.n_train_domains)]
                + [unseen_domain_name(i + 1) for i in range(self.n_unseen_domains)])


def _rng(cfg: SynthConfig, domain: int, purpose: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, domain, purpose, index])


def _r(x: float) -> float:
    return round(float(x), 4)


def _vec(x) -> tuple[float, ...]:
    return tuple(_r(v) for v in x)


def _rgb(x) -> RGB:
    return _vec(np.clip(x, 0.0, 1.0))


def _hsv(h: float, s: float, v: float) -> RGB:
    return _rgb(colorsys.hsv_to_rgb(h % 1.0, s, v))


# ---- domain style ----------------------------------------------------------------------------
BACKGROUNDS = ("gradient", "noise", "stripes", "bricks", "tiles")
# Backgrounds only the pretraining corpus uses (corpus.py), so that its styles are no benchmark domain's.
CORPUS_BACKGROUNDS = ("plain", "rings", "dots")
COLOR_TRANSFORMS = ("none", "hue_rotation", "channel_mix", "desaturate")


@dataclass(frozen=True)
class CameraStyle:
    tint: RGB
    p_front: float  # probability that a person faces this camera
    scale: float  # apparent person size (distance to the camera)
    bg_shift: RGB  # the camera's own background colour offset
    bg_phase: float


@dataclass(frozen=True)
class DomainStyle:
    background: str
    bg_colors: tuple[RGB, RGB]
    bg_period: float  # texture period, fraction of the image height
    bg_contrast: float  # how far the texture goes from bg_colors[0] towards bg_colors[1]
    gain: float
    gamma: float
    cast: RGB
    color_transform: str
    color_matrix: tuple[RGB, RGB, RGB]
    blur: float  # Gaussian sigma in rendered pixels
    noise: float  # sensor noise std on the 0-255 scale
    resolution: float  # render at this fraction of the output size, then upsample
    hue_center: float  # the domain's clothing palette
    hue_spread: float
    saturation: tuple[float, float]
    value: tuple[float, float]
    cameras: tuple[CameraStyle, ...]


def _color_matrix(kind: str, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """The domain's colour transform, `strength` of the way from the identity to the drawn one."""
    full = _full_color_matrix(kind, rng)
    if strength == 1.0:  # the drawn matrix bit for bit, as world version 2 was made
        return full
    return np.eye(3) + strength * (full - np.eye(3))


def _full_color_matrix(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "hue_rotation":  # Rodrigues rotation about the grey axis
        a = math.radians(rng.uniform(70, 290))
        k = np.ones(3) / math.sqrt(3)
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        return np.eye(3) * math.cos(a) + math.sin(a) * kx + (1 - math.cos(a)) * np.outer(k, k)
    if kind == "channel_mix":  # mostly a cyclic channel swap (R->G->B or R->B->G), plus some mixing
        swap = np.roll(np.eye(3), int(rng.integers(1, 3)), axis=1)
        return 0.7 * swap + 0.3 * rng.dirichlet(np.ones(3), size=3)
    if kind == "desaturate":
        s = rng.uniform(0.1, 0.35)
        return s * np.eye(3) + (1 - s) * np.tile([0.299, 0.587, 0.114], (3, 1))
    return np.eye(3)


def _camera_style(rng: np.random.Generator, tint: float) -> CameraStyle:
    return CameraStyle(
        tint=_vec(1 + tint * (rng.uniform(0.85, 1.15, 3) - 1)),
        p_front=_r(rng.choice([0.15, 0.85])),
        scale=_r(rng.uniform(0.85, 1.03)),
        bg_shift=_vec(rng.uniform(-0.08, 0.08, 3)),
        bg_phase=_r(rng.random()),
    )


def sample_domain_style(cfg: SynthConfig, domain: int) -> DomainStyle:
    """Domain `domain` (0-based over training then unseen domains). Backgrounds, colour transforms
    and palette hues are spread over the domains so that neighbouring domains differ strongly."""
    order = _rng(cfg, 0, _ORDER)  # one draw shared by all domains
    bg_order, tf_order = order.permutation(len(BACKGROUNDS)), order.permutation(len(COLOR_TRANSFORMS))
    hue0 = order.random()
    rng = _rng(cfg, domain, _STYLE)
    transform = COLOR_TRANSFORMS[tf_order[domain % len(COLOR_TRANSFORMS)]]
    cast_h, cast_s = rng.random(), rng.uniform(0.25, 0.5)
    cast = np.array(colorsys.hsv_to_rgb(cast_h, min(1.0, cfg.cast * cast_s), 1.0))
    sat_lo, val_lo = rng.uniform(0.3, 0.65), rng.uniform(0.25, 0.5)
    return DomainStyle(
        background=BACKGROUNDS[bg_order[domain % len(BACKGROUNDS)]],
        bg_colors=(_rgb(rng.uniform(0.05, 0.95, 3)), _rgb(rng.uniform(0.05, 0.95, 3))),
        bg_period=_r(rng.uniform(0.08, 0.25)),
        bg_contrast=_r(rng.uniform(0.3, 0.6)),
        gain=_r(rng.uniform(0.6, 1.35)),
        gamma=_r(rng.uniform(0.65, 1.5)),
        cast=_vec(cast / cast.mean()),
        color_transform=transform,
        color_matrix=tuple(_vec(row) for row in _color_matrix(transform, rng, cfg.colour_transform)),
        blur=_r(cfg.nuisance * rng.uniform(0.0, 1.2)),
        noise=_r(cfg.nuisance * rng.uniform(2.0, 12.0)),
        resolution=_r(1 - cfg.nuisance * (1 - rng.uniform(0.45, 1.0))),
        hue_center=_r((hue0 + cfg.palette_shift * 0.618 * domain) % 1.0),
        hue_spread=_r(cfg.palette * rng.uniform(0.35, 0.6)),
        saturation=(_r(sat_lo), _r(min(1.0, sat_lo + 0.35))),
        value=(_r(val_lo), _r(min(1.0, val_lo + 0.5))),
        cameras=tuple(_camera_style(rng, cfg.camera_tint) for _ in range(int(rng.integers(2, 7)))),
    )


# ---- identities and poses --------------------------------------------------------------------
SKIN = ((0.96, 0.80, 0.69), (0.36, 0.22, 0.14))  # the two ends of the skin-tone range
HAIR = ((0.07, 0.06, 0.05), (0.25, 0.15, 0.08), (0.48, 0.32, 0.16), (0.88, 0.75, 0.45),
        (0.62, 0.62, 0.62), (0.58, 0.22, 0.10))
SHOES = ((0.08, 0.08, 0.08), (0.92, 0.92, 0.92), (0.36, 0.22, 0.12), (0.18, 0.2, 0.38))
PATTERNS = ("plain", "stripes", "checks", "logo")
LOWER_KINDS = ("trousers", "trousers", "shorts", "skirt")


@dataclass(frozen=True)
class Look:
    """The appearance of one identity: what stays the same across its images."""

    skin: RGB
    hair: RGB
    long_hair: bool
    upper: RGB
    upper2: RGB  # pattern colour
    pattern: str
    long_sleeves: bool
    lower: RGB
    lower_kind: str
    shoes: RGB
    hat: RGB | None
    bag: RGB | None
    backpack: RGB | None
    height: float
    width: float
    legs: float  # leg length, fraction of body height


def sample_look(style: DomainStyle, rng: np.random.Generator, index: int) -> Look:
    """Draw an identity from the domain palette; `index` spreads clothing hues evenly
    (a low-discrepancy sequence) so that identities within a domain stay distinguishable."""

    def cloth(offset: float) -> RGB:
        h = style.hue_center + style.hue_spread * (offset % 1.0 - 0.5)
        return _hsv(h, rng.uniform(*style.saturation), rng.uniform(*style.value))

    def accessory(p: float) -> RGB | None:
        colour = _hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.15, 0.95))
        return colour if rng.random() < p else None

    upper = cloth(index * 0.618 + 0.15 * rng.random())
    lower = cloth(index * 0.414 + 0.37 + 0.15 * rng.random())
    contrast = 0.92 if np.mean(upper) < 0.5 else 0.1
    t = rng.random()
    return Look(
        skin=_rgb((1 - t) * np.array(SKIN[0]) + t * np.array(SKIN[1])),
        hair=HAIR[rng.integers(len(HAIR))],
        long_hair=bool(rng.random() < 0.35),
        upper=upper,
        upper2=_hsv(rng.random(), rng.uniform(0.0, 0.9), contrast),
        pattern=PATTERNS[rng.integers(len(PATTERNS))],
        long_sleeves=bool(rng.random() < 0.5),
        lower=lower,
        lower_kind=LOWER_KINDS[rng.integers(len(LOWER_KINDS))],
        shoes=SHOES[rng.integers(len(SHOES))],
        hat=accessory(0.2),
        bag=accessory(0.3),
        backpack=accessory(0.25),
        height=_r(rng.uniform(0.92, 1.04)),
        width=_r(rng.uniform(0.85, 1.2)),
        legs=_r(rng.uniform(0.46, 0.52)),
    )


@dataclass(frozen=True)
class Pose:
    """Per-image pose and framing."""

    stride: float  # leg spread, radians
    swing: float  # arm swing, radians
    height: float  # person height, fraction of the image height
    dx: float  # offsets, fractions of the image size (detector crop jitter)
    dy: float
    angle: float  # degrees
    flip: bool
    front: bool


def sample_pose(look: Look, cam: CameraStyle, rng: np.random.Generator) -> Pose:
    return Pose(
        stride=rng.uniform(0.0, 0.3),
        swing=rng.uniform(-0.25, 0.25),
        height=min(0.98, 0.9 * look.height * cam.scale * rng.uniform(0.94, 1.06)),
        dx=rng.uniform(-0.08, 0.08),
        dy=rng.uniform(-0.04, 0.04),
        angle=rng.uniform(-4.0, 4.0),
        flip=bool(rng.random() < 0.5),
        front=bool(rng.random() < cam.p_front),
    )


def _shade(rgb: RGB, rng: np.random.Generator) -> RGB:
    """Another shade of `rgb` that keeps its colour name (the caption names the colour, not the shade)."""
    h, s, v = colorsys.rgb_to_hsv(*rgb)
    shade = _hsv(h + rng.uniform(-0.03, 0.03), np.clip(s + rng.uniform(-0.15, 0.15), 0, 1),
                 np.clip(v + rng.uniform(-0.15, 0.15), 0, 1))
    return shade if colour_name(shade) == colour_name(rgb) else rgb


def wear_outfit(outfit: Look, own: Look, rng: np.random.Generator) -> Look:
    """An identity in a shared outfit: every captioned attribute is the outfit's, each colour in a shade
    of the identity's own; skin, body and the pattern's second colour (no caption names them) are its own."""
    def shade(rgb: RGB | None) -> RGB | None:
        return None if rgb is None else _shade(rgb, rng)

    return replace(outfit, skin=own.skin, upper2=own.upper2, height=own.height, width=own.width, legs=own.legs,
                   upper=shade(outfit.upper), lower=shade(outfit.lower),
                   hat=shade(outfit.hat), bag=shade(outfit.bag), backpack=shade(outfit.backpack))


def domain_looks(cfg: SynthConfig, style: DomainStyle, domain: int, indices: list[int]) -> dict[int, Look]:
    """The look of each identity index of a domain; with `cfg.outfits`, index i wears outfit i mod outfits."""
    looks = {i: sample_look(style, _rng(cfg, domain, _LOOK, i), i) for i in indices}
    if not cfg.outfits:
        return looks
    outfits = {k: sample_look(style, _rng(cfg, domain, _OUTFIT, k), k) for k in range(cfg.outfits)}
    return {i: wear_outfit(outfits[i % cfg.outfits], look, _rng(cfg, domain, _OUTFIT, cfg.outfits + i))
            for i, look in looks.items()}


# ---- rendering -------------------------------------------------------------------------------
def _u8(rgb: RGB) -> tuple[int, int, int]:
    return tuple(int(round(255 * v)) for v in rgb)


class _Figure:
    """One person drawn on a transparent canvas; coordinates in canvas pixels."""

    def __init__(self, look: Look, pose: Pose, size: tuple[int, int]):
        h, w = size
        self.look, self.pose, self.size = look, pose, size
        self.u = u = pose.height * h
        self.cx = w / 2 + pose.dx * w
        self.y0 = (h - u) / 2 + pose.dy * h
        self.y_sh = self.y0 + 0.17 * u
        self.y_hip = self.y0 + (1 - look.legs) * u
        self.y_ft = self.y0 + 0.975 * u
        self.sw, self.hw = 0.25 * u * look.width, 0.2 * u * look.width
        self.limb = 0.075 * u * look.width
        self.img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
        self.draw = ImageDraw.Draw(self.img)

    def render(self) -> Image.Image:
        self._legs()
        self._torso()
        if self.look.backpack and not self.pose.front:
            self._box(self.cx, self.y_sh + 0.03 * self.u, 0.75 * self.sw, 0.28 * self.u, self.look.backpack)
        self._arms()
        self._head()
        self._accessories()
        centre = (self.cx, self.y0 + self.u / 2)
        img = self.img.rotate(self.pose.angle, resample=Image.BILINEAR, center=centre)
        return img.transpose(Image.FLIP_LEFT_RIGHT) if self.pose.flip else img

    def _dot(self, centre, rx: float, ry: float, rgb: RGB) -> None:
        x, y = centre
        self.draw.ellipse([x - rx, y - ry, x + rx, y + ry], fill=_u8(rgb))

    def _limb(self, p0, p1, width: float, rgb: RGB) -> None:
        """A thick segment with round ends."""
        self.draw.line([p0, p1], fill=_u8(rgb), width=max(1, round(width)))
        for p in (p0, p1):
            self._dot(p, width / 2, width / 2, rgb)

    def _box(self, cx: float, top: float, w: float, h: float, rgb: RGB) -> None:
        self.draw.rounded_rectangle([cx - w / 2, top, cx + w / 2, top + h], radius=w / 6, fill=_u8(rgb))

    def _legs(self) -> None:
        look, leg = self.look, self.y_ft - self.y_hip
        for s in (-1, 1):
            hip = (self.cx + s * self.hw * 0.25, self.y_hip)
            foot = (hip[0] + s * math.sin(self.pose.stride / 2 + 0.03) * leg, self.y_ft)
            self._limb(hip, foot, self.limb * 1.15, look.lower if look.lower_kind == "trousers" else look.skin)
            if look.lower_kind == "shorts":
                self._limb(hip, _along(hip, foot, 0.45), self.limb * 1.3, look.lower)
            self._dot(foot, self.limb * 0.8, self.limb * 0.4, look.shoes)
        if look.lower_kind == "skirt":
            top, bottom = self.y_hip - 0.03 * self.u, self.y_hip + 0.5 * leg
            self.draw.polygon([(self.cx - self.hw / 2, top), (self.cx + self.hw / 2, top),
                               (self.cx + self.hw * 0.8, bottom), (self.cx - self.hw * 0.8, bottom)],
                              fill=_u8(look.lower))

    def _torso(self) -> None:
        look, u = self.look, self.u
        bottom = self.y_hip + 0.02 * u
        outline = [(self.cx - self.sw / 2, self.y_sh), (self.cx + self.sw / 2, self.y_sh),
                   (self.cx + self.hw / 2, bottom), (self.cx - self.hw / 2, bottom)]
        mask = Image.new("L", self.img.size, 0)
        ImageDraw.Draw(mask).polygon(outline, fill=255)
        yy, xx = np.ogrid[0:self.size[0], 0:self.size[1]]
        period = max(2.0, 0.05 * u)
        rows = np.floor((yy - self.y_sh) / period)
        second = {"stripes": rows % 2 == 1,
                  "checks": (rows + np.floor((xx - self.cx) / period)) % 2 == 1}.get(look.pattern)
        fill = np.broadcast_to(np.array(_u8(look.upper), np.uint8), (*self.size, 3)).copy()
        if second is not None:
            fill[np.broadcast_to(second, self.size)] = _u8(look.upper2)
        self.img.paste(Image.fromarray(fill), (0, 0), mask)
        if look.pattern == "logo" and self.pose.front:
            self._dot((self.cx, self.y_sh + 0.12 * u), 0.045 * u, 0.045 * u, look.upper2)

    def _arms(self) -> None:
        look, arm = self.look, 0.36 * self.u
        for s in (-1, 1):
            shoulder = (self.cx + s * (self.sw / 2 - self.limb * 0.4), self.y_sh + self.limb * 0.5)
            a = 0.12 + s * self.pose.swing
            hand = (shoulder[0] + s * math.sin(a) * arm, shoulder[1] + math.cos(a) * arm)
            self._limb(shoulder, hand, self.limb, look.upper if look.long_sleeves else look.skin)
            if not look.long_sleeves:
                self._limb(shoulder, _along(shoulder, hand, 0.45), self.limb * 1.1, look.upper)
            self._dot(hand, self.limb * 0.55, self.limb * 0.55, look.skin)

    def _head(self) -> None:
        look, u, cx = self.look, self.u, self.cx
        ry, rx = 0.068 * u, 0.055 * u
        cy = self.y0 + ry
        if look.long_hair:
            self._box(cx, cy, 2.1 * rx, self.y_sh + 0.1 * u - cy, look.hair)
        self._limb((cx, cy), (cx, self.y_sh), 0.05 * u, look.skin)
        self._dot((cx, cy), rx * 1.05, ry * 1.05, look.hair)
        if self.pose.front:  # the face; seen from the back the head is all hair
            self._dot((cx, cy + 0.2 * ry), rx * 0.9, ry * 0.8, look.skin)
        if look.hat:
            self._box(cx, cy - ry * 1.15, 2.1 * rx, 0.8 * ry, look.hat)
            self._limb((cx - rx * 1.3, cy - ry * 0.4), (cx + rx * 1.3, cy - ry * 0.4), 0.2 * ry, look.hat)

    def _accessories(self) -> None:
        look, u = self.look, self.u
        if look.backpack and self.pose.front:  # only the straps show from the front
            for s in (-1, 1):
                x = self.cx + s * self.sw * 0.3
                self._limb((x, self.y_sh), (x, self.y_sh + 0.2 * u), 0.025 * u, look.backpack)
        if look.bag:
            bx = self.cx + self.hw / 2 + 0.05 * u
            self._limb((self.cx - self.sw / 2, self.y_sh), (bx, self.y_hip - 0.02 * u), 0.02 * u, look.bag)
            self._box(bx, self.y_hip - 0.04 * u, 0.12 * u, 0.11 * u, look.bag)


def _along(p0, p1, f: float) -> tuple[float, float]:
    """The point a fraction `f` of the way from p0 to p1."""
    return p0[0] + f * (p1[0] - p0[0]), p0[1] + f * (p1[1] - p0[1])


def _background(style: DomainStyle, cam: CameraStyle, size: tuple[int, int],
                rng: np.random.Generator) -> np.ndarray:
    """A float (h, w, 3) texture in [0, 1]; each camera sees its own variant of the domain's scene."""
    h, w = size
    yy, xx = (np.arange(n, dtype=np.float32) / h for n in (h, w))
    yy, xx = yy[:, None], xx[None, :]
    p, phase = style.bg_period, cam.bg_phase
    kind = style.background
    if kind == "gradient":
        t = yy + 0.15 * np.sin(2 * np.pi * (xx / (4 * p) + phase))
    elif kind == "noise":  # smooth value noise, new for every frame
        coarse = (rng.random((max(2, round(1 / p)), max(2, round(w / h / p)))) * 255).astype(np.uint8)
        t = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), np.float32) / 255
    elif kind == "stripes":
        t = ((xx + 0.5 * yy) / p + phase) % 1.0 < 0.5
    elif kind == "tiles":
        t = (np.floor(xx / p + phase) + np.floor(yy / p)) % 2
    elif kind == "plain":  # a flat wall with soft vertical shading
        t = 0.3 * yy
    elif kind == "rings":
        t = (np.hypot(xx - 0.5 * w / h, yy - 0.5) / p + phase) % 1.0 < 0.5
    elif kind == "dots":
        t = ((xx / p + phase) % 1.0 - 0.5) ** 2 + ((yy / p) % 1.0 - 0.5) ** 2 < 0.09
    else:  # bricks: staggered rows, a per-brick shade, dark mortar
        row = np.floor(yy / (0.5 * p))
        u = xx / p + phase + 0.5 * (row % 2)
        shade = np.modf(np.sin(row * 12.9898 + np.floor(u) * 78.233) * 43758.5453)[0]
        mortar = (np.modf(u)[0] < 0.08) | (np.modf(yy / (0.5 * p))[0] < 0.12)
        t = np.where(mortar, 1.0, 0.35 * np.abs(shade))
    t = style.bg_contrast * np.broadcast_to(np.asarray(t, np.float32), size)[..., None]
    c1, c2 = (np.clip(np.array(c) + cam.bg_shift, 0, 1).astype(np.float32) for c in style.bg_colors)
    return (1 - t) * c1 + t * c2


def _photograph(scene: np.ndarray, style: DomainStyle, cam: CameraStyle, sensor_hw: tuple[int, int],
                out_hw: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The domain's camera on a float scene: tint, colour transform and cast (one 3x3 matrix),
    illumination, sensor resolution, blur and noise."""
    m = np.diag(style.cast) @ np.array(style.color_matrix) @ np.diag(cam.tint)
    x = scene @ m.T.astype(np.float32)
    x = np.clip(x * (style.gain * rng.uniform(0.92, 1.08)), 0, 1) ** style.gamma
    img = Image.fromarray((x * 255 + 0.5).astype(np.uint8)).resize(sensor_hw[::-1], Image.BOX)
    if style.blur > 0.05:
        img = img.filter(ImageFilter.GaussianBlur(style.blur))
    x = np.asarray(img.resize(out_hw[::-1], Image.BILINEAR), np.float32)
    x = x + rng.normal(0.0, style.noise, x.shape).astype(np.float32)
    return Image.fromarray(np.clip(x + 0.5, 0, 255).astype(np.uint8))


def render_image(look: Look, style: DomainStyle, cam: CameraStyle, out_hw: tuple[int, int],
                 rng: np.random.Generator) -> Image.Image:
    """One photo of `look` by camera `cam` of a domain; `out_hw` = (height, width) in pixels.
    The scene is drawn at SS times the domain's sensor resolution, then photographed."""
    sensor_hw = (max(16, round(out_hw[0] * style.resolution)), max(8, round(out_hw[1] * style.resolution)))
    canvas = (SS * sensor_hw[0], SS * sensor_hw[1])
    person = _Figure(look, sample_pose(look, cam, rng), canvas).render()
    bg = Image.fromarray((_background(style, cam, canvas, rng) * 255 + 0.5).astype(np.uint8)).convert("RGBA")
    scene = np.asarray(Image.alpha_composite(bg, person).convert("RGB"), np.float32) / 255
    return _photograph(scene, style, cam, sensor_hw, out_hw, rng)


# ---- the dataset -----------------------------------------------------------------------------
FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}


@dataclass(frozen=True)
class _Shot:
    split: str
    pid: int
    cam: int  # 0-based
    look: int  # index of the look within the domain


def _cycle(perm: np.ndarray, n: int) -> list[int]:
    return [int(perm[i % len(perm)]) for i in range(n)]


def _first_pid(cfg: SynthConfig, domain: int) -> int:
    """Domains own consecutive PID ranges; pid 0 is the distractor label."""
    return 1 + domain * (cfg.train_ids + cfg.test_ids)


def _plan_domain(cfg: SynthConfig, domain: int, n_cams: int) -> list[_Shot]:
    """Which images a domain has. Train IDs and test IDs are disjoint; every test ID has gallery
    images on its first query camera (same-camera, filtered at evaluation) and on another one."""
    rng = _rng(cfg, domain, _LAYOUT)
    base, n_ids = _first_pid(cfg, domain), cfg.train_ids + cfg.test_ids
    shots = []
    for i in range(cfg.train_ids):
        shots += [_Shot("train", base + i, c, i) for c in _cycle(rng.permutation(n_cams), cfg.images_per_id)]
    for i in range(cfg.train_ids, n_ids):
        perm = rng.permutation(n_cams)
        extra = rng.integers(n_cams, size=cfg.gallery_per_id - 2)
        gallery = [int(c) for c in np.concatenate([perm[:2], extra])]
        shots += [_Shot("query", base + i, c, i) for c in _cycle(perm, cfg.query_per_id)]
        shots += [_Shot("gallery", base + i, c, i) for c in gallery]
    shots += [_Shot("gallery", 0, int(rng.integers(n_cams)), n_ids + j) for j in range(cfg.distractors)]
    return shots


def _save_jpeg(img: Image.Image, path: Path, quality: int) -> None:
    atomic_write(path, lambda tmp: img.save(tmp, format="JPEG", quality=quality, optimize=False))


def _generate_domain(root: Path, cfg: SynthConfig, domain: int) -> dict:
    style = sample_domain_style(cfg, domain)
    shots = _plan_domain(cfg, domain, len(style.cameras))
    looks = domain_looks(cfg, style, domain, sorted({s.look for s in shots}))
    records: dict[str, list[ImageRecord]] = {split: [] for split in FOLDERS}
    for frame, shot in enumerate(shots, start=1):
        path = root / FOLDERS[shot.split] / f"{shot.pid:04d}_c{shot.cam + 1}s1_{frame:06d}_00.jpg"
        img = render_image(looks[shot.look], style, style.cameras[shot.cam], (cfg.height, cfg.width),
                           _rng(cfg, domain, _IMAGE, frame))
        _save_jpeg(img, path, cfg.jpeg_quality)
        records[shot.split].append(ImageRecord(str(path), shot.pid, shot.cam))
    identities = {str(shot.pid): looks[shot.look] for shot in shots if shot.pid != 0}
    write_attributes(root / ATTRIBUTES_FILE, identities)
    first = _first_pid(cfg, domain)
    return {
        "role": "train" if domain < cfg.n_train_domains else "unseen",
        "pids": [first, first + cfg.train_ids + cfg.test_ids - 1],
        "style": asdict(style),
        "counts": {split: split_counts(recs) for split, recs in records.items()},
    }


def write_attributes(path: Path, looks: dict[str, Look], extra: dict[str, dict] | None = None) -> None:
    """`attributes.json`: {pid: {"attributes": record, "caption": text, **extra[pid]}} (docs/synthetic.md)."""
    records = {}
    for pid, look in looks.items():
        attrs = attributes_of(look)
        records[pid] = {"attributes": attrs, "caption": caption(attrs), **(extra or {}).get(pid, {})}
    atomic_write_json(path, records)


def generate(out_dir: str | Path, cfg: SynthConfig = SynthConfig()) -> dict:
    """Write every domain of `cfg` under `out_dir`, then `synth.json`, which marks the set complete.
    Domain folders left by an earlier generation (`synth_d*`, `synth_u*`) are replaced."""
    out_dir = Path(out_dir)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    if out_dir.is_dir():
        for old in out_dir.iterdir():
            if old.is_dir() and _DOMAIN_DIR.fullmatch(old.name):
                shutil.rmtree(old)
    domains = {name: _generate_domain(out_dir / name, cfg, k) for k, name in enumerate(cfg.domain_names())}
    info = {"version": SYNTH_VERSION, "world_version": WORLD_VERSION, "config": asdict(cfg), "domains": domains}
    atomic_write_json(out_dir / MANIFEST, info)
    return info


def is_complete(out_dir: str | Path, cfg: SynthConfig) -> bool:
    """True when `out_dir` holds a finished generation of exactly `cfg` by this renderer version."""
    return manifest_matches(Path(out_dir) / MANIFEST, SYNTH_VERSION, cfg)


def manifest_matches(path: Path, version: int, cfg) -> bool:
    """True when the manifest at `path` (written last, so it marks a finished generation) records
    exactly this version and dataclass config."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("version") == version and info.get("config") == asdict(cfg)
