"""SimCLR augmentations as batched tensor operations (Chen et al. 2020, arXiv:2002.05709, App. A).

Every sample in a batch gets its own random parameters, and the work runs on whatever device the
batch is on (the GPU when there is one), so no DataLoader workers are needed:

    geometry  random resized crop + horizontal flip (+ small rotation): ONE ``affine_grid`` +
              ``grid_sample`` call driven by an N×2×3 matrix per sample;
    colour    brightness, saturation, hue rotation and grayscale are linear maps of the RGB
              vector, contrast blends with the mean grey: ONE 3×3 matrix + offset per sample;
    blur      a per-sample Gaussian, separable, as a grouped convolution.

Input: N×C×H×W, uint8 (0..255) or float in [0, 1], C = 1 or 3. Output: float32 in [0, 1].
Pass a ``torch.Generator`` (on the batch's device) to make a call reproduce exactly.
Differences from torchvision, on purpose: the jitter order is fixed (brightness, saturation, hue,
contrast) rather than shuffled, values are clamped once at the end instead of after each step, and
hue is a rotation about the grey axis instead of a shift in HSV (an HSV round trip costs more than
everything else together).
"""

from __future__ import annotations

import inspect
import math
from functools import lru_cache
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601 grey, as torchvision's rgb_to_grayscale


class _ColorConstants(NamedTuple):
    g: torch.Tensor  # the LUMA weights as a 3×1 column
    to_grey: torch.Tensor  # 1 gᵀ: every channel becomes the grey value
    cross: torch.Tensor  # [a]×, the cross-product matrix of the unit grey axis a = (1, 1, 1)/√3
    axis: torch.Tensor  # a aᵀ
    eye: torch.Tensor  # I


@lru_cache(maxsize=None)
def _cached_color_constants(device: torch.device) -> _ColorConstants:
    g = torch.tensor(LUMA, dtype=torch.float32, device=device)[:, None]
    cross = torch.tensor([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=torch.float32, device=device) / math.sqrt(3)
    return _ColorConstants(g=g, to_grey=torch.ones(3, 1, device=device) * g.T, cross=cross,
                           axis=torch.full((3, 3), 1 / 3, device=device), eye=torch.eye(3, device=device))


def color_constants(device) -> _ColorConstants:
    """The constant 3×3 matrices of the colour maps on ``device``, built at the first call, then reused.

    ``torch.tensor(python_list, device="cuda")`` is a blocking copy from the host: the CPU stops until the GPU
    has finished its queue. Built at every call, these would stall every training step (six times per CIFAR-10
    step); cached, a step only queues kernels. A pure cache of constants: nothing writes into them.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:  # "cuda" means the current GPU: name it
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached_color_constants(device)


def to_float(batch: torch.Tensor) -> torch.Tensor:
    """N×C×H×W uint8 or float -> float32 in [0, 1] (uint8 is divided by 255)."""
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor batch N×C×H×W, got {type(batch).__name__}")
    if batch.ndim != 4 or batch.shape[1] not in (1, 3):
        raise ValueError(f"expected a batch N×C×H×W with C = 1 or 3, got shape "
                         f"{tuple(batch.shape)}; for a single image add a batch dimension: "
                         "x.unsqueeze(0)")
    if batch.dtype == torch.uint8:
        return (batch / 255).float()  # true division gives float in one pass
    if not batch.is_floating_point():
        raise TypeError(f"expected uint8 or float images, got {batch.dtype}")
    return batch.float()


def call_augment(augment: Callable, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``augment(batch, generator=generator)`` when ``augment`` takes a ``generator`` keyword (every
    augmentation of this module does), else ``augment(batch)``, which then draws from the global RNG."""
    if generator is not None and _takes_generator(augment):
        return augment(batch, generator=generator)
    return augment(batch)


def _takes_generator(fn) -> bool:
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature
        return False
    return any(p.name == "generator" or p.kind is p.VAR_KEYWORD for p in parameters)


def _check_probability(name: str, p: float) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"{name} is a probability and must be in [0, 1], got {p}")


def _check_interval(name: str, interval, low: float, high: float = math.inf, example: str = "") -> None:
    """``interval`` must be a pair (a, b) with low <= a <= b <= high."""
    try:
        a, b = interval
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (low, high){example}, got {interval!r}") from None
    if not low <= a <= b <= high:
        bounds = f"{low} <= low <= high" + (f" <= {high}" if high != math.inf else "")
        raise ValueError(f"{name} must satisfy {bounds}{example}, got {tuple(interval)}")


def _rand(n, lo, hi, generator, device):
    return torch.rand(n, generator=generator, device=device) * (hi - lo) + lo


def _coin(n, p, generator, device):
    return torch.rand(n, generator=generator, device=device) < p


def affine_grid(theta: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``F.affine_grid(theta, [N, C, h, w], align_corners=False)``: N×h×w×2 sampling points.

    Written out because on a CPU the built-in (a batched matmul with inner size 3) costs more than
    the grid_sample it feeds; broadcasting the two 1-D axes is ~20× faster. Point (u, v) of the
    output reads the input at theta · (u, v, 1), where u, v are the pixel centres in [-1, 1].
    """
    u = (torch.arange(w, device=theta.device) * 2 + 1) / w - 1
    v = (torch.arange(h, device=theta.device) * 2 + 1) / h - 1
    t = theta[:, :, :, None, None]  # N×2×3×1×1
    return (t[:, :, 0] * u + (t[:, :, 1] * v[:, None] + t[:, :, 2])).permute(0, 2, 3, 1)


def random_resized_crop(batch: torch.Tensor, size: int | tuple[int, int] | None = None, *,
                        scale: tuple[float, float] = (0.08, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        flip_p: float = 0.0, rotation_deg: float = 0.0, padding_mode: str = "border",
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop a random box (area fraction ~ U(scale), log aspect ~ U(log ratio)) as torchvision's
    RandomResizedCrop, maybe mirror and rotate it, and resize to ``size``: one bilinear resample.

    The box is described in grid_sample's normalised coordinates ([-1, 1] across the image): output
    point u maps to input point  centre + R(angle) · diag(w, h) · diag(±1, 1) · u  (R is a true
    rotation for square images, which is where we use it: MNIST).
    torchvision draws up to 10 boxes and keeps the first that fits; we draw 10 for every sample at
    once and fall back to the whole image when none fits (torchvision: a centre crop).
    N×C×H×W uint8 or float in [0, 1] -> N×C×size×size float32 (size None: H×W).
    """
    _check_interval("scale", scale, 0.0, 1.0, " of area fractions, e.g. (0.08, 1.0)")
    if scale[0] <= 0:
        raise ValueError(f"scale must be above 0 (a crop of no area), got {tuple(scale)}")
    _check_interval("ratio", ratio, 0.0, example=" of aspect ratios, e.g. (3/4, 4/3)")
    if ratio[0] <= 0:
        raise ValueError(f"ratio must be above 0, got {tuple(ratio)}")
    _check_probability("flip_p", flip_p)
    if rotation_deg < 0:
        raise ValueError(f"rotation_deg is the largest rotation in degrees and must be >= 0, got {rotation_deg}")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}")
    if size is not None and min((size,) if isinstance(size, int) else tuple(size)) < 1:
        raise ValueError(f"size must be a positive number of pixels (or None for the input's size), got {size!r}")
    x = to_float(batch)
    n, c, H, W = x.shape
    oh, ow = (H, W) if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    dev, tries = x.device, 10
    area = _rand(n * tries, scale[0], scale[1], generator, dev).view(n, tries)
    logr = _rand(n * tries, math.log(ratio[0]), math.log(ratio[1]), generator, dev).view(n, tries)
    w = torch.sqrt(area * torch.exp(logr) * H / W)  # box width as a fraction of the image width
    h = torch.sqrt(area / torch.exp(logr) * W / H)
    ok = (w <= 1) & (h <= 1)
    first = ok.int().argmax(dim=1, keepdim=True)  # index of the first box that fits (0 if none)
    w = torch.where(ok.any(1), w.gather(1, first)[:, 0], 1.0)
    h = torch.where(ok.any(1), h.gather(1, first)[:, 0], 1.0)
    cx = (_rand(n, -1, 1, generator, dev)) * (1 - w)  # the box stays inside the image
    cy = (_rand(n, -1, 1, generator, dev)) * (1 - h)
    sign = 1.0 - 2.0 * _coin(n, flip_p, generator, dev).float()
    angle = _rand(n, -rotation_deg, rotation_deg, generator, dev) * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos * w * sign, -sin * h, cx], 1),
                         torch.stack([sin * w * sign, cos * h, cy], 1)], 1)  # N×2×3
    grid = affine_grid(theta, oh, ow)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding_mode, align_corners=False)


def horizontal_flip(batch: torch.Tensor, *, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability p (no resampling: an exact index flip)."""
    _check_probability("p", p)
    x = to_float(batch)
    flip = _coin(x.shape[0], p, generator, x.device).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def jitter_matrices(n: int, *, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                    hue: float = 0.1, p: float = 0.8, gray_p: float = 0.0, channels: int = 3,
                    generator: torch.Generator | None = None, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample colour maps: (M: n×C×C, contrast factor k: n). The image becomes
    k · (M x) + (1 − k) · mean grey of (M x), which is what ``apply_color`` computes.

    Factors as torchvision's ColorJitter: brightness, contrast, saturation ~ U[max(0, 1−b), 1+b],
    hue ~ U[−h, h] of a full turn. Brightness is b·I; saturation blends with grey,
    s·I + (1−s)·1 gᵀ; hue rotates about the grey axis 1/√3; grayscale is 1 gᵀ (g: LUMA weights).
    All of them keep a grey pixel grey. A sample that loses the jitter coin (probability 1 − p)
    or the grayscale coin (1 − gray_p) gets the identity for that step.
    """
    for name, value in (("brightness", brightness), ("contrast", contrast), ("saturation", saturation)):
        if value < 0:
            raise ValueError(f"{name} is a jitter strength and must be >= 0 (factors in [1 - s, 1 + s]), got {value}")
    if not 0 <= hue <= 0.5:
        raise ValueError(f"hue is a fraction of a full turn and must be in [0, 0.5], got {hue}")
    _check_probability("p", p)
    _check_probability("gray_p", gray_p)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")

    def factor(s):
        return _rand(n, max(0.0, 1 - s), 1 + s, generator, device)

    on = _coin(n, p, generator, device)
    b, k, s = factor(brightness), factor(contrast), factor(saturation)
    angle = _rand(n, -hue, hue, generator, device) * (2 * math.pi)
    gray = _coin(n, gray_p, generator, device)
    b, k, s = torch.where(on, b, 1.0), torch.where(on, k, 1.0), torch.where(on, s, 1.0)
    if channels == 1:  # only brightness and contrast make sense for one channel
        return b.view(n, 1, 1), k
    const = color_constants(device)
    eye, to_grey = const.eye.expand(n, 3, 3), const.to_grey  # to_grey: 1 gᵀ
    # Rodrigues: rotation by `angle` about the unit grey axis a = 1/√3: cos·I + sin·[a]× + (1−cos)·aaᵀ
    angle = torch.where(on, angle, 0.0).view(n, 1, 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = cos * eye + sin * const.cross + (1 - cos) * const.axis
    sat = s.view(n, 1, 1) * eye + (1 - s).view(n, 1, 1) * to_grey
    m = rot @ sat * b.view(n, 1, 1)
    m = torch.where(gray.view(n, 1, 1), to_grey @ m, m)  # grayscale after the jitter, as in SimCLR
    return m, k


def apply_color(batch: torch.Tensor, m: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """x -> k · (M x) + (1 − k) · mean grey(M x) per sample, clamped to [0, 1]: one baddbmm.

    The mean grey of M x is gᵀ M x̄ (x̄: the per-channel means): one reduction over the input.
    """
    x = to_float(batch)
    n, c = x.shape[:2]
    g = color_constants(x.device).g if c == 3 else x.new_ones(1, 1)
    mean_grey = (g.T @ m @ x.mean(dim=(2, 3))[..., None]).view(n)  # gᵀ M x̄
    a = m * k.view(n, 1, 1)
    offset = ((1 - k) * mean_grey).view(n, 1, 1)
    y = torch.baddbmm(offset, a, x.reshape(n, c, -1))  # offset + A x for every pixel, per sample
    return y.view(x.shape).clamp_(0, 1)


def color_jitter(batch: torch.Tensor, *, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1, p: float = 0.8, generator: torch.Generator | None = None) -> torch.Tensor:
    """Colour jitter with probability p per sample (see ``jitter_matrices``)."""
    x = to_float(batch)
    m, k = jitter_matrices(x.shape[0], brightness=brightness, contrast=contrast, saturation=saturation, hue=hue,
                           p=p, channels=x.shape[1], generator=generator, device=x.device)
    return apply_color(x, m, k)


def random_grayscale(batch: torch.Tensor, *, p: float = 0.2, generator: torch.Generator | None = None) -> torch.Tensor:
    """Replace each RGB image by its grey version (3 equal channels) with probability p."""
    x = to_float(batch)
    m, k = jitter_matrices(x.shape[0], brightness=0, contrast=0, saturation=0, hue=0, p=0.0, gray_p=p,
                           channels=x.shape[1], generator=generator, device=x.device)
    return apply_color(x, m, k)


def gaussian_blur(batch: torch.Tensor, *, p: float = 0.5, sigma: tuple[float, float] = (0.1, 2.0),
                  kernel_size: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian blur with probability p and sigma ~ U(sigma) per sample: a separable grouped conv.

    kernel_size: odd, defaults to 10% of the image side, made odd (SimCLR App. A).
    """
    _check_probability("p", p)
    _check_interval("sigma", sigma, 0.0, example=" of standard deviations in pixels, e.g. (0.1, 2.0)")
    if sigma[0] <= 0:
        raise ValueError(f"sigma must be above 0, got {tuple(sigma)}")
    if kernel_size is not None and (kernel_size < 1 or kernel_size % 2 == 0):
        raise ValueError(f"kernel_size must be a positive odd number (the kernel is centred on a pixel), "
                         f"got {kernel_size}")
    x = to_float(batch)
    n, c, H, W = x.shape
    ks = kernel_size or max(3, int(0.1 * H) // 2 * 2 + 1)
    if ks // 2 >= min(H, W):
        raise ValueError(f"kernel_size {ks} is too large for {H}×{W} images (reflection padding needs "
                         f"kernel_size // 2 < {min(H, W)})")
    on = _coin(n, p, generator, x.device)
    sig = _rand(n, sigma[0], sigma[1], generator, x.device)
    t = torch.arange(ks, device=x.device) - ks // 2
    kern = torch.exp(-0.5 * (t / sig[:, None]) ** 2)
    kern = kern / kern.sum(1, keepdim=True)
    kern = torch.where(on[:, None], kern, (t == 0).float())  # identity kernel when the coin says no
    kern = kern.repeat_interleave(c, 0)  # one kernel per (sample, channel) group
    y = F.pad(x.reshape(1, n * c, H, W), [ks // 2] * 4, mode="reflect")
    y = F.conv2d(y, kern.view(n * c, 1, 1, ks), groups=n * c)
    y = F.conv2d(y, kern.view(n * c, 1, ks, 1), groups=n * c)
    return y.view(n, c, H, W).clamp_(0, 1)  # float rounding can leave 1 + 1e-7


class SimCLRAugment:
    """The SimCLR view generator: crop+flip(+rotate) -> colour jitter -> grayscale -> blur -> noise.

    >>> aug = cifar10_augment(); views = aug(images)   # N×3×32×32 uint8 -> float32 in [0, 1]
    """

    def __init__(self, size: int | None = None, *, crop_scale: tuple[float, float] = (0.08, 1.0),
                 crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), flip_p: float = 0.5,
                 jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8,
                 gray_p: float = 0.2, blur_p: float = 0.0, blur_sigma: tuple[float, float] = (0.1, 2.0),
                 rotation_deg: float = 0.0, noise_std: float = 0.0, padding_mode: str = "border"):
        _check_interval("crop_scale", crop_scale, 0.0, 1.0, " of area fractions, e.g. (0.08, 1.0)")
        if crop_scale[0] <= 0:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {tuple(crop_scale)}")
        for name, prob in {"flip_p": flip_p, "jitter_p": jitter_p, "gray_p": gray_p, "blur_p": blur_p}.items():
            _check_probability(name, prob)
        if len(jitter) != 4:
            raise ValueError(f"jitter is (brightness, contrast, saturation, hue), got {jitter!r}")
        if noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std}")
        self.size, self.crop_scale, self.crop_ratio = size, tuple(crop_scale), tuple(crop_ratio)
        self.flip_p = flip_p
        self.jitter, self.jitter_p, self.gray_p = tuple(jitter), jitter_p, gray_p
        self.blur_p, self.blur_sigma, self.rotation_deg = blur_p, blur_sigma, rotation_deg
        self.noise_std, self.padding_mode = noise_std, padding_mode

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None):
        """N×C×H×W uint8 or float in [0, 1] -> N×C×size×size float32 in [0, 1], new views."""
        x = random_resized_crop(batch, self.size, scale=self.crop_scale, ratio=self.crop_ratio, flip_p=self.flip_p,
                                rotation_deg=self.rotation_deg, padding_mode=self.padding_mode, generator=generator)
        if self.jitter_p > 0 or self.gray_p > 0:
            brightness, contrast, saturation, hue = self.jitter
            m, k = jitter_matrices(x.shape[0], brightness=brightness, contrast=contrast, saturation=saturation,
                                   hue=hue, p=self.jitter_p, gray_p=self.gray_p, channels=x.shape[1],
                                   generator=generator, device=x.device)
            x = apply_color(x, m, k)
        if self.blur_p > 0:
            x = gaussian_blur(x, p=self.blur_p, sigma=self.blur_sigma, generator=generator)
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=generator, device=x.device)
            x = (x + self.noise_std * noise).clamp_(0, 1)
        return x

    def __repr__(self):
        return f"SimCLRAugment({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def cifar10_augment(strength: float = 0.5) -> SimCLRAugment:
    """SimCLR's CIFAR-10 recipe (Chen et al. 2020, App. B.9; google-research/simclr's CIFAR-10
    command ``--color_jitter_strength=0.5 --use_blur=False``; solo-learn: same crop, flip, grey).

    Crop scale (0.08, 1), aspect (3/4, 4/3), flip 0.5, grayscale 0.2. Colour jitter of strength s
    is (0.8s, 0.8s, 0.8s, 0.2s) for brightness, contrast, saturation, hue, applied with p = 0.8;
    s = 0.5 (google-research/simclr's CIFAR-10 setting) gives torchvision's familiar
    (0.4, 0.4, 0.4, 0.1); solo-learn uses s = 1. No blur: at 32×32 a blur removes most of what
    little detail there is. "border" padding: the crop box never leaves the image, so padding only
    decides bilinear taps a fraction of a pixel outside it; repeating the edge avoids dark seams.
    """
    s = strength
    return SimCLRAugment(crop_scale=(0.08, 1.0), crop_ratio=(3 / 4, 4 / 3), flip_p=0.5,
                         jitter=(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s), jitter_p=0.8, gray_p=0.2,
                         blur_p=0.0, padding_mode="border")


# --- Views of handwritten digits ---------------------------------------------------------------------

def affine_theta(n: int, *, rotation_deg: float = 15.0, zoom: tuple[float, float] = (0.8, 1.2),
                 shear_deg: float = 15.0, translate: float = 0.1, generator: torch.Generator | None = None,
                 device="cpu") -> torch.Tensor:
    """Per-sample sampling matrices θ (n×2×3) of a random affine map, for ``affine_grid``.

    Output point u (normalised coordinates) reads the input at A u + t, A = R(angle) · Shear(k) / zoom: the
    content is rotated by up to ±rotation_deg, slanted by up to ±shear_deg (x += tan(shear)·y), scaled by
    zoom ~ logU(zoom) (> 1 enlarges it) and shifted by up to ±translate of the image in x and y.
    """
    if rotation_deg < 0 or shear_deg < 0 or translate < 0:
        raise ValueError("rotation_deg, shear_deg and translate are largest amounts and must be >= 0")
    _check_interval("zoom", zoom, 1e-3, example=" of scale factors, e.g. (0.8, 1.2)")
    angle = _rand(n, -rotation_deg, rotation_deg, generator, device) * (math.pi / 180)
    shear = torch.tan(_rand(n, -shear_deg, shear_deg, generator, device) * (math.pi / 180))
    scale = 1 / torch.exp(_rand(n, math.log(zoom[0]), math.log(zoom[1]), generator, device))
    tx = _rand(n, -translate, translate, generator, device) * 2  # [-1, 1] spans the image: 2 units
    ty = _rand(n, -translate, translate, generator, device) * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([cos * scale, (cos * shear - sin) * scale, tx], 1),
                        torch.stack([sin * scale, (sin * shear + cos) * scale, ty], 1)], 1)


def elastic_offsets(n: int, h: int, w: int, *, alpha: float = 1.5, grid: int = 4,
                    generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """A smooth random displacement field per sample (elastic distortion, Simard et al. 2003): n×h×w×2.

    N(0, 1) displacements at grid×grid control points, upsampled bicubically to h×w (smooth, like Simard's
    Gaussian-filtered noise but cheaper), so that a typical pixel moves by ``alpha`` pixels; returned in
    grid_sample's normalised units (2 / size per pixel), to be added to a sampling grid.
    """
    if alpha < 0 or grid < 2:
        raise ValueError(f"alpha must be >= 0 and grid >= 2, got {alpha} and {grid}")
    coarse = torch.randn(n, 2, grid, grid, generator=generator, device=device)
    field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
    # x and y in normalised units (2 / size per pixel), scaled by Python numbers: no tensor from the host
    return torch.stack([field[:, 0] * alpha * (2 / w), field[:, 1] * alpha * (2 / h)], dim=-1)


def stroke_width(batch: torch.Tensor, *, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Thicken (probability p/2) or thin (p/2) the strokes of each image: another pen.

    Grey dilation (erosion) with a plus-shaped 3×3 element, the max (min) of a pixel and its 4 neighbours,
    applied a random fraction t ~ U(0, 1) of the way (a full 3×3 erosion wipes MNIST's 2-3 pixel strokes).
    N×C×H×W -> N×C×H×W float in [0, 1].
    """
    _check_probability("p", p)
    x = to_float(batch)
    n, _, H, W = x.shape
    u = torch.rand(n, generator=generator, device=x.device).view(n, 1, 1, 1)
    t = torch.rand(n, generator=generator, device=x.device).view(n, 1, 1, 1)
    pad = F.pad(x, (1, 1, 1, 1))
    shifted = torch.stack([x, pad[:, :, :H, 1:W + 1], pad[:, :, 2:, 1:W + 1], pad[:, :, 1:H + 1, :W],
                           pad[:, :, 1:H + 1, 2:]])  # self, up, down, left, right
    target = torch.where(u < p / 2, shifted.amax(0), torch.where(u < p, shifted.amin(0), x))
    return x + t * (target - x)


class DigitAugment:
    """The view generator for handwritten digits (N×1×H×W), found by measurement (benchmarks/bench_mnist.py):

    geometry  a random affine map (``affine_theta``: rotation, zoom, shear, shift) plus an elastic field
              (``elastic_offsets``): ONE bilinear grid_sample, zero padding (the background is black);
    pen       ``stroke_width``;   ink  brightness and contrast jitter with probability ``jitter_p``;
    blur      Gaussian with probability ``blur_p`` (off in the recipe).
    Each part can be turned off (rotation_deg=0, zoom=(1, 1), ..., elastic_alpha=0, stroke_p=0, jitter_p=0), as
    the augmentation-composition lab does. No flips: a mirrored 2 is not a 2.
    """

    def __init__(self, *, rotation_deg: float = 15.0, zoom: tuple[float, float] = (0.8, 1.2), shear_deg: float = 15.0,
                 translate: float = 0.1, elastic_alpha: float = 1.5, stroke_p: float = 0.5,
                 jitter: tuple[float, float] = (0.4, 0.4), jitter_p: float = 0.8, blur_p: float = 0.0,
                 blur_sigma: tuple[float, float] = (0.1, 1.0)):
        affine_theta(1, rotation_deg=rotation_deg, zoom=zoom, shear_deg=shear_deg, translate=translate)  # checks
        for name, prob in {"stroke_p": stroke_p, "jitter_p": jitter_p, "blur_p": blur_p}.items():
            _check_probability(name, prob)
        self.rotation_deg, self.zoom, self.shear_deg, self.translate = rotation_deg, tuple(zoom), shear_deg, translate
        self.elastic_alpha, self.stroke_p = elastic_alpha, stroke_p
        self.jitter, self.jitter_p, self.blur_p, self.blur_sigma = tuple(jitter), jitter_p, blur_p, tuple(blur_sigma)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """N×1×H×W uint8 or float in [0, 1] -> N×1×H×W float32 in [0, 1], new views."""
        x = to_float(batch)
        n, c, H, W = x.shape
        theta = affine_theta(n, rotation_deg=self.rotation_deg, zoom=self.zoom, shear_deg=self.shear_deg,
                             translate=self.translate, generator=generator, device=x.device)
        grid = affine_grid(theta, H, W)
        if self.elastic_alpha > 0:
            grid = grid + elastic_offsets(n, H, W, alpha=self.elastic_alpha, generator=generator, device=x.device)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        if self.stroke_p > 0:
            x = stroke_width(x, p=self.stroke_p, generator=generator)
        if self.jitter_p > 0:
            m, k = jitter_matrices(n, brightness=self.jitter[0], contrast=self.jitter[1], saturation=0, hue=0,
                                   p=self.jitter_p, channels=c, generator=generator, device=x.device)
            x = apply_color(x, m, k)
        if self.blur_p > 0:
            x = gaussian_blur(x, p=self.blur_p, sigma=self.blur_sigma, generator=generator)
        return x.clamp_(0, 1)

    def __repr__(self):
        return f"DigitAugment({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


def mnist_augment() -> DigitAugment:
    """Views that suit handwritten digits (1×28×28): the course's MNIST recipe.

    What people's handwriting varies, and what the search on a validation split kept (benchmarks/bench_mnist.py):
    rotation ±15° and shear ±15° (slant; 6 and 9 stay 180° apart), zoom 0.8-1.2 and shifts of 10% (size and
    place), an elastic distortion of 1.5 pixels (wobbly strokes), a thicker or thinner pen half of the time,
    and the ink's brightness and contrast. No flips, no colour, no blur (blur did not help).
    """
    return DigitAugment(rotation_deg=15.0, zoom=(0.8, 1.2), shear_deg=15.0, translate=0.1, elastic_alpha=1.5,
                        stroke_p=0.5, jitter=(0.4, 0.4), jitter_p=0.8, blur_p=0.0)


def mild_digit_augment() -> DigitAugment:
    """Small distortions of digits for fitting a linear probe on views (``evaluate.linear_probe_with_views``):
    rotation and shear ±8°, zoom 0.9-1.1, shifts of 5%, an elastic field of 1 pixel, the pen; no ink jitter.
    About half of ``mnist_augment``'s geometry: a probe wants more examples of each digit that still look like
    it, not the hard views a contrastive task needs. Chosen on the validation split (mnist_recipe_search.json).
    """
    return DigitAugment(rotation_deg=8.0, zoom=(0.9, 1.1), shear_deg=8.0, translate=0.05, elastic_alpha=1.0,
                        stroke_p=0.5, jitter_p=0.0, blur_p=0.0)


def pil_pipeline(dataset: str = "cifar10"):
    """The same recipe as a per-image torchvision (v1) transform on PIL images, for comparison (for digits,
    its affine and ink parts). This is what a DataLoader would run on the CPU, one image at a time.
    """
    import torchvision.transforms as T

    if dataset not in ("cifar10", "mnist"):
        raise ValueError(f"dataset must be one of ['cifar10', 'mnist'], got {dataset!r}")
    if dataset == "mnist":  # the affine part and the ink (torchvision has no pen-width step; its elastic differs)
        d = mnist_augment()
        return T.Compose([T.RandomAffine(d.rotation_deg, translate=(d.translate, d.translate), scale=d.zoom,
                                         shear=d.shear_deg, interpolation=T.InterpolationMode.BILINEAR),
                          T.RandomApply([T.ColorJitter(*d.jitter)], p=d.jitter_p), T.ToTensor()])
    a = cifar10_augment()
    steps = [T.RandomResizedCrop(32, scale=a.crop_scale, ratio=a.crop_ratio)]
    if a.flip_p:
        steps.append(T.RandomHorizontalFlip(a.flip_p))
    steps.append(T.RandomApply([T.ColorJitter(*a.jitter)], p=a.jitter_p))
    if a.gray_p:
        steps.append(T.RandomGrayscale(a.gray_p))
    if a.blur_p:
        steps.append(T.RandomApply([T.GaussianBlur(3, sigma=a.blur_sigma)], p=a.blur_p))
    return T.Compose(steps + [T.ToTensor()])


def apply_pil(pipeline, batch: torch.Tensor) -> torch.Tensor:
    """Run a per-image PIL pipeline over a batch N×C×H×W, one image at a time, and stack."""
    import torchvision.transforms.functional as TF

    if batch.dtype != torch.uint8:
        batch = (to_float(batch) * 255).round().to(torch.uint8)
    return torch.stack([pipeline(TF.to_pil_image(img)) for img in batch.cpu()])
