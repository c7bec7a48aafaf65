# The two commands of the README:
#   make book   set up .venv and build the HTML book (notebooks executed in the auto profile)
#   make test   set up .venv and run every test (unit tests, nbval in the smoke profile, the book check)
# Both are idempotent: the virtual environment is rebuilt only when pyproject.toml or the constraints change.
# Setup compiles the installed packages to bytecode itself, on every core: pip does it one file at a time (about
# 40 of its 80 s here), and it must be done, since where PYTHONDONTWRITEBYTECODE=1 is set (many CI images) every
# process would otherwise compile whatever it imports (torch alone: 3.3 s, not 2 s, per process). "|| true": a few
# files are for newer Pythons (torch ships one in 3.12 syntax) and cannot compile; pip skips them silently too.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: setup book test labs bench gpu-check chapter-times clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23" "setuptools>=77" wheel
	$(PY) -m pip install --quiet --no-compile -c $(CONSTRAINTS) -e ".[book,test,instructor]"
	$(PY) -m compileall -q -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# COURSE_PROGRESS=lines: training prints a line per epoch, not a progress bar whose every redraw the page would keep
# (also when make runs from a terminal inside VS Code or Jupyter, which look like a live notebook).
# The executed notebooks are cached per profile (course_utils/instructor/book_config.py: _config.yml with execute.cache
# set to _build/.jupyter_cache/<profile>-<sizes>): jupyter-cache alone keys on the code, and after switching
# COURSE_PROFILE or COURSE_OVERRIDES it would show the other profile's outputs.
book: setup
	config=$$($(PY) -m course_utils.instructor.book_config) && \
	COURSE_PROGRESS=lines $(VENV)/bin/jupyter-book build . --keep-going --config "$$config"
	@echo ""
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# Unit tests, every notebook under nbval in the smoke profile, the student copies run as Colab
# would, and the book build check: one pytest run, one summary line. nbval runs first: the book check builds
# from the outputs it produced (conftest.py), so no chapter executes twice for the same check. Two pytest-xdist
# workers: one runs the chapters then the book check (one work unit, in order; conftest.py), the other the run-as-Colab
# check, then both share the rest. One CPU thread per process (OMP_NUM_THREADS=1, which the chapters honour): with two
# threads in each worker's kernel, four threads fought over two cores and a chapter 2 cell took 27 s, not 5.6 s.
TEST_ENV := COURSE_PROFILE=smoke COURSE_HOME=$(CURDIR)/_build/test-home TQDM_DISABLE=1 \
            OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
test: setup
	$(TEST_ENV) $(PY) -m pytest -q -n 2 --durations=15 --nbval-lax --nbval-current-env notebooks tests

# The student copies in labs/ (solutions removed, plain Jupyter Markdown), which every Colab and Kaggle badge opens.
# labs/ is committed: run this after changing a chapter (or book/references.bib) and commit labs/ with it;
# tests/test_labs.py fails while labs/ differs from what this writes.
labs: setup
	$(PY) -m course_utils.instructor.labs students notebooks labs

# Speed and accuracy figures, written to benchmarks/results.json (QUICK=1 for a short run).
bench: setup
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick,)

# On a machine with a CUDA GPU: the sustained rate the GPU budget needs, all seven chapters in the gpu profile cut
# short, and the training and augmentation benchmarks, merged into benchmarks/results.json. Without a usable GPU it
# says why (none, or one the installed torch cannot drive) and stops.
gpu-check: setup
	$(PY) benchmarks/gpu_check.py $(if $(QUICK),--quick,)

# After a cpu build of the book (COURSE_PROFILE=cpu make book): copy each chapter's execution time from the build's
# jupyter-cache into course_utils/chapter_times.json, which the chapters' headers and the instructors' guide read,
# then rebuild the cpu book's pages with them (only the guide's page executes again, in seconds). Commit the file.
chapter-times: setup
	$(PY) -m course_utils.chapter_times record --cache _build/.jupyter_cache
	config=$$(COURSE_PROFILE=cpu $(PY) -m course_utils.instructor.book_config) && \
	COURSE_PROFILE=cpu COURSE_PROGRESS=lines $(VENV)/bin/jupyter-book build . --all --keep-going --config "$$config"

clean:
	rm -rf _build
