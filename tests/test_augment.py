"""Tests of course_utils.augment: batched SimCLR augmentations and the per-image PIL pipeline."""

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as T

from course_utils.augment import (
    DigitAugment,
    affine_theta,
    elastic_offsets,
    stroke_width,
    LUMA,
    SimCLRAugment,
    affine_grid,
    apply_color,
    apply_pil,
    cifar10_augment,
    color_jitter,
    gaussian_blur,
    horizontal_flip,
    jitter_matrices,
    mild_digit_augment,
    mnist_augment,
    pil_pipeline,
    random_grayscale,
    random_resized_crop,
)


def images(n=8, c=3, side=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, side, side), dtype=torch.uint8, generator=g)


def gen(seed):
    return torch.Generator().manual_seed(seed)


PIPELINES = {
    "cifar10": lambda: cifar10_augment(),
    "mnist": lambda: mnist_augment(),
    "mild digits": lambda: mild_digit_augment(),
    "everything": lambda: SimCLRAugment(blur_p=1.0, rotation_deg=20, noise_std=0.1),
}


@pytest.mark.parametrize("name", PIPELINES)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("as_float", [False, True])
def test_output_shape_dtype_and_range(name, channels, as_float):
    x = images(c=channels)
    if as_float:
        x = x.double() / 255  # any float dtype in [0, 1] is accepted
    y = PIPELINES[name]()(x, generator=gen(0))
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1
    assert not torch.allclose(y, x.float() / (1 if as_float else 255))


def test_uint8_and_float_input_give_the_same_views():
    x = images()
    aug = cifar10_augment()
    from_uint8, from_float = aug(x, generator=gen(3)), aug(x.float() / 255, generator=gen(3))
    assert torch.allclose(from_uint8, from_float, atol=1e-6)


def test_input_batch_is_not_modified():
    x = images().float() / 255
    before = x.clone()
    SimCLRAugment(blur_p=1.0, noise_std=0.1)(x)
    assert torch.equal(x, before)


def test_output_size_can_differ_from_input():
    assert SimCLRAugment(size=(16, 24))(images()).shape == (8, 3, 16, 24)


@pytest.mark.parametrize("aug,channels", [(cifar10_augment(), 3), (mnist_augment(), 1)],
                         ids=["cifar10", "mnist"])
def test_copies_of_one_image_get_different_views(aug, channels):
    x = images(n=1, c=channels).expand(16, -1, -1, -1)
    y = aug(x, generator=gen(0)).flatten(1)
    distances = torch.cdist(y, y)
    off_diagonal = distances[~torch.eye(16, dtype=torch.bool)]
    assert off_diagonal.min() > 1e-3  # every pair of views differs


def test_seeded_generator_reproduces_and_other_seed_differs():
    x = images()
    aug = SimCLRAugment(blur_p=0.5, rotation_deg=10, noise_std=0.05)
    a, b, c = aug(x, generator=gen(7)), aug(x, generator=gen(7)), aug(x, generator=gen(8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_identity_settings_reproduce_the_input():
    x = images()
    aug = SimCLRAugment(crop_scale=(1, 1), crop_ratio=(1, 1), flip_p=0, jitter_p=0, gray_p=0)
    assert torch.allclose(aug(x), x.float() / 255, atol=1e-5)


def test_crop_of_a_quarter_area_zooms_by_two():
    # A horizontal ramp 0..1; a box of half the width stretched over the output spans half the range
    # (a little less when the box touches the image edge: the outermost bilinear taps fall a quarter
    # pixel outside the image and repeat the edge pixel).
    ramp = torch.linspace(0, 1, 32).expand(16, 3, 32, 32)
    y = random_resized_crop(ramp, scale=(0.25, 0.25), ratio=(1, 1), generator=gen(0))
    span = y[..., -1] - y[..., 0]
    assert span.max() <= 0.5 + 1e-5 and span.min() >= 0.5 - 0.25 / 31 - 1e-5
    assert span.median() == pytest.approx(0.5, abs=1e-5)


def test_crop_boxes_follow_the_scale_range():
    # The span of a cropped ramp is the box's width fraction, at least sqrt(0.08 · 3/4) = 0.245.
    ramp = torch.linspace(0, 1, 32).expand(256, 1, 32, 32)
    y = random_resized_crop(ramp, scale=(0.08, 1.0), generator=gen(1))
    span = (y[..., -1] - y[..., 0]).mean(dim=(1, 2))
    assert span.min() > 0.24 and span.max() <= 1 + 1e-5
    assert span.std() > 0.1  # boxes of many sizes


def test_affine_grid_matches_torch():
    theta = torch.randn(5, 2, 3, generator=gen(0))
    expected = F.affine_grid(theta, [5, 1, 20, 28], align_corners=False)
    assert torch.allclose(affine_grid(theta, 20, 28), expected, atol=1e-6)


def test_flip_with_p_one_mirrors():
    x = images()
    assert torch.equal(horizontal_flip(x, p=1.0), x.flip(3).float() / 255)
    y = random_resized_crop(x, scale=(1, 1), ratio=(1, 1), flip_p=1.0)
    assert torch.allclose(y, x.flip(3).float() / 255, atol=1e-5)


def test_grayscale_with_p_one_gives_equal_channels():
    x = images()
    for y in (random_grayscale(x, p=1.0), SimCLRAugment(gray_p=1.0)(x, generator=gen(0))):
        assert torch.allclose(y[:, 0], y[:, 1], atol=1e-6)
        assert torch.allclose(y[:, 1], y[:, 2], atol=1e-6)
    grey = (torch.tensor(LUMA).view(1, 3, 1, 1) * x.float() / 255).sum(1)
    assert torch.allclose(random_grayscale(x, p=1.0)[:, 0], grey, atol=1e-5)


def test_colour_matrix_keeps_grey_pixels_grey():
    m, k = jitter_matrices(64, brightness=0, contrast=0, saturation=0.9, hue=0.5, p=1.0,
                           generator=gen(0))
    grey = torch.full((64, 3, 1), 0.37)
    assert torch.allclose(m @ grey, grey, atol=1e-6)
    assert not torch.allclose(m, torch.eye(3).expand(64, 3, 3), atol=1e-2)  # colours do change


def test_hue_alone_is_a_rotation():
    m, _ = jitter_matrices(32, brightness=0, contrast=0, saturation=0, hue=0.5, p=1.0,
                           generator=gen(0))
    assert torch.allclose(m @ m.transpose(1, 2), torch.eye(3).expand(32, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(m), torch.ones(32), atol=1e-5)


def test_brightness_scales_each_image_by_one_factor_in_range():
    x = images().float() / 510 + 0.01  # values in (0, 0.51]: no clamping at 1.4x
    y = color_jitter(x, brightness=0.4, contrast=0, saturation=0, hue=0, p=1.0, generator=gen(0))
    ratio = (y / x).flatten(1)
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-4)
    assert ratio.min() >= 0.6 - 1e-5 and ratio.max() <= 1.4 + 1e-5 and ratio[:, 0].std() > 0.05


def test_contrast_keeps_the_mean_grey():
    x = images().float() / 255
    m, k = jitter_matrices(8, brightness=0, contrast=0.8, saturation=0, hue=0, p=1.0,
                           generator=gen(0))
    x = x * 0.5 + 0.25  # keep away from the clamp
    y = apply_color(x, m, k)
    g = torch.tensor(LUMA).view(1, 3, 1, 1)
    assert torch.allclose((y * g).sum(1).mean((1, 2)), (x * g).sum(1).mean((1, 2)), atol=1e-5)
    assert not torch.allclose(y, x, atol=1e-2)


def test_single_channel_jitter_is_brightness_and_contrast_only():
    m, k = jitter_matrices(8, brightness=0.4, contrast=0.4, channels=1, generator=gen(0))
    assert m.shape == (8, 1, 1) and k.shape == (8,)


def test_jitter_probability_zero_is_identity():
    x = images()
    assert torch.allclose(color_jitter(x, p=0.0), x.float() / 255, atol=1e-6)


def test_blur_smooths_and_keeps_constant_images():
    x = images().float() / 255
    y = gaussian_blur(x, p=1.0, sigma=(1.0, 2.0), generator=gen(0))
    assert y.shape == x.shape and y.var() < 0.5 * x.var()
    flat = torch.full((4, 3, 32, 32), 0.3)
    assert torch.allclose(gaussian_blur(flat, p=1.0), flat, atol=1e-6)
    assert torch.allclose(gaussian_blur(x, p=0.0), x)


def test_mnist_augment_never_flips():
    aug = mnist_augment()
    assert not hasattr(aug, "flip_p")  # the digit views have no flip at all
    assert not any(isinstance(t, T.RandomHorizontalFlip) for t in pil_pipeline("mnist").transforms)
    # An image with ink only on its left side keeps it on the left in (nearly) every view;
    # with flips, about half the views would have it on the right.
    x = torch.zeros(256, 1, 28, 28, dtype=torch.uint8)
    x[..., 4:12] = 255
    left_heavy = lambda y: (y[..., :14].sum((1, 2, 3)) > y[..., 14:].sum((1, 2, 3))).float().mean()
    assert left_heavy(aug(x, generator=gen(0))) > 0.95
    flipping = SimCLRAugment(crop_scale=(0.5, 1.0), flip_p=0.5, rotation_deg=15,
                             jitter_p=0, gray_p=0)
    assert left_heavy(flipping(x, generator=gen(0))) < 0.7


def test_digit_views_switch_off_part_by_part():
    x = images(8, c=1, side=28)
    still = DigitAugment(rotation_deg=0, zoom=(1, 1), shear_deg=0, translate=0, elastic_alpha=0, stroke_p=0,
                         jitter_p=0)
    assert torch.allclose(still(x, generator=gen(0)), x.float() / 255, atol=1e-5)  # the identity
    theta = affine_theta(4, rotation_deg=0, zoom=(2, 2), shear_deg=0, translate=0)
    assert torch.allclose(theta[:, :, :2], 0.5 * torch.eye(2).expand(4, 2, 2))  # zoom 2: read half the image
    field = elastic_offsets(3, 28, 28, alpha=1.5, generator=gen(0))
    assert field.shape == (3, 28, 28, 2) and 0.3 < field.abs().mean().item() * 14 < 3  # about a pixel or so
    assert elastic_offsets(2, 8, 8, alpha=0).abs().max() == 0


def test_pen_width_thickens_or_thins_the_strokes():
    x = torch.zeros(256, 1, 28, 28)
    x[:, :, 10:18, 13:15] = 1.0  # a vertical stroke, 2 pixels wide
    y = stroke_width(x, p=1.0, generator=gen(0))
    ink = y.sum((1, 2, 3))
    assert (ink > x[0].sum()).any() and (ink < x[0].sum()).any()  # some pens thicker, some thinner
    assert torch.equal(stroke_width(x, p=0.0), x)
    assert y.min() >= 0 and y.max() <= 1


def test_digit_views_are_reproducible_and_checked():
    x = images(16, c=1, side=28)
    aug = mnist_augment()
    assert torch.equal(aug(x, generator=gen(3)), aug(x, generator=gen(3)))
    assert not torch.equal(aug(x, generator=gen(3)), aug(x, generator=gen(4)))
    with pytest.raises(ValueError, match="zoom"):
        DigitAugment(zoom=(1.2, 0.8))
    with pytest.raises(ValueError, match="probability"):
        DigitAugment(stroke_p=2)


def test_cifar10_recipe_numbers():
    aug = cifar10_augment()
    assert aug.crop_scale == (0.08, 1.0) and aug.flip_p == 0.5 and aug.blur_p == 0
    assert aug.jitter == pytest.approx((0.4, 0.4, 0.4, 0.1))
    assert aug.jitter_p == 0.8 and aug.gray_p == 0.2


@pytest.mark.parametrize("dataset,channels,side", [("cifar10", 3, 32), ("mnist", 1, 28)])
def test_pil_pipeline_shape_and_range(dataset, channels, side):
    x = images(n=6, c=channels, side=side)
    y = apply_pil(pil_pipeline(dataset), x)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert y.min() >= 0 and y.max() <= 1


def test_bad_inputs_give_clear_errors():
    with pytest.raises(ValueError, match="N×C×H×W"):
        cifar10_augment()(images()[0])
    with pytest.raises(ValueError, match="C = 1 or 3"):
        cifar10_augment()(torch.zeros(2, 4, 8, 8))
    with pytest.raises(TypeError, match="uint8 or float"):
        cifar10_augment()(torch.zeros(2, 3, 8, 8, dtype=torch.int64))
    with pytest.raises(TypeError, match="torch.Tensor"):
        cifar10_augment()([[0.0]])
    with pytest.raises(ValueError, match="probability"):
        SimCLRAugment(flip_p=1.5)
    with pytest.raises(ValueError, match="crop_scale"):
        SimCLRAugment(crop_scale=(0.5, 0.2))
    with pytest.raises(ValueError, match="dataset"):
        pil_pipeline("imagenet")


@pytest.mark.parametrize("call, message", [
    (lambda x: random_resized_crop(x, scale=(0.5, 0.2)), "scale must satisfy"),
    (lambda x: random_resized_crop(x, scale=(0.0, 1.0)), "above 0"),
    (lambda x: random_resized_crop(x, ratio=(2.0, 0.5)), "ratio"),
    (lambda x: random_resized_crop(x, flip_p=-0.1), "probability"),
    (lambda x: random_resized_crop(x, padding_mode="wrap"), "padding_mode"),
    (lambda x: random_resized_crop(x, size=0), "positive number of pixels"),
    (lambda x: gaussian_blur(x, kernel_size=4), "odd"),
    (lambda x: gaussian_blur(x, kernel_size=65), "too large"),
    (lambda x: gaussian_blur(x, sigma=(2.0, 1.0)), "sigma"),
    (lambda x: color_jitter(x, hue=0.7), "hue"),
    (lambda x: color_jitter(x, brightness=-1), "brightness"),
    (lambda x: random_grayscale(x, p=2), "probability"),
    (lambda x: horizontal_flip(x, p=1.01), "probability"),
], ids=["scale order", "scale zero", "ratio order", "flip_p", "padding", "size", "even kernel", "big kernel",
        "sigma order", "hue", "brightness", "grayscale p", "flip p"])
def test_augmentation_options_are_checked_before_any_work(call, message):
    with pytest.raises(ValueError, match=message):
        call(images())


def test_options_are_keyword_only():
    with pytest.raises(TypeError):
        color_jitter(images(), 0.4, 0.4, 0.4, 0.1)  # which number is which? Name them.


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_the_gpu_and_reproduces_with_a_cuda_generator():
    x = images().cuda()
    aug = SimCLRAugment(blur_p=0.5, rotation_deg=10)
    g = lambda: torch.Generator(device="cuda").manual_seed(0)
    a, b = aug(x, generator=g()), aug(x, generator=g())
    assert a.is_cuda and torch.equal(a, b)


def test_mild_digit_views_stay_closer_to_the_digit_than_the_recipes():
    """The probe's views (mild_digit_augment) move a stroke less than the contrastive views (mnist_augment)."""
    x = torch.zeros(64, 1, 28, 28)
    x[:, :, 6:22, 12:16] = 1.0  # a "1"
    change = {name: (make()(x, generator=torch.Generator().manual_seed(0)) - x).abs().mean().item()
              for name, make in (("mild", mild_digit_augment), ("recipe", mnist_augment))}
    assert 0 < change["mild"] < 0.8 * change["recipe"], change
