"""The training step never waits for the device: no tensor from Python data, no value read back, inside it.

On a GPU, ``torch.tensor([...], device="cuda")``, ``.item()`` or ``if tensor:`` make the CPU wait until the GPU
has finished everything queued. On the CPU we cannot see a wait, but we can see its causes: the dispatch-mode
probe of benchmarks/sync_check.py records every operator that builds a tensor from Python data or reads one
back. (``make gpu-check`` runs the same steps under ``torch.cuda.set_sync_debug_mode("error")`` on a GPU.)
"""

import sys
from pathlib import Path

import pytest
import torch

from course_utils import augment as A
from course_utils.encoders import RECIPES
from course_utils.models import ProjectionHead, SimCLRModel, SmallCNN
from course_utils.train import LARS, cudnn_autotune, make_step, simclr_optimizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from sync_check import HostRoundTrips, check_step  # noqa: E402


def test_the_probe_sees_each_kind_of_wait():
    x = torch.rand(8)
    cases = {"torch.tensor": lambda: torch.tensor([0.299, 0.587, 0.114]), "item": lambda: x.sum().item(),
             "bool": lambda: bool((x > 2).any()), "nonzero": lambda: x[x > 0.5], "as_tensor": lambda: torch.as_tensor([1, 2])}
    for name, make in cases.items():
        with HostRoundTrips() as probe:
            make()
        assert probe.events, f"{name} was not seen"
    with HostRoundTrips() as probe:  # device-side work, Python numbers as scalars, factories: no wait
        torch.where(x > 0.5, x, 1.0) * 2.0 + torch.ones(8) + torch.full((8,), 1 / 3)
    assert probe.events == []


@pytest.mark.parametrize("name", ["cifar10", "mnist"])
def test_the_recipes_augmentations_build_no_tensor_from_python_data_after_the_first_call(name):
    aug = RECIPES[name].build_augment()
    shape = (3, 32, 32) if name == "cifar10" else (1, 28, 28)
    images = torch.randint(0, 256, (16, *shape), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    aug(images, generator=generator)  # the first call may build and cache its constants
    with HostRoundTrips() as probe:
        views = aug(images, generator=generator)
    assert probe.events == [], f"{name}'s augmentation waits for the device: {probe.events}"
    assert views.shape == (16, *shape) and 0 <= views.min() and views.max() <= 1


def test_every_building_block_with_constants_is_clean_after_the_first_call():
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    calls = [lambda: A.color_jitter(x, p=1.0), lambda: A.random_grayscale(x, p=1.0),
             lambda: A.jitter_matrices(4, gray_p=0.5), lambda: A.elastic_offsets(4, 28, 28),
             lambda: A.gaussian_blur(x, p=1.0), lambda: A.cifar10_augment()(x)]
    for call in calls:
        call()
        with HostRoundTrips() as probe:
            call()
        assert probe.events == [], probe.events
    assert A.color_constants("cpu") is A.color_constants(torch.device("cpu"))  # one cache entry per device


def tiny_model(seed=0, in_channels=1):
    torch.manual_seed(seed)
    return SimCLRModel(SmallCNN(in_channels, width=4, feature_dim=8), ProjectionHead(8, 16, 8))


@pytest.mark.parametrize("amp", [False, torch.bfloat16], ids=["fp32", "bf16"])
def test_a_whole_training_step_reads_nothing_back_and_builds_nothing_from_python(amp):
    """Augmentation of both views, forward, NT-Xent, backward, LARS and the schedule: what pretrain runs between two
    reads of the loss (every sync_every steps). (PyTorch's AdamW, the MNIST recipe's optimiser, reads its step
    counters, which it keeps on the CPU also when training on a GPU: no wait there, but on the CPU the probe
    cannot tell them apart; on a GPU, make gpu-check runs both recipes.)"""
    model = tiny_model(in_channels=3)
    optimizer, scheduler = simclr_optimizer(model, batch_size=16, epochs=1, steps_per_epoch=10, warmup_epochs=0,
                                            recipe="lars")
    step = make_step(model, RECIPES["cifar10"].build_augment(), optimizer, scheduler, temperature=0.5, amp=amp)
    images = torch.randint(0, 256, (16, 3, 16, 16), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    step(images, generator)  # the first step fills caches and the optimiser's state
    total = torch.zeros(())
    with HostRoundTrips() as probe:
        for _ in range(3):
            total += step(images, generator)
    assert probe.events == [], probe.events
    assert torch.isfinite(total)  # read here, after the probe, as pretrain reads it every sync_every steps


def test_the_sync_check_of_make_gpu_check_runs_here_and_finds_nothing():
    record = check_step("cifar10", "cpu", batch_size=8, steps=2, warmup=1, profile="smoke")
    assert record["value"] == 0 and record["unit"] == "count" and record["device"] == "cpu", record
    assert "none found" in record["notes"]


# --- LARS: the multi-tensor update is the loop's update ----------------------------------------------------

def test_lars_foreach_makes_the_same_update_as_the_loop():
    g = torch.Generator().manual_seed(0)
    shapes = [(16, 3, 3, 3), (16,), (32, 16, 3, 3), (32,), (10, 32), (10,), (4, 4), (5, 5)]
    start = [torch.randn(s, generator=g, dtype=torch.float32) for s in shapes]
    start[6].zero_()  # a zero weight: the plain step, no trust ratio

    def optimizer(params, foreach):
        groups = [{"params": [p for p in params if p.ndim > 1], "weight_decay": 1e-4},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lars": False}]
        return LARS(groups, lr=0.8, momentum=0.9, eta=0.02, clip=True, foreach=foreach)

    fused = [torch.nn.Parameter(t.clone()) for t in start]
    loop = [torch.nn.Parameter(t.clone()) for t in start]
    opt_fused, opt_loop = optimizer(fused, True), optimizer(loop, False)
    worst = 0.0
    for k in range(8):
        for a, b in zip(fused, loop):
            grad = torch.randn(a.shape, generator=g) * (1e-3 if k % 3 == 2 else 1.0)  # both sides of the clip
            a.grad, b.grad = grad.clone(), grad.clone()
        fused[7].grad = loop[7].grad = torch.zeros(5, 5)  # a zero gradient: the plain step too
        if k == 4:
            fused[1].grad = loop[1].grad = None  # a parameter without a gradient is skipped
        opt_fused.step()
        opt_loop.step()
        worst = max(worst, *((a - b).abs().max().item() for a, b in zip(fused, loop)))
    buffers = max((opt_fused.state[a]["momentum_buffer"] - opt_loop.state[b]["momentum_buffer"]).abs().max().item()
                  for a, b in zip(fused, loop))
    print(f"\nLARS foreach vs loop, 8 steps: max parameter difference {worst:.3g}, momentum buffers {buffers:.3g}")
    assert worst <= 1e-6 and buffers <= 1e-6
    assert any((a - t).abs().max() > 1e-3 for a, t in zip(fused, start))  # it did move the parameters


def test_lars_foreach_on_a_model_matches_the_loop_and_saves_the_same_state():
    fused_model, loop_model = tiny_model(), tiny_model()
    fused, _ = simclr_optimizer(fused_model, batch_size=64, epochs=1, steps_per_epoch=1, warmup_epochs=0)
    loop, _ = simclr_optimizer(loop_model, batch_size=64, epochs=1, steps_per_epoch=1, warmup_epochs=0)
    for group in loop.param_groups:
        group["foreach"] = False
    x = torch.rand(8, 1, 16, 16)
    for _ in range(3):
        for model, opt in ((fused_model, fused), (loop_model, loop)):
            opt.zero_grad()
            model(x)[1].square().mean().backward()
            opt.step()
    for a, b in zip(fused_model.parameters(), loop_model.parameters()):
        assert (a - b).abs().max() <= 1e-6
    assert fused.state_dict()["state"].keys() == loop.state_dict()["state"].keys()


def test_cudnn_autotune_is_on_inside_on_a_gpu_only_and_restored():
    before = torch.backends.cudnn.benchmark
    with cudnn_autotune("cpu"):
        assert torch.backends.cudnn.benchmark == before
    with cudnn_autotune("cuda"):  # only a flag: nothing runs on a GPU
        assert torch.backends.cudnn.benchmark is True
    assert torch.backends.cudnn.benchmark == before
