"""course_utils.instructor: the instructors' and maintainers' tools. Students never need them.

Grading a class (nbformat, nbclient, ipykernel: ``pip install -e ".[instructor]"``):

    grade             python -m course_utils.instructor.grade SUBMISSIONS/ --out grades.csv [--html grades.html]:
                      a class, --jobs at a time, each result journaled as it comes (--resume)
    submissions       what to grade: the checks each reference chapter expects; whose notebook is which (LMS layouts)
    grade_one         one notebook in a fresh kernel, then the grader's own cell of checks in it
    sandbox           each kernel's isolation: limits, a scrubbed environment, nothing left running; worker processes
    flagging          answers that are not the student's (the course's own function imported, reached or wrapped)
    gradebook         the results: one a notebook, the journal that keeps them as they come, the CSV and HTML

The student copies and the repository (nbformat, pyyaml, pybtex):

    labs              python -m course_utils.instructor.labs students|sync|strip: the student copies in labs/, the
                      badges and install cells from _config.yml, notebooks without outputs
    student_markdown  the book's MyST as plain Jupyter Markdown, for the student copies
    bibliography      book/references.bib as the book cites it, in plain Markdown
    book_config       python -m course_utils.instructor.book_config: ``make book``'s _config.yml, a cache per profile

The arrow points one way: these modules import the rest of course_utils (config, checks, report), and nothing
outside this folder imports them, so a chapter, a student copy or a module a chapter imports never needs their
dependencies (tests/test_package_layout.py checks it). This file imports nothing, so that importing one tool
does not import the others.
"""
