"""The encoders, the projection head and SimCLRModel: shapes, stems, parameter counts, uint8 input."""

import pytest
import torch
import torch.nn as nn

from course_utils.models import ProjectionHead, SimCLRModel, SmallCNN, resnet18_cifar


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_small_cnn_maps_mnist_batch_to_features():
    torch.manual_seed(0)
    enc = SmallCNN(in_channels=1, feature_dim=128)
    h = enc(torch.rand(5, 1, 28, 28))
    assert enc.feature_dim == 128
    assert h.shape == (5, 128)
    assert torch.isfinite(h).all()


def test_small_cnn_sizes_are_configurable_and_checked():
    enc = SmallCNN(in_channels=3, feature_dim=64, width=8, convs_per_stage=1)
    assert enc(torch.rand(2, 3, 32, 32)).shape == (2, 64)
    assert sum(isinstance(m, nn.Conv2d) for m in enc.modules()) == 3
    assert sum(isinstance(m, nn.Conv2d) for m in SmallCNN(convs_per_stage=2).modules()) == 6
    # The course's MNIST encoder: one conv per stage, 92,896 parameters (chapters 2, 5 and 6 rely on it).
    assert sum(p.numel() for p in SmallCNN().parameters()) == 92_896
    with pytest.raises(ValueError, match="positive"):
        SmallCNN(feature_dim=0)


def test_resnet18_cifar_has_the_cifar_stem_and_512_features():
    net = resnet18_cifar()
    assert net.feature_dim == 512
    conv1 = net.conv1
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.padding == (1, 1)
    assert conv1.in_channels == 3 and conv1.out_channels == 64 and conv1.bias is None
    assert isinstance(net.maxpool, nn.Identity)
    assert isinstance(net.fc, nn.Identity)
    net.eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 32, 32)).shape == (2, 512)


def test_resnet18_cifar_parameter_count():
    # torchvision's ResNet-18 has 11,689,512; minus fc (513,000) and the 7×7 stem's extra 7,680.
    assert n_params(resnet18_cifar()) == 11_168_832
    assert n_params(resnet18_cifar(in_channels=1)) == 11_168_832 - 2 * 64 * 9


def test_projection_head_shapes_and_layers():
    head = ProjectionHead(128, hidden_dim=64, out_dim=16)
    assert head(torch.randn(4, 128)).shape == (4, 16)
    assert sum(isinstance(m, nn.Linear) for m in head.modules()) == 2
    assert sum(isinstance(m, nn.BatchNorm1d) for m in head.modules()) == 1
    deep = ProjectionHead(32, hidden_dim=8, out_dim=4, num_layers=3)
    assert sum(isinstance(m, nn.Linear) for m in deep.modules()) == 3
    assert deep(torch.randn(3, 32)).shape == (3, 4)
    assert isinstance(ProjectionHead(8, out_dim=2, num_layers=1).net[0], nn.Linear)
    with pytest.raises(ValueError, match="num_layers"):
        ProjectionHead(8, num_layers=0)


def test_simclr_model_returns_features_and_projections():
    torch.manual_seed(0)
    model = SimCLRModel(SmallCNN(feature_dim=32, width=8), ProjectionHead(32, hidden_dim=64, out_dim=16))
    h, z = model(torch.rand(4, 1, 28, 28))
    assert h.shape == (4, 32) and z.shape == (4, 16)
    assert model.feature_dim == 32
    default = SimCLRModel(SmallCNN(feature_dim=32, width=8))  # default head: 2048 hidden, 128 out
    assert default(torch.rand(2, 1, 28, 28))[1].shape == (2, 128)


def test_simclr_model_accepts_uint8_as_pixels_over_255():
    torch.manual_seed(0)
    model = SimCLRModel(SmallCNN(feature_dim=16, width=4), ProjectionHead(16, 32, 8)).eval()
    pixels = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        h8, z8 = model(pixels)
        hf, zf = model(pixels.float() / 255)
    torch.testing.assert_close(h8, hf)
    torch.testing.assert_close(z8, zf)


def test_simclr_model_rejects_a_single_image_without_batch_dimension():
    model = SimCLRModel(SmallCNN(feature_dim=16, width=4))
    with pytest.raises(ValueError, match="N×C×H×W"):
        model(torch.rand(1, 28, 28))
