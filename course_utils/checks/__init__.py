"""Self-checks for the exercises: run a student's function against the reference implementation.

Each check prints PASS, or FAIL with what went wrong and a hint, and returns True or False. A wrong
answer never raises: the cell that calls the check always finishes, so Run-all keeps going.

    from course_utils.checks import check_lars_update
    check_lars_update(my_lars_update)   # prints "PASS: ..." or "FAIL on <case>: ... Hint: ..."

The checks recognise the usual mistakes by computing them: each check carries deliberately wrong
variants of the reference (a forgotten normalisation, a missing clip, ...) and names the one that the
student's output matches. ``EXERCISES`` lists every chapter's coding exercises, and ``REFERENCES`` the
names whose import would hand out an exercise's answer: a student version of a chapter must not import
them (the checks themselves compare with those references, inside this package).

One module a chapter, ``ch01`` to ``ch07``, each with its chapter's checks, their cases and their usual
mistakes; ``retired`` for the exercises no chapter asks for any more (the grading tool and older student
copies still call them); ``_common`` for what every check shares (running the student's function without
ever raising). Import the checks from here: this package is where the notebooks and the grading tool find them.
"""

from __future__ import annotations

from .ch01 import check_grayscale
from .ch02 import check_projection_head
from .ch03 import check_anchor_grad_z, check_multiview_nt_xent
from .ch04 import check_lars_update
from .ch05 import check_knn_predict, check_standardize
from .ch06 import check_lloyd, lloyd_reference
from .ch07 import check_local_anchor_loss
from .retired import (check_anchor_grad, check_cluster_accuracy, check_cosine_schedule, check_nt_xent,
                      check_training_step)

__all__ = [
    "EXERCISES", "REFERENCES",
    "check_grayscale", "check_projection_head", "check_multiview_nt_xent", "check_anchor_grad_z",
    "check_lars_update", "check_standardize", "check_knn_predict", "check_lloyd", "lloyd_reference",
    "check_local_anchor_loss",
    # the retired exercises (module retired)
    "check_nt_xent", "check_anchor_grad", "check_cosine_schedule", "check_cluster_accuracy", "check_training_step",
]

# --- The exercises of each chapter, and what must not be imported for them ---------------------------

# chapter notebook (file stem) -> [(check in this package, the function the student writes)], in order.
EXERCISES = {
    "01_augmentations": [("check_grayscale", "my_grayscale")],
    "02_simclr_mnist": [("check_projection_head", "my_projection_head")],
    "03_nt_xent": [("check_multiview_nt_xent", "my_multiview_nt_xent"), ("check_anchor_grad_z", "my_anchor_grad_z")],
    "04_resnet18_cifar10": [("check_lars_update", "my_lars_update")],
    "05_linear_evaluation": [("check_standardize", "my_standardize"), ("check_knn_predict", "my_knn_predict")],
    "06_baselines": [("check_lloyd", "my_lloyd")],
    "07_many_gpus": [("check_local_anchor_loss", "my_local_anchor_loss")],
}

# check -> names that hand out its answer (or the half of it that is not on the page) when imported, from
# course_utils or from a library the course installs. A chapter's student version imports none of them.
REFERENCES = {
    # torchvision's function and transforms; course_utils.augment's random_grayscale(x, p=1.0) is the answer.
    "check_grayscale": ["rgb_to_grayscale", "random_grayscale", "Grayscale", "RandomGrayscale"],
    "check_projection_head": ["ProjectionHead"],
    # _nt_xent_from_ids IS the multi-view loss (nt_xent_views: the name a public version of it would take).
    "check_multiview_nt_xent": ["_nt_xent_from_ids", "nt_xent_views"],
    # the gradient with respect to u: with it, only the chain rule through the normalisation is left.
    "check_anchor_grad_z": ["nt_xent_anchor_grad"],
    "check_lars_update": ["LARS"],
    "check_standardize": ["StandardScaler"],
    # knn_accuracy answers "is class c right for this query?", which is a prediction by trial.
    "check_knn_predict": ["knn_predict", "knn_accuracy", "KNeighborsClassifier"],
    # scikit-learn's KMeans(init=centroids, n_init=1, max_iter=...) and SciPy's kmeans2(..., minit="matrix")
    # run Lloyd's iterations from given centroids; lloyd_reference is the course's own (ch06).
    "check_lloyd": ["KMeans", "k_means", "kmeans2", "lloyd_reference"],
    "check_local_anchor_loss": ["local_anchor_loss"],
}
