"""How long each chapter takes on a Colab-like machine: a budget in minutes, from the profile's sizes.

    budget = chapter_budget("T4", get_profile("gpu"))   # every loop of every chapter, at a stated rate
    budget.minutes()                                     # {"01_augmentations": 4.1, ..., "07_many_gpus": 24.0}
    print(budget.table())                                # the same, split into main run, labs, evaluation, CPU
    python -m course_utils.measure budget --device T4 --profile gpu [--json]

A chapter's time is the sum of what its cells run, counted from the profile (``config.Profile``) and the
recipes' FLOPs (``measure.forward_flops``), never typed in:

    a training loop   steps × max(FLOPs of a step / sustained rate, the per-step floor)
                      (one step of B images: B × views × 3 × forward FLOPs; forward + backward ≈ 3 forwards)
    a forward pass    images × forward FLOPs / sustained rate (feature extraction, the kNN monitor)
    a linear probe    fits × L-BFGS iterations × the seconds of one iteration (host-bound: small matrices)
    CPU work          FLOPs / the CPU rate of Colab's two cores (k-means, GMM, 1-NN on pixels, chapter 7's
                      CPU processes), images / the PIL rate, a fixed time per UMAP map and per chapter setup.

The sustained rate is the one number that matters on a GPU: the FLOP/s that the course's SimCLR step of the
CIFAR ResNet-18 actually reaches (not the data sheet's peak). ``RATES`` holds a conservative estimate per
device, each with its public source and how it was derived; ``make gpu-check`` measures the rate (and the
per-step floor) on the GPU it runs on and writes it to benchmarks/results.json, and a measured rate then
replaces the estimate (``Budget.measured`` says which). The floor is for small models (the MNIST SmallCNN),
whose step is bound by the host launching a few hundred kernels, not by arithmetic.

The budget assumes the chapters run in order in one Colab session each (chapters 5 and 6 load the encoders
of chapters 2 and 4; when those are missing they train them first, which the budget does not count), and
a machine with one GPU: chapter 7 then runs its training in two processes on the CPU (``pretrain_ddp``).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import config

CHAPTERS = ("01_augmentations", "02_simclr_mnist", "03_nt_xent", "04_resnet18_cifar10", "05_linear_evaluation",
            "06_baselines", "07_many_gpus")
SESSION_MINUTES = 120  # what every chapter must fit on a free Colab T4, labs included (tests/test_budget.py)
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results.json"  # in a clone; absent when installed
MEASURED_SUITE = "gpu-check"
TFLOPS_RECORD = "sustained TFLOP/s of the CIFAR ResNet-18 SimCLR step"
FLOOR_RECORD = "seconds per SimCLR step of the MNIST recipe (the per-step floor)"

# Real data sizes (the stand-ins are smaller; the budget is for the real data sets).
N_TRAIN = {"mnist": 60_000, "cifar10": 50_000}
N_TEST = {"mnist": 10_000, "cifar10": 10_000}
PIXELS = {"mnist": 1 * 28 * 28, "cifar10": 3 * 32 * 32}

# The host: Colab gives two CPU cores whatever the GPU.
CPU_FLOPS = 35e9  # fp32 matmul of 2 cores, measured by benchmarks/bench_train.py (results.json, 2026-11-24)
PIL_IMAGES_PER_S = 1_500  # the per-image PIL pipeline on 2 cores: 1,582 images/s (results.json, 2026-11-24)
SETUP_S = 120  # install course_utils, download and load the data, imports: an allowance, not a measurement
UMAP_S = 30  # one UMAP map of at most 5,000 points on 2 cores (numba compiles once): an allowance
PROCESS_START_S = 15  # one torchrun launch: two Python processes import torch and meet (an allowance)
PROBE_ITERATION_S = 0.005  # one L-BFGS iteration of a linear probe on a GPU: host-bound, line search included
LOSS_STEP_S = 0.002  # one step of chapter 3's free-embedding experiments (tiny tensors on the CPU)


@dataclass(frozen=True)
class Rate:
    """What a device sustains on the course's work, with where the number comes from."""

    device: str  # "T4", "L4", "A100"
    tflops: float  # sustained TFLOP/s of the SimCLR step of the CIFAR ResNet-18 in the course's precision
    precision: str  # "fp16" (a T4) or "bf16"
    step_floor_s: float  # seconds a step of a small model takes at least (kernel launches, Python)
    source: str
    measured: bool = False


# The floor of an estimate: a SimCLR step of the MNIST recipe runs about 540 PyTorch operations (augmentation,
# forward, loss, AdamW; counted with torch.profiler on the CPU) and the backward pass as many again; eager
# PyTorch costs the host some 10-20 µs to launch each on a GPU, more on Colab's slow cores: 20 ms a step.
STEP_FLOOR_S = 0.020

RATES = {
    "T4": Rate("T4", 5.0, "fp16", STEP_FLOOR_S, (
        "estimate, conservative: NVIDIA DeepLearningExamples (ResNet-50 v1.5, PyTorch, README) measures a T4 at "
        "1,198 images/s of mixed-precision ResNet-50 inference at batch 256, 9.8 TFLOP/s of forward work "
        "(8.2 GFLOP an image), and in the same README a V100 trains at the rate it infers (1,200 training images/s "
        "= 29.5 TFLOP/s against 27.7 inferring); dkobak/simclr-cifar10 (README) trains this very model, SimCLR's "
        "CIFAR ResNet-18 at batch 512, at 11.9 s an epoch on an A100 = 28 TFLOP/s, which scaled by memory "
        "bandwidth (T4 320 GB/s against the A100's 1,555-2,039) is 4.4-5.8 TFLOP/s. A T4 is capped at 70 W and "
        "clocks down under sustained load: 5 TFLOP/s, about half the inference figure")),
    "L4": Rate("L4", 7.0, "bf16", STEP_FLOOR_S, (
        "estimate, conservative: NVIDIA's data sheets give the L4 1.9 times the T4's dense tensor peak (121 against "
        "65 TFLOP/s) but no more memory bandwidth (300 against 320 GB/s), and batch norm, ReLU and the "
        "augmentations are bandwidth-bound; DEEP-GAP (Palaniappan 2026, arXiv:2604.14552) measures the L4's "
        "lead over the T4 shrinking at large batches. 7 TFLOP/s: 1.4 times the T4's estimate")),
    "A100": Rate("A100", 25.0, "bf16", STEP_FLOOR_S, (
        "estimate, conservative: dkobak/simclr-cifar10 (README) trains SimCLR's CIFAR ResNet-18 at batch 512 in "
        "11.9 s an epoch on an A100 (fp32 with TF32, a DataLoader with 16 workers): 50,000 images × 2 views × "
        "3 × 1.11 GFLOP / 11.9 s = 28 TFLOP/s; NVIDIA DeepLearningExamples (ResNet-50 v1.5, PyTorch) trains "
        "2,470 images/s on an A100 80GB in mixed precision = 61 TFLOP/s. 25 TFLOP/s")),
}


# --- Measured rates -----------------------------------------------------------------------------

def device_key(name: str) -> str | None:
    """The key of ``RATES`` that a GPU's name denotes ("Tesla T4" -> "T4", "NVIDIA A100-SXM4-80GB" -> "A100"),
    by whole words, so that an L40S is not taken for an L4; None for another GPU."""
    words = set(re.split(r"[^A-Za-z0-9]+", name.upper()))
    return next((key for key in RATES if key.upper() in words), None)


def measured_rate(device: str, results: str | Path | None = None) -> Rate | None:
    """The rate ``make gpu-check`` measured on ``device`` (a key of ``RATES``), from benchmarks/results.json;
    None when it has not run on such a GPU (or the file is not there, as in an installed package)."""
    path = Path(results) if results is not None else RESULTS
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError):
        return None
    found = {}
    for run in runs:
        if run.get("suite") != MEASURED_SUITE or device_key(str(run.get("device", ""))) != device:
            continue
        for record in run.get("records", []):
            if record.get("name") in (TFLOPS_RECORD, FLOOR_RECORD):
                found[record["name"]] = (float(record["value"]), run["device"], run.get("date", "?"))
    if TFLOPS_RECORD not in found:
        return None
    tflops, name, date = found[TFLOPS_RECORD]
    base = RATES[device]
    floor = found.get(FLOOR_RECORD, (base.step_floor_s,))[0]
    return replace(base, tflops=tflops, step_floor_s=floor, measured=True,
                   source=f"measured by make gpu-check on a {name} on {date} (benchmarks/results.json)")


def rate_for(device: str, results: str | Path | None = None) -> Rate:
    """The measured rate of ``device`` when there is one, else the estimate of ``RATES``."""
    key = device_key(device) or device.upper()
    if key not in RATES:
        raise ValueError(f"unknown device {device!r}: the budget knows {', '.join(RATES)}")
    return measured_rate(key, results) or RATES[key]


# --- FLOPs of the recipes -----------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _forward(dataset: str, width: int, part: str) -> float:
    """Forward FLOPs of one image through the recipe's encoder ("encoder"), encoder and head ("model"), or
    encoder and a 10-class linear layer ("classifier"), at ResNet width ``width`` (ignored for MNIST)."""
    import torch

    from .encoders import build_model
    from .measure import forward_flops

    profile = replace(config.PROFILES["gpu"], cifar_width=width)
    with torch.random.fork_rng(devices=[]):
        model = build_model(dataset, seed=0, profile=profile)
    shape = (1, 28, 28) if dataset == "mnist" else (3, 32, 32)
    net = {"encoder": model.encoder, "model": model,
           "classifier": torch.nn.Sequential(model.encoder, torch.nn.Linear(model.encoder.feature_dim, 10))}[part]
    return forward_flops(net, shape)


def _feature_dim(dataset: str, width: int) -> int:
    return 128 if dataset == "mnist" else 8 * width


# --- The pieces a chapter is made of ----------------------------------------------------------------

@dataclass
class _Chapter:
    profile: config.Profile
    rate: Rate
    setup_s: float = SETUP_S
    items: list = field(default_factory=list)  # (what, part, seconds); part: setup/main/labs/evaluation/cpu

    def add(self, what: str, part: str, seconds: float) -> None:
        self.items.append((what, part, float(seconds)))

    def width(self, dataset: str) -> int:
        return self.profile.cifar_width if dataset == "cifar10" else 0

    def n_train(self, dataset: str) -> int:
        size = self.profile.mnist_train_size if dataset == "mnist" else self.profile.cifar_train_size
        return min(size or N_TRAIN[dataset], N_TRAIN[dataset])

    def n_test(self, dataset: str) -> int:
        size = self.profile.mnist_test_size if dataset == "mnist" else self.profile.cifar_test_size
        return min(size or N_TEST[dataset], N_TEST[dataset])

    def batch(self, dataset: str) -> int:
        return self.profile.mnist_batch_size if dataset == "mnist" else self.profile.cifar_batch_size

    def train(self, dataset: str, steps: int, batch: int, n_images: int, *, views: int = 2,
              part_name: str = "model") -> tuple[float, int]:
        """(seconds, steps actually run): the budget rounded up to whole epochs, as ``train.pretrain`` does."""
        batch = min(batch, n_images)
        steps = config.epochs_for(steps, n_images, batch) * (n_images // batch) if views == 2 else steps
        return steps * self.step(dataset, batch, views, part_name), steps

    def step(self, dataset: str, batch: int, views: int = 2, part_name: str = "model") -> float:
        """Seconds of one optimiser step on ``batch`` images: its FLOPs at the rate, or the floor."""
        flops = batch * views * 3 * _forward(dataset, self.width(dataset), part_name)
        return max(flops / (self.rate.tflops * 1e12), self.rate.step_floor_s)

    def forward(self, dataset: str, n_images: int, part_name: str = "encoder") -> float:
        return n_images * _forward(dataset, self.width(dataset), part_name) / (self.rate.tflops * 1e12)

    def probe(self, n_weight_decays: int, per_class: float) -> float:
        """One ``evaluate.linear_probe``: 5-fold CV below 100 labels a class (a 20% hold-out would keep fewer
        than 20 of each), else one hold-out; then a refit with the chosen L2."""
        folds = 5 if per_class < 100 else 1
        return (n_weight_decays * folds + 1) * self.profile.probe_iterations * PROBE_ITERATION_S

    def sweep(self, label: str, dataset: str, runs: list[int], n_train: int) -> None:
        """A lab (``experiments.sweep``): one run per entry of ``runs`` (its steps at the recipe's batch), each
        scored by probes on h and z (3 L2 strengths) and kNN on features of the training and test images."""
        train_s = eval_s = 0.0
        for steps in runs:
            train_s += self.train(dataset, steps, self.batch(dataset), n_train)[0]
            eval_s += self.forward(dataset, n_train + self.n_test(dataset), "model")
            eval_s += 2 * self.probe(3, n_train / 10)
        self.add(f"{label}: {len(runs)} runs", "labs", train_s)
        self.add(f"{label}: scoring the runs", "evaluation", eval_s)

    def map_2d(self) -> float:
        """One 2-D map of features (``plots.embedding_panels``): UMAP's allowance; PCA takes no time to speak of."""
        return UMAP_S if self.profile.embedding_method == "umap" else 0.0

    def lab_steps(self, dataset: str) -> int:
        return self.profile.lab_steps if dataset == "mnist" else self.profile.lab_cifar_steps

    def lab_train(self, dataset: str) -> int:
        size = self.profile.lab_train_size if dataset == "mnist" else self.profile.lab_cifar_train_size
        return min(size or N_TRAIN[dataset], self.n_train(dataset))


def _clustering_flops(n: int, dims: list[int]) -> float:
    """k-means (10 restarts) and a diagonal GMM (3 restarts, k-means start) on n points, 10 clusters, for each
    representation of ``dims`` dimensions: at most 100 iterations each (scikit-learn's, when converging)."""
    return sum(10 * 100 * n * 10 * d * 2 + 3 * 100 * n * 10 * d * 6 for d in dims)


def _ch1(c: _Chapter) -> None:
    p = c.profile
    c.add("setup", "setup", c.setup_s)
    c.add("the per-image PIL pipeline, timed", "cpu", p.aug_timing_images / PIL_IMAGES_PER_S)
    c.add("1-NN of raw digits, as is and mirrored", "cpu",
          2 * 2 * p.cluster_size * c.n_train("mnist") * PIXELS["mnist"] / CPU_FLOPS)


def _ch2(c: _Chapter) -> None:
    p, n = c.profile, c.n_train("mnist")
    c.add("setup", "setup", c.setup_s)
    c.add(f"SimCLR pretraining, {p.mnist_steps:,} steps", "main",
          c.train("mnist", p.mnist_steps, c.batch("mnist"), n)[0])
    probes = sum((1 if k is None else p.label_draws) * c.probe(3, n / 10 if k is None else k)
                 for k in p.labels_per_class)
    c.add("linear probes (3 representations)", "evaluation",
          3 * probes + 2 * c.forward("mnist", n + c.n_test("mnist")))
    c.add(f"{p.embedding_method.upper()} of the features", "cpu", c.map_2d())
    c.sweep("lab: augmentation families", "mnist", [c.lab_steps("mnist")] * 4 * len(p.lab_seeds), c.lab_train("mnist"))


def _ch3(c: _Chapter) -> None:
    p = c.profile
    c.add("setup", "setup", c.setup_s)
    c.add("free embeddings and the tiny encoder", "cpu", 6 * p.loss_experiment_steps * LOSS_STEP_S)
    seeds, steps, batch = len(p.lab_seeds), c.lab_steps("mnist"), c.batch("mnist")
    c.sweep("lab: temperature", "mnist", [steps] * 5 * seeds, c.lab_train("mnist"))
    sizes = [32, 64, 128, 256]  # chapter 3's batch sizes, at the same number of images seen
    runs = [max(1, round(steps * batch / b)) for b in sizes]
    train_s = sum(c.train("mnist", s, b, c.lab_train("mnist"))[0] for s, b in zip(runs, sizes)) * seeds
    c.add(f"lab: batch size: {len(sizes) * seeds} runs", "labs", train_s)
    n_lab = c.lab_train("mnist")
    c.add("lab: batch size: scoring the runs", "evaluation", len(sizes) * seeds * (
        c.forward("mnist", n_lab + c.n_test("mnist"), "model") + 2 * c.probe(3, n_lab / 10)))


def _ch4(c: _Chapter) -> None:
    p, n = c.profile, c.n_train("cifar10")
    c.add("setup", "setup", c.setup_s)
    seconds, steps = c.train("cifar10", p.cifar_colab_steps, c.batch("cifar10"), n)
    c.add(f"SimCLR pretraining, {steps:,} steps of {min(c.batch('cifar10'), n)}", "main", seconds)
    bank = min(p.knn_train_size or n, n)
    c.add(f"kNN monitor, {p.knn_evals + 1} times", "evaluation",
          (p.knn_evals + 1) * c.forward("cifar10", bank + c.n_test("cifar10")))
    c.add("the expected time, measured (5 steps)", "evaluation", 5 * c.step("cifar10", min(c.batch("cifar10"), n)))
    c.sweep("lab: augmentation families", "cifar10", [c.lab_steps("cifar10")] * 4 * len(p.lab_seeds),
            c.lab_train("cifar10"))


def _ch5(c: _Chapter) -> None:
    p = c.profile
    c.add("setup", "setup", c.setup_s)
    for key in ("mnist", "cifar10"):
        n, classes = c.n_train(key), 10
        c.add(f"{key}: features of 2 encoders", "evaluation", 2 * c.forward(key, n + c.n_test(key)))
        c.add(f"{key}: linear probes", "evaluation",
              sum(2 * c.probe(5, max(2, f * n / classes)) for f in p.label_fractions))
        train_s = 0.0
        for fraction in p.label_fractions:
            labelled = max(2 * classes, round(fraction * n))
            train_s += c.train(key, p.supervised_steps, c.batch(key), labelled, views=1, part_name="classifier")[0]
        c.add(f"{key}: supervised from scratch, {len(p.label_fractions)} × {p.supervised_steps:,} steps", "main",
              train_s)
    c.add("peeking at the test set (5 probes)", "evaluation",
          5 * c.probe(1, max(2, min(p.label_fractions) * c.n_train("mnist") / 10)))
    c.sweep("lab: projection head", "mnist", [c.lab_steps("mnist")] * 3 * len(p.lab_seeds), c.lab_train("mnist"))


def _ch6(c: _Chapter) -> None:
    p = c.profile
    c.add("setup", "setup", c.setup_s)
    for key in ("mnist", "cifar10"):
        n = min(p.cluster_size, N_TEST[key])
        c.add(f"{key}: features of 2 encoders", "evaluation", 2 * c.forward(key, n))
        dims = [PIXELS[key], 50, _feature_dim(key, c.width(key)), _feature_dim(key, c.width(key))]
        c.add(f"{key}: k-means and GMM on 4 representations", "cpu", _clustering_flops(n, dims) / CPU_FLOPS)
        c.add(f"{key}: 4 {p.embedding_method.upper()} maps", "cpu", 4 * c.map_2d())


def _ch7(c: _Chapter) -> None:
    import torch

    from .pretrain_ddp import profile_sizes

    p = c.profile
    c.add("setup", "setup", c.setup_s)
    c.add("the demonstrations: 3 launches of 2 processes", "cpu", 3 * PROCESS_START_S)
    # One GPU (Colab): the launches run 2 processes on the CPU, the schedule capped at the cpu profile's.
    sizes, note = profile_sizes("cifar10", p, torch.device("cpu"), demo=True)
    n, batch = min(sizes["train_size"] or N_TRAIN["cifar10"], N_TRAIN["cifar10"]), sizes["batch_size"]
    steps = config.epochs_for(sizes["steps"], n, min(batch, n)) * (n // min(batch, n))
    width = config.PROFILES["cpu"].cifar_width if note else p.cifar_width
    flops = steps * min(batch, n) * 2 * 3 * _forward("cifar10", width, "model")
    c.add(f"chapter 4's recipe in 2 CPU processes, {steps:,} steps of {min(batch, n)} (interrupted, resumed)", "cpu",
          flops / CPU_FLOPS + 2 * PROCESS_START_S)
    c.sweep("lab: the plain gather's gradient", "mnist", [c.lab_steps("mnist")] * 3 * len(p.lab_seeds),
            c.lab_train("mnist"))


_CHAPTER_ITEMS = dict(zip(CHAPTERS, (_ch1, _ch2, _ch3, _ch4, _ch5, _ch6, _ch7)))
PARTS = ("setup", "main", "labs", "evaluation", "cpu")


@dataclass
class Budget:
    """The estimated minutes of every chapter on ``rate.device`` in ``profile``: see ``chapter_budget``."""

    profile: str
    rate: Rate
    items: dict  # chapter -> [(what, part, seconds)]

    @property
    def measured(self) -> bool:
        return self.rate.measured

    def minutes(self) -> dict[str, float]:
        return {ch: sum(s for _, _, s in items) / 60 for ch, items in self.items.items()}

    def parts(self) -> dict[str, dict[str, float]]:
        """{chapter: {part: minutes}}, parts as in ``PARTS``."""
        return {ch: {part: sum(s for _, q, s in items if q == part) / 60 for part in PARTS}
                for ch, items in self.items.items()}

    def as_json(self) -> dict:
        return {"device": self.rate.device, "sustained_tflops": self.rate.tflops, "source": self.rate.source,
                "rate": "measured" if self.measured else "estimated", "profile": self.profile,
                "precision": self.rate.precision, "step_floor_s": self.rate.step_floor_s,
                "chapters": {ch: round(m, 1) for ch, m in self.minutes().items()},
                "parts": {ch: {k: round(v, 1) for k, v in parts.items()} for ch, parts in self.parts().items()}}

    def table(self) -> str:
        """A plain-text table: one row per chapter, minutes per part and in all."""
        head = f"{'chapter':24s}" + "".join(f"{part:>11s}" for part in PARTS) + f"{'total':>9s}"
        rows = [head, "-" * len(head)]
        for ch, parts in self.parts().items():
            total = sum(parts.values())
            flag = "  > session" if total > SESSION_MINUTES else ""
            rows.append(f"{ch:24s}" + "".join(f"{parts[p]:11.1f}" for p in PARTS) + f"{total:9.1f}{flag}")
        how = "measured" if self.measured else "estimated"
        rows.append(f"minutes on a {self.rate.device} ({self.rate.precision}, {self.rate.tflops:g} TFLOP/s sustained, "
                    f"{how}; {self.rate.step_floor_s * 1e3:.0f} ms/step floor), profile {self.profile!r}")
        rows.append(f"rate: {self.rate.source}")
        return "\n".join(rows)


def chapter_budget(device: str = "T4", profile: config.Profile | str | None = None, *,
                   results: str | Path | None = None, rate: Rate | None = None, setup_s: float = SETUP_S) -> Budget:
    """Every chapter's minutes on ``device`` ("T4", "L4", "A100", or a GPU name like "Tesla T4") in ``profile``
    (default: the ``gpu`` profile as shipped, without $COURSE_OVERRIDES): main runs, labs, evaluation, CPU work
    and setup, at the measured rate of that device when ``make gpu-check`` has recorded one in ``results``
    (default benchmarks/results.json), else at the estimate of ``RATES``. ``rate`` overrides both.
    ``setup_s``: the allowance per chapter for installing, downloading and loading (Colab's by default).
    """
    if profile is None:
        profile = config.PROFILES["gpu"]
    elif isinstance(profile, str):
        profile = config.PROFILES[profile] if profile in config.PROFILES else config.get_profile(profile)
    rate = rate or rate_for(device, results)
    items = {}
    for chapter, build in _CHAPTER_ITEMS.items():
        part = _Chapter(profile, rate, setup_s)
        build(part)
        items[chapter] = part.items
    return Budget(profile.name, rate, items)


def main(argv=None) -> int:
    """``python -m course_utils.measure budget --device T4 --profile gpu [--json]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m course_utils.measure budget",
                                     description="Estimated minutes of every chapter on a GPU, from the sizes.")
    parser.add_argument("--device", default="T4", help=f"one of {', '.join(RATES)} (default T4)")
    parser.add_argument("--profile", default="gpu", choices=config.VALID_PROFILES)
    parser.add_argument("--results", default=None,
                        help="benchmarks/results.json with measured rates (default: the repository's)")
    parser.add_argument("--json", action="store_true", help="print JSON: device, sustained_tflops, source, chapters")
    args = parser.parse_args(argv)
    try:
        budget = chapter_budget(args.device, config.PROFILES[args.profile], results=args.results)
    except ValueError as error:
        parser.error(str(error))
    print(json.dumps(budget.as_json(), indent=1, ensure_ascii=False) if args.json else budget.table())
    return 0


def fits(minutes: float) -> bool:
    """True when ``minutes`` fit one session (``SESSION_MINUTES``)."""
    return math.isfinite(minutes) and minutes <= SESSION_MINUTES
