"""Chapter 7's self-check, ``check_local_anchor_loss``: one rank's share of the NT-Xent loss.

The check itself lives with the code it checks, in ``course_utils.distributed``: for 1, 2 and 4 ranks simulated
in one process, the student's ``my_local_anchor_loss(z_all, rank, world_size, temperature)`` must equal
``distributed.local_anchor_loss`` on every rank, and its mean over the ranks must be ``nt_xent`` of the whole
batch. It is wrapped here so that every chapter's check is found in ``course_utils.checks``, where the notebook
imports it and the grading tool looks for it.
"""

from __future__ import annotations

from ._common import _never_raises


@_never_raises
def check_local_anchor_loss(student_fn) -> bool:
    """Chapter 7's check, ``course_utils.distributed.check_local_anchor_loss`` (it lives with the code it checks;
    here so that every chapter's checks are found in course_utils.checks, as the grading tool looks for them)."""
    from ..distributed import check_local_anchor_loss as check

    return check(student_fn)
