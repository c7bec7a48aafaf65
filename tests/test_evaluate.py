"""Tests of course_utils.evaluate: features, linear probe, kNN and clustering metrics."""

import numpy as np
import pytest
import torch

from course_utils import evaluate
from course_utils.evaluate import (ProbeResult, cluster_accuracy, clustering_scores, extract_features,
                                   knn_accuracy, knn_predict, linear_probe, linear_probe_with_views)



@pytest.fixture(autouse=True)
def one_thread():
    """Tiny problems: extra threads only add overhead on 2 shared cores. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blobs(n_per_class=60, n_classes=10, dim=32, spread=0.3, seed=0):
    """Well-separated Gaussian blobs: unit-norm-ish random centres, small isotropic noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    perm = rng.permutation(len(labels))
    return features[perm].astype(np.float32), labels[perm]


# --- cluster_accuracy and clustering_scores ------------------------------------------------------

def test_cluster_accuracy_of_a_permuted_labelling_is_one():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=500)
    permutation = rng.permutation(10)
    assert cluster_accuracy(y, permutation[y]) == 1.0
    assert cluster_accuracy(y, permutation[y] + 100) == 1.0  # any integer ids


def test_cluster_accuracy_of_a_random_labelling_is_near_chance():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(10), 200)
    acc = cluster_accuracy(y, rng.integers(0, 10, size=len(y)))
    assert 0.1 <= acc <= 0.2


def test_cluster_accuracy_with_more_clusters_than_classes():
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([5, 5, 7, 2, 2, 2])  # three clusters for two classes: cluster 7 matches nothing
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)
    assert cluster_accuracy(y_true, np.zeros(6, dtype=int)) == pytest.approx(0.5)  # one cluster


def test_cluster_accuracy_hand_computed_and_tensor_input():
    y_true = torch.tensor([0, 0, 1, 1, 2, 2])
    y_pred = torch.tensor([1, 1, 0, 2, 2, 2])
    # best matching: 1->0, 0->1, 2->2 gives 2 + 1 + 2 = 5 correct
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(5 / 6)
    with pytest.raises(ValueError, match="entries"):
        cluster_accuracy([0, 1], [0])


def test_clustering_scores_in_range_and_perfect_on_permutation():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 5, size=300)
    perfect = clustering_scores(y, (y + 2) % 5)
    assert perfect == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})
    noisy = clustering_scores(y, rng.integers(0, 5, size=300))
    assert set(noisy) == {"acc", "nmi", "ari"}
    assert 0 <= noisy["acc"] <= 1 and 0 <= noisy["nmi"] <= 1 and -1 <= noisy["ari"] <= 1
    assert noisy["nmi"] < 0.1 and abs(noisy["ari"]) < 0.1


# --- linear_probe --------------------------------------------------------------------------------

def test_linear_probe_on_separable_blobs():
    x, y = blobs(n_per_class=130, seed=0)
    train = np.isin(np.arange(len(y)), [i for c in range(10) for i in np.flatnonzero(y == c)[:100]])
    result = linear_probe(x[train], y[train], x[~train], y[~train], device="cpu")
    assert isinstance(result, ProbeResult)
    assert result.accuracy > 0.95
    assert result.predictions.shape == (300,) and result.predictions.dtype == np.int64
    assert result.per_class_accuracy.shape == (10,)
    assert result.weight_decay in result.val_scores
    assert result.val_accuracy == max(result.val_scores.values())
    assert result.selection == "hold-out 20%"  # 20 validation examples per class: enough for a hold-out


def test_linear_probe_accepts_tensors():
    x, y = blobs(n_per_class=40, seed=3)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    result = linear_probe(x[:300], y[:300], x[300:], y[300:], weight_decays=(1e-3, 1e-1), max_iter=50)
    assert result.accuracy > 0.95


def test_linear_probe_on_random_labels_is_near_chance():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(1000, 32)).astype(np.float32)
    y = rng.integers(0, 10, size=1000)
    result = linear_probe(x[:700], y[:700], x[700:], y[700:], device="cpu", max_iter=50)
    assert result.accuracy < 0.2


def test_chosen_weight_decay_never_depends_on_test_labels():
    x, y = blobs(n_per_class=50, spread=1.2, seed=5)  # overlapping blobs: the choice matters
    x_train, y_train, x_test, y_test = x[:350], y[:350], x[350:], y[350:]
    first = linear_probe(x_train, y_train, x_test, y_test, device="cpu", max_iter=50)
    shuffled = np.random.default_rng(0).permutation(y_test)
    second = linear_probe(x_train, y_train, x_test, shuffled, device="cpu", max_iter=50)
    assert second.weight_decay == first.weight_decay
    assert second.val_scores == first.val_scores
    np.testing.assert_array_equal(second.predictions, first.predictions)


def test_linear_probe_with_ten_labels_per_class_uses_k_fold():
    x, y = blobs(n_per_class=60, seed=6)
    train_idx = np.concatenate([np.flatnonzero(y == c)[:10] for c in range(10)])
    test_mask = np.ones(len(y), bool)
    test_mask[train_idx] = False
    result = linear_probe(x[train_idx], y[train_idx], x[test_mask], y[test_mask], device="cpu", max_iter=50)
    assert result.selection == "5-fold CV"
    assert result.accuracy > 0.9


def test_linear_probe_bad_inputs():
    x, y = blobs(n_per_class=5, seed=7)
    with pytest.raises(ValueError, match="length"):
        linear_probe(x, y[:-1], x, y)
    with pytest.raises(ValueError, match="dimensions"):
        linear_probe(x, y, x[:, :5], y)
    with pytest.raises(ValueError, match="at least 2 per class"):
        linear_probe(x[:12], np.arange(12) % 11, x, y)  # class 0 twice, the others once


def test_grouped_splits_keep_each_group_on_one_side():
    for per_class, expected in ((120, "hold-out 20%, by groups"), (10, "5-fold CV, by groups")):
        _, y = blobs(n_per_class=per_class, seed=8)
        labels, ids = np.tile(y, 3), np.tile(np.arange(len(y)), 3)  # each row and two copies of it
        splits, selection = evaluate._splits(labels, 0.2, 0, ids)
        assert selection == expected
        for fit, val in splits:
            assert not set(ids[fit]) & set(ids[val])
            assert len(fit) + len(val) == len(labels)
            assert (np.bincount(ids[val])[np.unique(ids[val])] == 3).all()  # whole groups, never a part
    _, y = blobs(n_per_class=120, seed=8)
    # one id per row: the same splits, in the same order, as without groups
    plain, _ = evaluate._splits(y, 0.2, 0)
    grouped, _ = evaluate._splits(y, 0.2, 0, np.arange(len(y)))
    for (a, b), (c, d) in zip(plain, grouped):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_grouped_probe_rejects_groups_that_mix_classes_or_miscount():
    x, y = blobs(n_per_class=30, seed=9)
    with pytest.raises(ValueError, match="share a label"):
        linear_probe(x, y, x, y, groups=np.zeros(len(y), int), device="cpu")
    with pytest.raises(ValueError, match="one per row"):
        linear_probe(x, y, x, y, groups=np.arange(len(y) - 1), device="cpu")


class Mean(torch.nn.Module):
    """A stand-in encoder: the mean intensity of each of four quadrants, a 4-d feature."""

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def quadrant_images(n, seed):
    """Images whose class is which quadrant is bright (4 classes), with noise: a probe on Mean() can learn it."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.rand(n, 1, 8, 8, generator=g) * 0.5
    for i, c in enumerate(labels.tolist()):
        images[i, :, (c // 2) * 4:(c // 2) * 4 + 4, (c % 2) * 4:(c % 2) * 4 + 4] += 0.5
    return images, labels


def test_probe_with_views_adds_views_keeps_the_test_images_and_is_seeded():
    images, labels = quadrant_images(80, seed=0)
    test_images, test_labels = quadrant_images(40, seed=1)
    seen = []

    def augment(batch, generator=None):
        seen.append(batch.shape[0])
        return (batch + 0.05 * torch.randn(batch.shape, generator=generator)).clamp(0, 1)

    result = linear_probe_with_views(Mean(), images, labels, test_images, test_labels, augment=augment, copies=3,
                                     seed=0, device="cpu")
    assert seen == [80, 80, 80]  # three views of the labelled images, none of the test images
    assert result.accuracy > 0.9 and result.selection.endswith("by groups")
    again = linear_probe_with_views(Mean(), images, labels, test_images, test_labels, augment=augment, copies=3,
                                    seed=0, device="cpu")
    np.testing.assert_array_equal(again.predictions, result.predictions)
    assert again.val_scores == result.val_scores
    plain = linear_probe(extract_features(Mean(), images), labels, extract_features(Mean(), test_images), test_labels,
                         device="cpu")
    none = linear_probe_with_views(Mean(), images, labels, test_images, test_labels, augment=augment, copies=0,
                                   device="cpu")
    assert none.val_scores == plain.val_scores and none.weight_decay == plain.weight_decay
    with pytest.raises(ValueError, match="copies"):
        linear_probe_with_views(Mean(), images, labels, test_images, test_labels, augment=augment, copies=-1)


# --- kNN -----------------------------------------------------------------------------------------

def knn_brute_force(train, train_labels, test, k, temperature):
    """One test row at a time, straight from the definition in Wu et al. (2018)."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    predictions = []
    for query in test:
        sims = train @ (query / np.linalg.norm(query))
        votes = {}
        for j in np.argsort(-sims)[:k]:
            votes[train_labels[j]] = votes.get(train_labels[j], 0.0) + np.exp(sims[j] / temperature)
        predictions.append(max(votes, key=votes.get))
    return np.array(predictions)


def test_knn_matches_a_brute_force_loop():
    rng = np.random.default_rng(8)
    train, labels = rng.normal(size=(80, 6)), rng.integers(0, 4, size=80)
    test = rng.normal(size=(25, 6))
    expected = knn_brute_force(train, labels, test, k=7, temperature=0.1)
    got = knn_predict(torch.tensor(train), torch.tensor(labels), torch.tensor(test), k=7, temperature=0.1,
                      batch_size=4)  # several batches, one of them short
    np.testing.assert_array_equal(got.numpy(), expected)
    acc = knn_accuracy(train, labels, test, expected, k=7, temperature=0.1)
    assert acc == 1.0


def test_knn_accuracy_on_blobs_is_high_and_k_is_capped():
    x, y = blobs(n_per_class=40, seed=9)
    acc = knn_accuracy(x[:300], y[:300], x[300:], y[300:], k=200, temperature=0.1)
    assert 0.95 < acc <= 1.0
    assert knn_accuracy(x[:50], y[:50], x[300:], y[300:], k=200) > 0.5  # k > N_train still works
    with pytest.raises(ValueError, match="temperature"):
        knn_accuracy(x, y, x, y, temperature=0)
    for k in (0, -3, 2.5):
        with pytest.raises(ValueError, match="k is the number of neighbours"):
            knn_predict(x, y, x, k=k)


# --- extract_features ----------------------------------------------------------------------------

def small_encoder():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())


def test_extract_features_shape_dtype_mode_and_values():
    encoder = small_encoder()
    encoder.train()
    images = torch.randint(0, 256, (70, 1, 8, 8), dtype=torch.uint8)
    features = extract_features(encoder, images, batch_size=16)
    assert features.shape == (70, 4) and features.dtype == torch.float32 and features.device.type == "cpu"
    assert encoder.training  # mode restored
    encoder.eval()
    with torch.no_grad():
        direct = encoder(images.float() / 255)
    torch.testing.assert_close(features, direct, rtol=1e-5, atol=1e-5)
    assert not encoder.training  # eval stays eval
    extract_features(encoder, images)
    assert not encoder.training


def test_extract_features_in_mixed_precision_left_on_the_device_for_the_knn_monitor():
    """The kNN monitor's path: autocast in the training precision, features kept where they were computed (here the
    CPU, with bf16 autocast standing in for a GPU's), float32 all the same."""
    encoder = small_encoder()
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8)
    exact = extract_features(encoder, images)
    half = extract_features(encoder, images, amp=torch.bfloat16, to_cpu=False)
    assert half.dtype == torch.float32 and half.shape == exact.shape
    assert 0 < (half - exact).abs().max() < 0.05  # bf16 computed it: close, not equal
    assert torch.equal(extract_features(encoder, images, amp="auto"), exact)  # "auto" on a CPU: float32


def test_extract_features_does_not_change_batch_norm_statistics():
    encoder = small_encoder().train()
    before = encoder[1].running_mean.clone()
    extract_features(encoder, torch.rand(20, 1, 8, 8))
    torch.testing.assert_close(encoder[1].running_mean, before)


def test_extract_features_rejects_tuples_and_bad_shapes():
    class TwoOutputs(torch.nn.Module):
        def forward(self, x):
            return x.flatten(1), x.flatten(1)

    with pytest.raises(TypeError, match="model.encoder"):
        extract_features(TwoOutputs(), torch.rand(3, 1, 4, 4))
    with pytest.raises(TypeError, match="N×C×H×W"):
        extract_features(small_encoder(), torch.rand(3, 8, 8))
