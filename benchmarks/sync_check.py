"""Does the training step ever make the CPU wait for the GPU? A few steps of each recipe, watched.

    python benchmarks/sync_check.py [--steps 5]      # on a CUDA GPU (make gpu-check calls check_recipes)

``train.make_step`` promises a step that only queues work: the loss stays on the device and ``pretrain`` reads it
every ``sync_every`` steps. A single blocking call (``.item()``, ``float(t)``, ``if t:``, ``torch.tensor([...],
device="cuda")``, a copy from the host) makes the CPU wait until the GPU has drained its queue, and the next step
then starts on an idle GPU. Two detectors watch the steps after a warm-up (the first steps pick cuDNN algorithms
and fill caches, which may wait):

* ``HostRoundTrips``, on any device (the tests use it on the CPU): a TorchDispatchMode that records every operator
  that builds a tensor from Python or NumPy data (``aten.lift_fresh``: ``torch.tensor(list)``, ``torch.as_tensor
  (list)``, ``torch.from_numpy``), reads a value back on the host (``aten._local_scalar_dense``: ``.item()``,
  ``float(t)``, ``bool(t)``), has an output size that depends on the data (``nonzero``, ``masked_select``, ...), or
  copies from the CPU to another device. On a GPU each of these is a synchronisation.
* on a CUDA GPU, ``torch.cuda.set_sync_debug_mode("error")``: PyTorch itself raises at any synchronising call.

``check_recipes`` returns records for benchmarks/results.json: the number of synchronisations found in the steps
(0 is the promise kept). With fp16 (GPUs below compute capability 8.0) the GradScaler reads one flag per step,
by design; the notes say so.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from course_utils import config, encoders, train  # noqa: E402

# Operators that read a tensor's data on the host, or whose output size depends on it.
READS_ON_HOST = {"_local_scalar_dense", "nonzero", "nonzero_static", "masked_select", "_unique", "_unique2",
                 "unique_dim", "unique_consecutive", "unique_dim_consecutive", "equal", "is_nonzero", "allclose"}
FROM_PYTHON = {"lift_fresh", "lift_fresh_copy"}  # torch.tensor / as_tensor of Python or NumPy data


class HostRoundTrips(TorchDispatchMode):
    """Records, in ``events``, every operator run inside it that would make a CPU wait for a GPU (see the module).

    device  where the training runs. On a GPU only reads of GPU tensors count: a value read from a CPU tensor
            costs no wait (PyTorch's AdamW, for one, keeps its step counters on the CPU and reads them). On the
            CPU every read counts, since there each one stands for what would be a GPU read.

    >>> with HostRoundTrips() as probe:
    ...     _ = torch.ones(3).sum().item()
    >>> probe.events
    ['.item() or a Python condition on a tensor (aten._local_scalar_dense)']
    """

    def __init__(self, device="cpu"):
        super().__init__()
        self.on_cpu = torch.device(device).type == "cpu"
        self.events: list[str] = []

    def _on_device(self, args) -> bool:
        return self.on_cpu or any(isinstance(a, torch.Tensor) and a.device.type != "cpu" for a in args)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func._schema.name.split("::")[-1]
        if name == "_local_scalar_dense" and self._on_device(args):
            self.events.append(f".item() or a Python condition on a tensor (aten.{name})")
        elif name in READS_ON_HOST and self._on_device(args):
            self.events.append(f"an operator whose result depends on the data (aten.{name})")
        elif name in ("index", "index_put", "index_put_") and _bool_index(args) and self._on_device(args):
            self.events.append(f"indexing with a boolean mask (aten.{name}: x[mask])")
        elif name in FROM_PYTHON:
            self.events.append(f"a tensor built from Python or NumPy data (aten.{name}: torch.tensor(...))")
        elif name in ("_to_copy", "copy_") and _from_host(func, args, kwargs):
            self.events.append(f"a copy from the CPU to another device (aten.{name})")
        return func(*args, **kwargs)


def _bool_index(args) -> bool:
    """x[mask] with a boolean mask: its output size is the number of True values, read on the host."""
    indices = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else ()
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices)


def _from_host(func, args, kwargs) -> bool:
    """A copy from a CPU tensor (not a 0-d Python number wrapped by PyTorch) to a non-CPU device."""
    name = func._schema.name.split("::")[-1]
    source = args[1] if name == "copy_" else args[0]
    target = args[0].device if name == "copy_" else kwargs.get("device")
    return (isinstance(source, torch.Tensor) and source.device.type == "cpu" and source.dim() > 0
            and target is not None and torch.device(target).type != "cpu")


@contextlib.contextmanager
def cuda_sync_errors(device: torch.device):
    """On a CUDA device: PyTorch raises at every synchronising call inside (``set_sync_debug_mode("error")``)."""
    if device.type != "cuda":
        yield
        return
    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(previous)


def check_step(dataset: str = "cifar10", device=None, *, batch_size: int = 256, steps: int = 5, warmup: int = 3,
               profile: str = "gpu", amp="auto") -> dict:
    """Run ``warmup`` then ``steps`` training steps of ``dataset``'s recipe (``encoders.RECIPES``: model, views,
    optimiser) with ``train.make_step``, the last ``steps`` watched by both detectors; return a record for
    results.json whose value is the number of synchronisations found (0: the step never waits)."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    recipe = encoders.RECIPES[dataset]
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    model = encoders.build_model(dataset, seed=0, profile=config.PROFILES[profile]).to(device)
    images = torch.randint(0, 256, (batch_size, *shape), dtype=torch.uint8, device=device)
    optimizer, scheduler = train.simclr_optimizer(model, batch_size=batch_size, epochs=1, warmup_epochs=0,
                                                  steps_per_epoch=warmup + steps, recipe=recipe.optimizer, lr=recipe.lr)
    generator = torch.Generator(device=device).manual_seed(0)
    with train.cudnn_autotune(device):  # as pretrain runs the steps
        step = train.make_step(model, recipe.build_augment(), optimizer, scheduler, temperature=recipe.temperature,
                               amp=amp)
        for _ in range(warmup):
            step(images, generator)
        found, total = [], torch.zeros((), device=device)
        with HostRoundTrips(device) as probe:
            try:
                with cuda_sync_errors(device):
                    for _ in range(steps):
                        total += step(images, generator)  # what pretrain does between two reads of the loss
            except RuntimeError as error:  # set_sync_debug_mode("error") stops at the first one
                if "synchroniz" not in str(error).lower():
                    raise
                found.append(f"CUDA sync debug mode: {str(error).splitlines()[0]}")
        found = probe.events + found
    precision = str(step.dtype or torch.float32).replace("torch.", "")
    label = "cpu" if device.type == "cpu" else f"cuda ({torch.cuda.get_device_name(device)})"
    notes = (f"{steps} steps after {warmup} of warm-up, batch {batch_size}, {precision}, {recipe.optimizer}; "
             + ("none found" if not found else "found: " + "; ".join(sorted(set(found)))[:400]))
    if step.scaler.is_enabled():
        notes += " (fp16: the GradScaler reads one inf/NaN flag per step, by design)"
    return {"name": f"synchronisations in the {dataset} training step", "value": len(found), "unit": "count",
            "device": label, "notes": notes}


def check_recipes(steps: int = 5, device=None) -> list[dict]:
    """``check_step`` for chapter 4's CIFAR-10 recipe (ResNet-18) and chapter 2's MNIST recipe (small CNN)."""
    return [check_step("cifar10", device, batch_size=512, steps=steps),
            check_step("mnist", device, batch_size=512, steps=steps)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default=None, help="default: cuda when there is one, else cpu")
    args = parser.parse_args(argv)
    records = check_recipes(args.steps, args.device)
    for r in records:
        print(f"{r['name']:45s} {r['value']:>3d} {r['device']:24s} {r['notes']}")
    return 0 if all(r["value"] == 0 for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
