# The two commands of the README: `make book` and `make test`. Both set up .venv from scratch.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MATHJAX_VERSION := 3.2.2
MATHJAX := book/_vendor/mathjax/tex-chtml.js
export JAX_PLATFORMS ?= cpu
export PYTHONHASHSEED := 0

.PHONY: book test install vendor notebooks timings clean device-bench colab floors

install: $(VENV)/.installed

# uv installs the pinned requirements in half the time pip takes (30 s against 60 s on 2 cores), bytecode
# compiled up front as pip does (where PYTHONDONTWRITEBYTECODE is set, nothing would be compiled later and
# every process would compile what it imports). uv reads PyPI, or UV_INDEX_URL; it does not read pip's
# configuration: behind a mirror only pip knows, run `make INSTALLER=pip ...`.
INSTALLER ?= uv
UV_VERSION := 0.13.9

$(VENV)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
ifeq ($(INSTALLER),uv)
	$(BIN)/python -m pip install --quiet uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
else ifeq ($(INSTALLER),pip)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
else
	$(error INSTALLER must be uv or pip, got '$(INSTALLER)')
endif
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# MathJax 3 from the npm registry, served from the site itself (no CDN at read time).
vendor: $(MATHJAX)

$(MATHJAX):
	rm -rf book/_vendor && mkdir -p book/_vendor/tmp
	cd book/_vendor/tmp && npm pack --silent mathjax@$(MATHJAX_VERSION) >/dev/null && tar xzf mathjax-$(MATHJAX_VERSION).tgz
	mv book/_vendor/tmp/package/es5 book/_vendor/mathjax && rm -rf book/_vendor/tmp
	test -f $@

book: install vendor
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "website: _build/html/index.html"

# Two workers (the CI machine has two cores); a file's tests, so a notebook's cells, stay on one worker
# (pytest 9.2 broke xdist's loadgroup), the slowest files first (tests/conftest.py); the website is
# built once, shared through a lock. A program is compiled once per run, however many processes run it
# (chapters, assignments graded three times, tests): JAX's persistent compilation cache, emptied first,
# for every program however quickly it compiles (its key holds the program, the jaxlib version and
# XLA_FLAGS, so the AVX2 runs compile their own).
test: install vendor
	rm -rf .jax_cache
	JAX_COMPILATION_CACHE_DIR=$(CURDIR)/.jax_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 $(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=15 \
		tests chapters book/index.ipynb --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg $(PYTEST_ARGS)

# How long each notebook takes to execute in a fresh kernel (targets: each under a minute, all under four), then
# how long counting (the CLI, under 2 s) and building (under 1 s) each model takes.
timings: install
	$(BIN)/python tools/timings.py --cells 3 chapters/*.ipynb book/index.ipynb
	$(BIN)/python tools/model_timings.py --training

# Re-run every chapter and store its outputs (after editing a chapter or the library).
notebooks: install
	$(BIN)/jupyter-execute --inplace --timeout=1200 chapters/*.ipynb book/index.ipynb

# Before every release (each is too slow for `make test`): every chapter, the landing page and every
# assignment handout in an emulated Colab runtime, built from Colab's published package list (tools/colab/,
# refreshed by `tools/colab.py refresh`) on Colab's Python (COLAB_PYTHON, else python3.13 from the PATH or
# pyenv): each notebook's install cell installs a wheel of the working tree, then nbval compares every
# output with the stored one; a handout runs with its solutions and every check must pass.
colab: install
	$(BIN)/python tools/colab.py run $(COLAB_NOTEBOOKS)

# The declared floors of pyproject.toml, tested: a venv with the lowest version of every dependency that
# pyproject.toml allows (uv's lowest-direct resolution; jax 0.7.2, flax 0.12.0, numpy 2.0.0 ...), the test
# tools added without moving them, then the library's tests.
FLOORS_TESTS ?= tests/test_cost.py tests/test_counter.py tests/test_counter_contract.py tests/test_layers.py \
	tests/test_published.py tests/test_compat.py tests/test_memory.py tests/test_models.py tests/test_training.py \
	tests/test_keras_reference.py
floors: install
	rm -rf .floors && $(PYTHON) -m venv .floors
	$(BIN)/uv pip install --quiet --python .floors/bin/python --resolution lowest-direct -e ".[chapters]"
	$(BIN)/uv pip freeze --python .floors/bin/python | grep -E '^[A-Za-z0-9_.-]+==' | grep -v '^sepconv==' > .floors/constraints.txt
	$(BIN)/uv pip install --quiet --python .floors/bin/python -c .floors/constraints.txt pytest hypothesis
	@grep -i -E '^(jax|flax|numpy|matplotlib|optax|scipy|scikit-learn|keras)==' .floors/constraints.txt | tr '\n' ' '; echo
	.floors/bin/python -m pytest -q $(FLOORS_TESTS)

clean:
	rm -rf _build book/_vendor .colab .floors

# The accelerator run of chapter 12 (`python -m sepconv bench --device gpu`): on a machine whose JAX sees a GPU
# (jax with its CUDA plugin), JAX_PLATFORMS cleared (this Makefile exports cpu). DEVICE=tpu on a TPU VM.
# Results go to DEVICE_OUT (default: a folder named after the device under $XDG_DATA_HOME/sepconv/benchmarks);
# copy that folder into src/sepconv/data/benchmarks/ and re-execute chapters/12_accelerators.ipynb to show them.
DEVICE ?= gpu
device-bench: install
	JAX_PLATFORMS= $(BIN)/python -m sepconv bench --device $(DEVICE) $(if $(DEVICE_OUT),--out $(DEVICE_OUT))
