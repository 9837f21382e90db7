# sysbox-py: the README's commands.  Every target is idempotent: a second run reuses what the
# first installed and built, and says so.
VENV ?= $(CURDIR)/.venv
IMAGE_CACHE ?= /var/cache/sysbox-images
export VENV IMAGE_CACHE

.PHONY: demo test setup deps venv images unit bench clean

demo: setup            ## set up, then boot the demo container
	$(VENV)/bin/sysbox demo --cache $(IMAGE_CACHE)

test: setup            ## set up, then run the whole suite
	scripts/test.sh

setup: deps venv images

deps:                  ## Debian packages (apt)
	scripts/setup.sh deps

venv:                  ## .venv with the project installed (editable) and its test extras
	scripts/setup.sh venv

images:                ## local test images under $(IMAGE_CACHE)
	scripts/setup.sh images

unit: venv             ## only the fast unit tests
	$(VENV)/bin/pytest -q tests

clean:                 ## remove the venv (images stay cached)
	rm -rf $(VENV) .pytest_cache

bench: setup           ## side-by-side benchmarks, written to bench/results/ (tables and a chart)
	$(VENV)/bin/python -c 'import matplotlib' 2>/dev/null || $(VENV)/bin/pip install -q -e '.[bench]'
	$(VENV)/bin/python bench/proc_read.py
	command -v lxc-start >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lxc
	$(VENV)/bin/python bench/lifecycle.py
	$(VENV)/bin/python bench/load.py
	$(VENV)/bin/python bench/devvm.py
	$(VENV)/bin/python bench/chart.py
