"""The registry of course_utils.checks: EXERCISES names every chapter's coding exercises, REFERENCES the names
whose import would hand out each answer. A student version of a chapter imports none of them (the test of the
student copies reads both); here: the registry is complete and names things that exist."""

from pathlib import Path

import pytest
import torch

from course_utils import augment, checks, distributed, evaluate, losses, models, train

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# What each check compares with: the reference must be among the names that its chapter may not import.
COMPARED_WITH = {
    "check_grayscale": augment.random_grayscale,
    "check_projection_head": models.ProjectionHead,
    "check_multiview_nt_xent": losses._nt_xent_from_ids,
    "check_anchor_grad_z": losses.nt_xent_anchor_grad,
    "check_lars_update": train.LARS,
    "check_knn_predict": evaluate.knn_predict,
    "check_lloyd": checks.lloyd_reference,
    "check_local_anchor_loss": distributed.local_anchor_loss,
}


def test_every_chapter_names_a_notebook_and_every_exercise_a_check_and_a_function():
    assert sorted(checks.EXERCISES) == sorted(p.stem for p in NOTEBOOKS.glob("0*.ipynb"))
    for chapter, exercises in checks.EXERCISES.items():
        assert exercises, chapter
        for check, function in exercises:
            assert callable(getattr(checks, check)), check
            assert function.startswith("my_"), function


def test_chapter_7s_check_is_found_here_too(capsys):
    assert checks.check_local_anchor_loss(distributed.local_anchor_loss) is True
    assert capsys.readouterr().out.startswith("PASS")


def test_every_current_exercise_has_its_references():
    current = {check for exercises in checks.EXERCISES.values() for check, _ in exercises}
    assert set(checks.REFERENCES) == current
    for check, names in checks.REFERENCES.items():
        assert names and all(isinstance(name, str) and name.isidentifier() for name in names), check


@pytest.mark.parametrize("check", sorted(COMPARED_WITH))
def test_the_reference_a_check_compares_with_may_not_be_imported(check):
    assert COMPARED_WITH[check].__name__ in checks.REFERENCES[check]


def test_the_library_functions_that_answer_an_exercise_are_listed():
    from scipy.cluster.vq import kmeans2
    from sklearn.cluster import KMeans, k_means
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import StandardScaler
    from torchvision.transforms import Grayscale, RandomGrayscale
    from torchvision.transforms.functional import rgb_to_grayscale

    for check, answer in [("check_lloyd", KMeans), ("check_lloyd", k_means), ("check_lloyd", kmeans2),
                          ("check_knn_predict", KNeighborsClassifier), ("check_standardize", StandardScaler),
                          ("check_grayscale", Grayscale), ("check_grayscale", RandomGrayscale),
                          ("check_grayscale", rgb_to_grayscale)]:
        assert answer.__name__ in checks.REFERENCES[check]


class Odd:
    """A result that no check can use: every attribute, operator and conversion raises."""

    def __getattr__(self, name):
        raise RuntimeError(f"Odd has no {name}")

    def __array__(self, *args, **kwargs):
        raise RuntimeError("Odd is no array")

    def __len__(self):
        raise RuntimeError("Odd has no length")


ODD_RESULTS = {"None": None, "a string": "z", "NaN": float("nan"), "a NaN tensor": torch.tensor(float("nan")),
               "an empty tensor": torch.empty(0), "an odd object": Odd(), "two odd objects": (Odd(), Odd())}


@pytest.mark.parametrize("check", sorted({c for exercises in checks.EXERCISES.values() for c, _ in exercises}))
@pytest.mark.parametrize("result", ODD_RESULTS.values(), ids=ODD_RESULTS.keys())
def test_no_check_raises_whatever_the_students_function_returns(check, result, capsys):
    assert getattr(checks, check)(lambda *args, **kwargs: result) is False
    assert capsys.readouterr().out.startswith("FAIL")
