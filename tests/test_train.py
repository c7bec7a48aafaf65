"""The pretraining loop, checkpoint/resume, and the optimizer recipes, on a tiny synthetic data set."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from course_utils.models import ProjectionHead, SimCLRModel, SmallCNN
from course_utils.train import LARS, load_checkpoint, pretrain, simclr_optimizer, warmup_cosine

SIZE, N, BATCH = 16, 256, 64


def toy_images(n=N, seed=0):
    """uint8 n×1×16×16: a bright blob on the left (class 0) or on the right (class 1), plus noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    cx = torch.where(labels == 1, 11.0, 4.0) + torch.rand(n, generator=g) * 2 - 1
    cy = 8.0 + torch.rand(n, generator=g) * 6 - 3
    blob = torch.exp(-((xx - cx[:, None, None]) ** 2 + (yy - cy[:, None, None]) ** 2) / 6.0)
    img = blob + 0.15 * torch.rand(n, SIZE, SIZE, generator=g)
    return (img.clamp(0, 1) * 255).to(torch.uint8)[:, None], labels


def toy_augment(x, generator=None):
    """Random shift by up to 2 pixels (pad and crop) plus Gaussian noise, per sample."""
    x = x.float() / 255
    n, pad = len(x), F.pad(x, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=generator)
    dy = torch.randint(0, 5, (n,), generator=generator)
    out = torch.stack([pad[i, :, dy[i] : dy[i] + SIZE, dx[i] : dx[i] + SIZE] for i in range(n)])
    return (out + 0.1 * torch.randn(out.shape, generator=generator)).clamp(0, 1)


def reference_nt_xent(z1, z2, temperature=0.5):
    """A plain NT-Xent, so these tests do not depend on course_utils.losses."""
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (u @ u.T / temperature).fill_diagonal_(float("-inf"))
    n = len(z1)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, targets)


def make_run(epochs=3, seed=0, recipe="adam", lr=3e-3):
    torch.manual_seed(seed)
    model = SimCLRModel(SmallCNN(feature_dim=16, width=8, convs_per_stage=1), ProjectionHead(16, 32, 16))
    opt, sched = simclr_optimizer(model, batch_size=BATCH, epochs=epochs, steps_per_epoch=N // BATCH,
                                  warmup_epochs=1, recipe=recipe, lr=lr)  # fmt: skip
    return model, opt, sched


def run(model, opt, sched, images, epochs=3, **kw):
    kw = {"temperature": 0.5, "progress": False, "loss_fn": reference_nt_xent, **kw}
    return pretrain(model, images, toy_augment, epochs=epochs, batch_size=BATCH, optimizer=opt, scheduler=sched, **kw)


def features(model, images):
    model.eval()
    with torch.no_grad():
        return model(images)[0].numpy()


def test_pretraining_lowers_the_loss_and_learns_linearly_separable_features():
    images, labels = toy_images()
    model, opt, sched = make_run(epochs=6)
    history = run(model, opt, sched, images, epochs=6)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]
    assert set(history[0]) >= {"epoch", "loss", "lr", "images_per_s", "seconds"}
    assert history[-1]["loss"] < history[0]["loss"]
    assert all(row["images_per_s"] > 0 and math.isfinite(row["loss"]) for row in history)
    test_images, test_labels = toy_images(200, seed=1)
    probe = LogisticRegression(max_iter=2000).fit(features(model, images), labels.numpy())
    accuracy = probe.score(features(model, test_images), test_labels.numpy())
    assert accuracy > 0.9  # chance is 0.5


def test_default_loss_is_course_utils_nt_xent_and_augment_without_generator_works(capsys):
    pytest.importorskip("course_utils.losses")
    images, _ = toy_images(128)
    model, opt, sched = make_run(epochs=1)
    calls = []

    def plain_augment(x):  # no generator= keyword: falls back to the global RNG
        calls.append(len(x))
        return toy_augment(x)

    history = pretrain(model, images, plain_augment, epochs=1, batch_size=BATCH, optimizer=opt,
                       monitor=lambda m: 0.75, progress=False)  # fmt: skip
    assert calls == [BATCH] * 4  # 2 steps × 2 views
    assert 0 < history[0]["loss"] < math.log(2 * BATCH)
    assert history[0]["knn_acc"] == 0.75


def test_monitor_runs_every_k_epochs_and_at_the_end():
    images, _ = toy_images(128)
    model, opt, sched = make_run(epochs=3)
    seen = []
    history = run(model, opt, sched, images, epochs=3, monitor=lambda m: seen.append(m.training) or 0.5,
                  monitor_every=2)  # fmt: skip
    assert ["knn_acc" in row for row in history] == [False, True, True]
    assert seen == [False, False]  # the monitor sees the model in eval mode


class Crash(Exception):
    pass


def test_resume_after_a_crash_gives_exactly_the_uninterrupted_weights(tmp_path, capsys):
    images, _ = toy_images()
    model_a, opt_a, sched_a = make_run()
    history_a = run(model_a, opt_a, sched_a, images, monitor=lambda m: 0.5)

    def crash_in_epoch_2(model):  # called after epoch 2's steps, before its checkpoint
        if len(calls) == 1:
            raise Crash
        calls.append(1)
        return 0.5

    calls, ckpt = [], tmp_path / "run.pt"
    model_b, opt_b, sched_b = make_run()
    with pytest.raises(Crash):
        run(model_b, opt_b, sched_b, images, checkpoint_path=ckpt, monitor=crash_in_epoch_2)
    assert load_checkpoint(ckpt, make_run()[0])["epoch"] == 1  # the crash lost one epoch only
    torch.manual_seed(123)  # a fresh process: different global RNG state, fresh objects
    model_c, opt_c, sched_c = make_run(seed=7)
    history_c = run(model_c, opt_c, sched_c, images, checkpoint_path=ckpt, monitor=lambda m: 0.5)
    assert f"resumed from {ckpt} at epoch 1/3" in capsys.readouterr().out
    assert [r["loss"] for r in history_c] == [r["loss"] for r in history_a]
    assert [r["lr"] for r in history_c] == [r["lr"] for r in history_a]
    for (name, a), c in zip(model_a.state_dict().items(), model_c.state_dict().values()):
        assert torch.equal(a, c), name

    # The checkpoint is now complete: a rerun returns its history and loads the weights, no training.
    model_d, opt_d, sched_d = make_run(seed=9)
    history_d = pretrain(model_d, images, lambda *a, **k: pytest.fail("trained again"), epochs=3,
                         batch_size=BATCH, optimizer=opt_d, scheduler=sched_d, checkpoint_path=ckpt,
                         progress=False)  # fmt: skip
    assert [r["loss"] for r in history_d] == [r["loss"] for r in history_a]
    assert all(torch.equal(a, d) for a, d in zip(model_a.state_dict().values(), model_d.state_dict().values()))


def test_resuming_with_a_rebuilt_schedule_warns_and_a_kept_one_does_not(tmp_path, recwarn):
    images, _ = toy_images()  # 4 steps per epoch, as the schedules below are built for
    ckpt = tmp_path / "run.pt"
    model, opt, sched = make_run(epochs=3)
    run(model, opt, sched, images, epochs=1, checkpoint_path=ckpt)  # "the session dies after epoch 1"
    model, opt, sched = make_run(epochs=3)  # the same schedule: resumes silently
    run(model, opt, sched, images, epochs=2, checkpoint_path=ckpt)
    assert not [w for w in recwarn if "schedule" in str(w.message)]
    model, opt, sched = make_run(epochs=6)  # the student doubled the epochs: the cosine curve changed
    with pytest.warns(UserWarning, match="schedule differs") as record:
        history = run(model, opt, sched, images, epochs=6, checkpoint_path=ckpt)
    assert "delete the checkpoint" in str(record[0].message)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5, 6]  # no work lost


def test_resuming_with_another_batch_size_or_step_budget_is_refused_with_the_way_out(tmp_path):
    from course_utils.train import RecipeMismatchError

    images, _ = toy_images()
    ckpt = tmp_path / "run.pt"
    model, opt, sched = make_run(epochs=3)
    run(model, opt, sched, images, epochs=1, checkpoint_path=ckpt, total_steps=12)  # 3 epochs × 4 steps, 1 done
    model, opt, sched = make_run(epochs=3, seed=5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(RecipeMismatchError) as refused:
        pretrain(model, images, toy_augment, epochs=2, batch_size=BATCH // 2, optimizer=opt, scheduler=sched,
                 checkpoint_path=ckpt, progress=False, loss_fn=reference_nt_xent)
    message = str(refused.value)
    assert f"batch size {BATCH}" in message and f"batch size {BATCH // 2}" in message
    assert "checkpoint of its own" in message and f"rm '{ckpt}'" in message  # the ways out
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # refused before loading
    with pytest.raises(RecipeMismatchError, match="budget of steps 12; this run has budget of steps 24"):
        run(model, opt, sched, images, epochs=2, checkpoint_path=ckpt, total_steps=24)
    history = run(model, opt, sched, images, epochs=2, checkpoint_path=ckpt, total_steps=12)  # the same recipe
    assert [row["epoch"] for row in history] == [1, 2]


def test_a_rebuilt_schedule_takes_over_from_the_first_resumed_step():
    from course_utils.train import _warn_if_schedule_changed

    model, opt, sched = make_run(epochs=3)
    for _ in range(8):  # two epochs of 4 steps
        opt.step()
        sched.step()
    state = opt.state_dict(), sched.state_dict()
    model, opt, sched = make_run(epochs=6)
    opt.load_state_dict(state[0])
    sched.load_state_dict(state[1])
    with pytest.warns(UserWarning, match="schedule differs"):
        _warn_if_schedule_changed(sched, "run.pt")
    expected = 3e-3 * warmup_cosine(8, 4, 24)  # step 8 of the 6-epoch curve, not of the 3-epoch one
    assert [group["lr"] for group in opt.param_groups] == pytest.approx([expected] * len(opt.param_groups))


def test_a_truncated_checkpoint_gives_an_error_naming_the_file(tmp_path):
    images, _ = toy_images(128)
    ckpt = tmp_path / "truncated.pt"
    model, opt, sched = make_run(epochs=1)
    run(model, opt, sched, images, epochs=1, checkpoint_path=ckpt)
    assert not Path(str(ckpt) + ".tmp").exists()  # written atomically
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    model, opt, sched = make_run(epochs=2)
    with pytest.raises(RuntimeError, match="truncated.pt") as err:
        run(model, opt, sched, images, epochs=2, checkpoint_path=ckpt)
    assert "Delete it" in str(err.value)


def test_bad_inputs_are_refused_with_clear_errors():
    model, opt, sched = make_run()
    images, _ = toy_images(128)
    with pytest.raises(TypeError, match="uint8"):
        run(model, opt, sched, images.float())
    with pytest.raises(ValueError, match="batch_size"):
        pretrain(model, images[:10], toy_augment, epochs=1, batch_size=BATCH, optimizer=opt, progress=False)
    with pytest.raises(ValueError, match="recipe"):
        simclr_optimizer(model, batch_size=8, epochs=1, steps_per_epoch=1, warmup_epochs=0, recipe="sgd")


def test_schedule_warms_up_linearly_then_decays_to_zero():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    opt, sched = simclr_optimizer(model, batch_size=512, epochs=5, steps_per_epoch=10, warmup_epochs=1)
    peak = 0.4 * 512 / 256
    lrs = []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(peak / 10)
    assert lrs[9] == pytest.approx(peak)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))  # warm-up: increasing
    assert all(a > b for a, b in zip(lrs[10:], lrs[11:]))  # cosine: decreasing
    assert lrs[-1] < 0.01 * peak and opt.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine(5, 0, 10) == pytest.approx(0.5)


def test_lars_excludes_biases_and_batch_norm_from_weight_decay_and_adaptation():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))
    opt, _ = simclr_optimizer(model, batch_size=256, epochs=1, steps_per_epoch=1, warmup_epochs=0)
    assert isinstance(opt, LARS)
    decayed, excluded = opt.param_groups
    assert all(p.ndim > 1 for p in decayed["params"]) and decayed["weight_decay"] == 1e-4 and decayed["lars"]
    assert all(p.ndim == 1 for p in excluded["params"]) and excluded["weight_decay"] == 0 and not excluded["lars"]
    assert len(excluded["params"]) == 4  # conv bias, BN weight and bias, linear bias

    # With zero gradients only weight decay moves the parameters: weights shrink, 1-D ones stay.
    before = [p.detach().clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b) == (p.ndim == 1)

    # A huge gradient moves a weight by at most eta = 2% of its norm (the trust ratio).
    w = nn.Parameter(torch.randn(10, 10))
    lars = LARS([w], lr=1.0, weight_decay=0.0, eta=0.02)
    w.grad = 1e6 * torch.randn(10, 10)
    w0 = w.detach().clone()
    lars.step()
    assert (w.detach() - w0).norm() / w0.norm() == pytest.approx(0.02, rel=1e-3)


# --- The GPU code paths, run on the CPU: mixed precision, channels_last, torch.compile -----------------

from course_utils.augment import SimCLRAugment  # noqa: E402


def lars_run(epochs=2, seed=0):
    torch.manual_seed(seed)
    model = SimCLRModel(SmallCNN(feature_dim=16, width=8, convs_per_stage=1), ProjectionHead(16, 32, 16))
    opt, sched = simclr_optimizer(model, batch_size=BATCH, epochs=epochs, steps_per_epoch=N // BATCH,
                                  warmup_epochs=1, recipe="lars")
    return model, opt, sched


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16], ids=["bf16", "fp16+scaler"])
def test_mixed_precision_trains_on_the_cpu(amp):
    images, labels = toy_images()
    model, opt, sched = make_run(epochs=3)
    history = run(model, opt, sched, images, epochs=3, amp=amp, loss_fn=None)  # the course's nt_xent
    assert all(math.isfinite(row["loss"]) for row in history)
    assert history[-1]["loss"] < history[0]["loss"]


def test_fp16_resume_restores_the_loss_scale(tmp_path):
    images, _ = toy_images()
    ckpt = tmp_path / "fp16.pt"
    model, opt, sched = make_run(epochs=3)
    run(model, opt, sched, images, epochs=1, amp=torch.float16, checkpoint_path=ckpt)
    state = torch.load(ckpt, weights_only=True)
    assert state["scaler"]["scale"] == 65536.0  # GradScaler's initial scale: saved with the checkpoint
    state["scaler"]["scale"] = 1024.0  # as if overflows had lowered it
    torch.save(state, ckpt)
    model, opt, sched = make_run(epochs=3)
    run(model, opt, sched, images, epochs=2, amp=torch.float16, checkpoint_path=ckpt)
    # Restored (not a fresh 65536), and kept: the scale only grows after 2,000 clean steps.
    assert torch.load(ckpt, weights_only=True)["scaler"]["scale"] == 1024.0


def test_channels_last_gives_the_same_training_as_the_default_layout():
    images, _ = toy_images()
    histories = []
    for channels_last in (False, True):
        model, opt, sched = make_run(epochs=2)
        histories.append([row["loss"] for row in run(model, opt, sched, images, epochs=2, channels_last=channels_last)])
        assert model.encoder.features[4].weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert histories[0] == pytest.approx(histories[1], rel=1e-4)


def test_the_default_layout_is_channels_last_on_a_cpu_too():
    from course_utils.train import make_step

    model, opt, _ = make_run(epochs=1)
    assert make_step(model, toy_augment, opt, temperature=0.5).memory_format == torch.channels_last  # "auto"
    assert make_step(model, toy_augment, opt, temperature=0.5, channels_last=False).memory_format == torch.contiguous_format


def test_compiled_model_trains_like_the_eager_one():
    images, _ = toy_images(128)
    losses = []
    for compile_model in (False, True):
        model, opt, sched = make_run(epochs=1)
        losses.append(run(model, opt, sched, images, epochs=1, compile_model=compile_model)[0]["loss"])
    assert losses[1] == pytest.approx(losses[0], rel=1e-3)


def test_the_training_step_never_waits_for_the_device_between_progress_updates():
    """Reading a tensor's value (.item(), bool(), float()) makes a CPU wait for its GPU. Count such reads."""
    from torch.overrides import TorchFunctionMode

    class CountReads(TorchFunctionMode):
        reads = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") in ("item", "__bool__", "__float__", "__int__", "tolist"):
                CountReads.reads += 1
            return func(*args, **(kwargs or {}))

    images, _ = toy_images()  # 4 steps per epoch
    model, opt, sched = lars_run(epochs=2)
    augment = SimCLRAugment(crop_scale=(0.5, 1.0), jitter_p=0.5, gray_p=0.0)  # the course's, sync-free
    with CountReads():
        pretrain(model, images, augment, epochs=2, batch_size=BATCH, optimizer=opt, scheduler=sched,
                 progress=False, sync_every=2)
    assert CountReads.reads == 2 * 2  # after steps 2 and 4 of each epoch, nowhere else


def test_a_diverged_loss_stops_at_the_next_progress_update_with_a_clear_error(tmp_path):
    images, _ = toy_images()
    model, opt, sched = make_run(epochs=2)
    calls = []

    def diverging(z1, z2, temperature):
        calls.append(1)
        loss = reference_nt_xent(z1, z2, temperature)
        return loss * float("nan") if len(calls) >= 6 else loss

    ckpt = tmp_path / "run.pt"
    with pytest.raises(FloatingPointError, match="diverged.*learning rate"):
        run(model, opt, sched, images, epochs=2, loss_fn=diverging, checkpoint_path=ckpt, sync_every=1)
    assert load_checkpoint(ckpt, make_run()[0])["epoch"] == 1  # the diverged epoch was not saved


def test_a_checkpoint_from_a_gpu_resumes_on_the_cpu(tmp_path, capsys):
    images, _ = toy_images()
    ckpt = tmp_path / "from_gpu.pt"
    model, opt, sched = make_run(epochs=3)
    run(model, opt, sched, images, epochs=1, checkpoint_path=ckpt)
    state = torch.load(ckpt, weights_only=True)
    # What a CUDA run writes: its generator's state is 16 bytes (seed and offset), not a CPU generator's 5,056.
    state["rng"]["generator"] = torch.zeros(16, dtype=torch.uint8)
    state["rng"]["generator_device"] = "cuda"
    state["config"].update(device="cuda", precision="bfloat16")
    torch.save(state, ckpt)
    model, opt, sched = make_run(epochs=3)
    history = run(model, opt, sched, images, epochs=3, checkpoint_path=ckpt)
    out = capsys.readouterr().out
    assert "was written on cuda" in out and "freshly seeded" in out
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert all(math.isfinite(row["loss"]) for row in history)


def test_generator_states_of_another_device_are_refused_and_reseeded():
    from course_utils.train import _rng_state, _set_rng_state

    g = torch.Generator().manual_seed(5)
    state = _rng_state(g)
    expected = torch.rand(3, generator=g)
    assert _set_rng_state(state, g, fallback_seed=1) and torch.equal(torch.rand(3, generator=g), expected)
    state["generator"], state["generator_device"] = torch.zeros(16, dtype=torch.uint8), "cuda"
    assert not _set_rng_state(state, g, fallback_seed=1)
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(1)))
