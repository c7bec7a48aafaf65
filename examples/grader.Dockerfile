# The image in which `python -m course_utils.instructor.grade SUBMISSIONS/ --container course-grader` runs each
# student's kernel (no network, a cgroup for memory and processes, only its own folder mounted: see the instructors' guide).
#
#     docker build -f examples/grader.Dockerfile -t course-grader .      # from the repository root
#     podman build -f examples/grader.Dockerfile -t course-grader .
#
# It holds Python, CPU-only torch and the course's dependencies. The grader mounts its own course_utils/
# (read-only) at run time, so rebuild only when pyproject.toml's dependencies change. Use the Python version
# the grader runs with (the kernel and the grader exchange notebooks, not Python objects, but the course's
# code should see the same versions it was tested with).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MPLBACKEND=Agg
# CPU wheels: the kernels have no GPU in the container, and the CUDA wheels are gigabytes more.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision
# The course's dependencies and the kernel (ipykernel, in the instructor extra), from the package's metadata.
COPY pyproject.toml README.md /src/
COPY course_utils /src/course_utils
RUN pip install "/src[instructor]" && rm -rf /src
# The grader runs the container as the instructor's user id, with HOME in the kernel's own mounted folder.
WORKDIR /tmp
