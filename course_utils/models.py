"""The networks: an encoder f, a projection head g, and SimCLR's pair (f, g).

SimCLR (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual
Representations") trains ``h = f(x)`` and ``z = g(h)`` so that the two views of one image have
similar ``z``. After pretraining, g is thrown away and h is the representation we evaluate.

    x  (N, C, H, W)  --f-->  h (N, feature_dim)  --g-->  z (N, out_dim)

Images enter as float tensors in [0, 1]; ``SimCLRModel`` also accepts uint8 and divides by 255.
No mean/std normalisation: the first batch norm takes care of the scale.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torchvision

from .augment import to_float


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    # No conv bias: the batch norm that follows has its own shift, a bias would be redundant.
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """A small VGG-style encoder for 28×28 digits: three stages, global average pool.

    Stage widths are ``(width, 2 * width, feature_dim)``, each stage ``convs_per_stage`` 3×3
    conv-BN-ReLU layers, a 2×2 max-pool after the first two stages (28 → 14 → 7), then a global
    average pool. The default (one conv per stage, 92,896 parameters) is the course's MNIST encoder:
    about 420 images/s of SimCLR training on 2 CPU cores; ``convs_per_stage=2`` is about 2× slower.

    Input  (N, in_channels, H, W) float in [0, 1] (any H, W ≥ 4; MNIST is 28×28).
    Output (N, feature_dim).
    """

    def __init__(self, in_channels: int = 1, feature_dim: int = 128, width: int = 32, convs_per_stage: int = 1):
        super().__init__()
        if min(in_channels, feature_dim, width, convs_per_stage) < 1:
            raise ValueError(
                f"SmallCNN needs positive sizes, got in_channels={in_channels}, feature_dim={feature_dim}, "
                f"width={width}, convs_per_stage={convs_per_stage}."
            )
        layers: list[nn.Module] = []
        c_in = in_channels
        for stage, c_out in enumerate((width, 2 * width, feature_dim)):
            for _ in range(convs_per_stage):
                layers += _conv_bn_relu(c_in, c_out)
                c_in = c_out
            if stage < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.in_channels = in_channels
        self.feature_dim = feature_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def resnet18_cifar(in_channels: int = 3, width: int = 64) -> nn.Module:
    """ResNet-18 (He et al. 2016) with the CIFAR stem used by SimCLR (Chen et al. 2020, appx. B.9).

    torchvision's ResNet-18 starts with a 7×7 stride-2 convolution and a stride-2 max-pool: on a
    32×32 image that leaves 8×8 feature maps before the first residual block and throws away
    most of the detail. The CIFAR variant replaces conv1 with a 3×3 stride-1 convolution
    (no bias) and removes the max-pool; ``fc`` is replaced by Identity so the network returns the
    pooled features h. ``width`` is the first stage's number of channels (the stages have width × 1, 2, 4,
    8): 64 is ResNet-18 (11,168,832 parameters, 512-d h); 16 is the same 18 layers at a quarter of the width,
    1/16 of the computation, which the course's ``cpu`` profile trains on two CPU cores.

    Input  (N, in_channels, 32, 32) float in [0, 1].  Output (N, 8 × width).
    """
    if width < 1:
        raise ValueError(f"width must be a positive number of channels, got {width}")
    net = torchvision.models.resnet18(weights=None, width_per_group=64)
    if width != 64:  # rebuild the four stages narrower (torchvision's ResNet class makes them from inplanes)
        from torchvision.models.resnet import BasicBlock

        net.inplanes = width
        net.bn1 = nn.BatchNorm2d(width)
        net.layer1 = net._make_layer(BasicBlock, width, 2)
        net.layer2 = net._make_layer(BasicBlock, 2 * width, 2, stride=2)
        net.layer3 = net._make_layer(BasicBlock, 4 * width, 2, stride=2)
        net.layer4 = net._make_layer(BasicBlock, 8 * width, 2, stride=2)
        for m in net.modules():  # torchvision's initialisation, for the new layers
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    net.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.feature_dim = 8 * width
    return net


class ProjectionHead(nn.Module):
    """SimCLR's projection head g: an MLP Linear-BN-ReLU-...-Linear.

    ``num_layers`` counts the Linear layers (1 gives a linear head). SimCLR's loss is computed on
    z = g(h), and the paper shows that h (before g) is the better representation: g is thrown
    away after pretraining (SimCLR §4.2).

    Input (N, in_dim).  Output (N, out_dim).
    """

    def __init__(self, in_dim: int, hidden_dim: int = 2048, out_dim: int = 128, num_layers: int = 2):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1 (the number of Linear layers), got {num_layers}.")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            # No bias before a batch norm (its shift does the job).
            layers += [nn.Linear(dim, hidden_dim, bias=False), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim))
        self.net = nn.Sequential(*layers)
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


class SimCLRModel(nn.Module):
    """The encoder f and the projection head g together: ``forward(x) -> (h, z)``.

    ``head`` defaults to ``ProjectionHead(encoder.feature_dim)``. Use ``model.encoder`` (f alone)
    for evaluation once pretraining is over.

    Input  (N, C, H, W), float in [0, 1] or uint8 in [0, 255] (divided by 255).
    Output h (N, encoder.feature_dim) and z (N, head.out_dim).
    """

    def __init__(self, encoder: nn.Module, head: nn.Module | None = None):
        super().__init__()
        if head is None:
            if not hasattr(encoder, "feature_dim"):
                raise TypeError("The encoder has no .feature_dim attribute: pass a head explicitly.")
            head = ProjectionHead(encoder.feature_dim)
        self.encoder = encoder
        self.head = head
        self.feature_dim = getattr(encoder, "feature_dim", None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4:
            raise ValueError(f"Expected a batch of images N×C×H×W, got a tensor of shape {tuple(x.shape)}.")
        if x.dtype == torch.uint8:
            x = to_float(x)
        h = self.encoder(x)
        return h, self.head(h)
