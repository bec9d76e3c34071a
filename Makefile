# The README's quick start: `make run` and `make test`. Both create .venv when missing.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BOOK_STAMP := $(VENV)/.installed-book

.PHONY: run test lab lab-command install chromium book book-install

# torch first, pinned: a CPU machine must never download the CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0 triton==3.7.1
	$(PY) -m pip install -q -e ".[dev,test,distributed]"
	touch $(STAMP)

install: $(STAMP)

# The book extra (Sphinx, MyST-NB, the book theme, MathJax's files) once the install is done: torch is there, pip
# leaves it alone.
$(BOOK_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[book]"
	touch $(BOOK_STAMP)

book-install: $(BOOK_STAMP)

# Every method notebook at its defaults through papermill into runs/, recorded in the run store.
run: install
	OMP_NUM_THREADS=2 $(VENV)/bin/workbench notebook --all
	$(VENV)/bin/workbench runs

# Unit tests, papermill runs, nbval on notebooks/ and browser tests, in one pytest run, on two workers
# (a test file stays on one worker: a notebook's nbval cells share its kernel; the breakages are split over two
# files, test_notebook_mutations.py and test_notebook_mutations_rest.py, so that the two workers share them).
# --no-loadscope-reorder: the files in the order tests/conftest.py gives them (longest first), not by test count.
# The development loop, about a minute: pytest -m "not slow" -n 2 --dist loadfile
test: install book-install chromium
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder

# Browser tests need Debian's chromium: installed here when missing and we are root.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else \
	    echo "chromium missing and not root: browser tests will skip (enable: sudo apt-get install chromium)"; \
	  fi; \
	fi

# JupyterLab on this machine only; --allow-root where make runs as root (containers), which it otherwise refuses.
LAB := $(VENV)/bin/jupyter lab notebooks --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root)

lab: install
	$(LAB)

# The command line `make lab` runs (the tests start it with it).
lab-command:
	@echo $(LAB)

# The course site under book/_build/html, opened offline (from disk or python -m http.server): the notebooks executed
# at their defaults, make run's copies in runs/notebooks when newer than their sources, else executed now.
book: book-install
	OMP_NUM_THREADS=2 $(PY) -m workbench.book
