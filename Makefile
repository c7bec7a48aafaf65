# The two commands of the README:
#   make book   set up .venv and build the HTML book (notebooks executed in the auto profile)
#   make test   set up .venv and run every test (unit tests, nbval in the smoke profile, the book check)
# Both are idempotent: the virtual environment is rebuilt only when pyproject.toml or the constraints change.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export MPLBACKEND := Agg
export PYTHONWARNINGS := ignore::DeprecationWarning

.PHONY: setup book test unit notebooks book-check labs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=23" "setuptools>=64" wheel
	$(PY) -m pip install --quiet -c $(CONSTRAINTS) -e ".[book,test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

book: setup
	$(VENV)/bin/jupyter-book build . --keep-going
	@echo ""
	@echo "The book is at $(CURDIR)/_build/html/index.html"

# Unit tests, then every notebook under nbval in the smoke profile, then the book build check.
test: setup
	COURSE_PROFILE=smoke $(PY) -m pytest -q
