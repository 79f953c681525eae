# Two commands for a newcomer: `make demo` (install, then convert and read a small generated example)
# and `make test` (install, then run the test suite). `make conformance` runs the tests against
# lerobot itself in a second, Python 3.12 environment, and `make test-latest` runs a fast subset against the
# newest torch/torchcodec on PyPI in a third (.ci/run does all three).

PYTHON ?= python3
VENV ?= .venv
PY312 ?= $(shell pyenv root 2>/dev/null)/versions/3.12.1/bin/python3
VENV312 ?= .venv312
VENV_LATEST ?= .venv-latest
PYTEST_ARGS ?=
# The newest torch/torchcodec pair on PyPI that our ranges admit (PyPI's default wheels: CUDA builds, run on CPU).
LATEST_PAIR ?= "torch==2.15.*" "torchcodec==0.17.*"
# The fast subset `make test-latest` runs (marker expression below plus these files, ~2 min on 2 cores): what
# touches torch/torchcodec, i.e. every reader test (decode, transport, batches, dataset, DataLoader workers), the
# training loop (torch + torchdata's StatefulDataLoader), verify (decodes with torchcodec), plus packaging.
FAST_TESTS ?= $(wildcard tests/reader/test_reader_*.py) tests/tools/test_train.py tests/tools/test_verify.py \
	tests/convert/test_mp4_errors.py tests/test_package.py

.PHONY: install demo test soak fuzz test-latest conformance lint clean clean-venv clean-latest

# FFmpeg's shared libraries are what torchcodec decodes with; the ffmpeg binary builds test fixtures.
$(VENV)/.installed: pyproject.toml constraints.txt
	@command -v ffmpeg >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q -c constraints.txt -e ".[test,plot,testing]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/lerobot-wds demo --workdir demo_out

test: install
	$(VENV)/bin/python -m pytest -m "not conformance and not soak" $(PYTEST_ARGS)

# The long variants of the reliability tests (tests marked soak), e.g. 20 epochs of persistent workers.
soak: install
	$(VENV)/bin/python -m pytest -m soak -rP $(PYTEST_ARGS)

# The fuzzers at length: the hypothesis "fuzz" profile (thousands of random examples per property instead of the
# suite's small derandomized run, see tests/conftest.py) and 60 seeds per end-to-end corruption scenario.
fuzz: install
	HYPOTHESIS_PROFILE=fuzz LEROBOT_WDS_CORRUPTION_SEEDS=60 $(VENV)/bin/python -m pytest -q \
		tests/convert/test_fuzz_mp4.py tests/reader/test_fuzz_shards.py tests/convert/test_corruption_e2e.py \
		$(PYTEST_ARGS)

# lerobot 0.6.1 needs Python >= 3.12 and brings its own torch 2.11 / torchcodec 0.11: our ranges admit them. Its
# training extra (accelerate, the policies' dependencies) is what `train-lerobot`'s conformance tests run.
$(VENV312)/.installed: pyproject.toml
	@command -v ffmpeg >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
	$(PY312) -m venv $(VENV312)
	$(VENV312)/bin/pip install -q "lerobot[dataset,training]==0.6.1"
	$(VENV312)/bin/pip install -q -e ".[test]"
	touch $@

# The same code against the newest torch/torchcodec on PyPI, fast subset only. PIP_CONSTRAINT=/dev/null: no
# constraints file, ours or a machine-wide pip one (this machine's /etc/xdg/pip caps torch at what it caches).
$(VENV_LATEST)/.installed: pyproject.toml
	@command -v ffmpeg >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null; }
	$(PYTHON) -m venv $(VENV_LATEST)
	PIP_CONSTRAINT=/dev/null $(VENV_LATEST)/bin/pip install -q -e ".[test,testing]" $(LATEST_PAIR)
	touch $@

test-latest: $(VENV_LATEST)/.installed
	$(VENV_LATEST)/bin/python -m pytest -m "not conformance and not slow and not soak" $(FAST_TESTS) $(PYTEST_ARGS)

# CI frees each environment once its tests have run: the CPU one after `make test`, the newest-torch one (5.9 GB
# of CUDA wheels) before it builds lerobot's.
clean-venv:
	rm -rf $(VENV)

clean-latest:
	rm -rf $(VENV_LATEST)

conformance: $(VENV312)/.installed
	$(VENV312)/bin/python -m pytest -m conformance $(PYTEST_ARGS)

# Lint and types: ruff (check + format) over the repository, mypy over the package. The repository root is
# the package, so mypy reads it through .typecheck/lerobot_wds, a folder of links to the package's parts.
lint: install
	$(VENV)/bin/pip install -q -c constraints.txt -e ".[lint]"
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	rm -rf .typecheck && mkdir -p .typecheck/lerobot_wds
	for f in __init__.py py.typed convert core reader testing tools; do ln -s ../../$$f .typecheck/lerobot_wds/$$f; done
	cd .typecheck && MYPYPATH=. ../$(VENV)/bin/mypy -p lerobot_wds --config-file ../pyproject.toml \
		--python-executable ../$(VENV)/bin/python

clean:
	rm -rf $(VENV) $(VENV312) $(VENV_LATEST) demo_out .pytest_cache
