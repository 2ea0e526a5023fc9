# Everyday commands.  `make demo` and `make test` work on a fresh machine
# (Debian 12, Python 3.10+ with pip): they install what they need themselves.
#
#   make demo      build, install, run examples/test_demo.py against the simulator
#   make test      install the test dependencies (qemu-system-x86 too), run the whole suite on
#                  the simulator, the conformance suites on QEMU, the API tests on uvloop, then
#                  the guest suites
#   make test-guest  the guest suites (tests/guest/suite.py): a throw-away QEMU guest running
#                  Debian's kernel (downloaded into build/guest/), vfio-pci and nvme.ko as peers
#   make compile   build the native core and install aionvme in place (pip install -e .)
#   make debug     the same with AIONVME_DEBUG=1 (-O0, the invariant checks of debug.h)
#   make test-debug  the suite on a debug build, then the normal build back (CI runs it)
#   make test-wheel  the package as a user has it: a wheel in a new venv, examples/test_demo.py
#                  run from a folder outside the repository (make test runs it)
#   make bench     benchmarks/bench_qd.py and bench_qemu.py, JSON into bench-results/
#   make bench-guest  ioworkers on vfio and kernel passthrough inside the test guest
#   make docs      the documentation site into site/ (mkdocs build --strict)
#   make lint      ruff check
#   make clean     remove build products

PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=
# Debian packages the test suite needs besides the build tools: QEMU's NVMe
# controller is the conformance suites' second device (the qemu backend); clang
# (with its libFuzzer runtime) builds the data path's fuzzer (tests/test_fuzz.py).
# The guest suites (tests/guest/) boot QEMU too, run mkfs.ext4 from the host's root
# inside the guest, and fetch Debian's kernel and busybox-static with apt-get download.
APT_PACKAGES ?= qemu-system-x86 clang e2fsprogs
# The spec-behaviour suites, run once per device (--pciaddr sim, then qemu).
CONFORMANCE = $(sort $(wildcard tests/test_conf_*.py)) tests/test_qemu.py tests/test_api.py \
	tests/test_verify.py tests/test_verify_integrity.py

# Debian's own python3 is "externally managed" (PEP 668); these commands install into
# whichever interpreter PYTHON names, as asked.  Nothing here may wait for input.
export PIP_BREAK_SYSTEM_PACKAGES = 1
export PIP_DISABLE_PIP_VERSION_CHECK = 1
export DEBIAN_FRONTEND = noninteractive
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

BUILD_DEPS = "setuptools>=65" wheel "Cython==3.3.1" "pytest>=7" "pytest-asyncio>=1.1"
TEST_DEPS = "uvloop>=0.19" "mkdocs-material>=9" "mkdocstrings[python]>=0.24" "rich>=13" "ruff>=0.4" "matplotlib>=3.5" "mypy>=1.8"
CHECKED = aionvme tests benchmarks examples

.PHONY: all build-tools deps compile debug test-debug test-deps system-deps test test-guest test-fast \
	test-wheel demo bench bench-guest docs lint clean

all: compile

# A C compiler and the Python headers, from apt only when they are missing.
build-tools:
	@missing=""; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	$(PYTHON) -c "import os, sys, sysconfig; \
	    sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))" \
	    || missing="$$missing python3-dev"; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

deps: build-tools
	$(PIP) install -q $(BUILD_DEPS)

compile: deps
	$(PIP) install -q --no-build-isolation -e .

debug: deps
	AIONVME_DEBUG=1 $(PIP) install -q --no-build-isolation -e .

# The suite once more on a debug build (the invariant checks of ext/include/aionvme/debug.h
# compiled in), then the normal build back in place.
test-debug: test-deps
	@rc=0; \
	AIONVME_DEBUG=1 $(PIP) install -q --no-build-isolation -e . && \
	$(PYTHON) -m pytest -q $(PYTEST_ARGS) tests || rc=$$?; \
	$(PIP) install -q --no-build-isolation -e . || { [ $$rc -ne 0 ] || rc=1; }; \
	exit $$rc

# Debian packages of APT_PACKAGES not installed yet.  A failure here does not
# stop the run: the qemu pass then says why it cannot run.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing \
	        || echo "could not install$$missing: the tests that need them will skip"; \
	fi

test-deps: compile system-deps
	$(PIP) install -q $(TEST_DEPS)
	@$(PIP) install -q "atheris>=2.3" \
	    || echo "could not install atheris: the admin-plane fuzzer (tests/test_fuzz.py) will skip"

# Every run always happens; the first failing exit status is make's answer.
test: test-deps
	@rc=0; \
	$(PYTHON) -m pytest $(PYTEST_ARGS) tests examples || rc=$$?; \
	why=$$($(PYTHON) -c "from aionvme.backends.qemu import available; print(available() or '')"); \
	if [ -z "$$why" ]; then \
	    $(PYTHON) -m pytest --pciaddr qemu -q $(PYTEST_ARGS) $(CONFORMANCE) || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	else echo "SKIPPED the qemu pass: $$why"; fi; \
	$(PYTHON) -m pytest --loop uvloop -q $(PYTEST_ARGS) tests/test_api.py || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	$(MAKE) --no-print-directory test-wheel || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	$(GUEST_SUITES) || { r=$$?; [ $$rc -ne 0 ] || rc=$$r; }; \
	exit $$rc

# Skips, saying why, where QEMU or Debian's kernel package cannot be had.
# AIONVME_GUEST_CACHE (default build/guest) holds the downloads between runs.
GUEST_SUITES = $(PYTHON) tests/guest/suite.py $(GUEST_ARGS)

test-guest: test-deps
	$(GUEST_SUITES)

# The installed package, not this checkout: build a wheel, install it in a new venv
# (its dependencies from PyPI), and run the demo suite from an empty folder outside
# the repository with no pytest configuration of its own.
WHEEL_DIR = build/wheel
test-wheel: deps
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)
	$(PIP) wheel -q --no-deps --no-build-isolation -w $(WHEEL_DIR)/dist .
	$(PYTHON) -m venv $(WHEEL_DIR)/venv
	$(WHEEL_DIR)/venv/bin/python -m pip install -q $(WHEEL_DIR)/dist/aionvme-*.whl
	@d=$$(mktemp -d /tmp/aionvme-user-XXXXXX) && cp examples/test_demo.py $$d/ && \
	cd $$d && $(CURDIR)/$(WHEEL_DIR)/venv/bin/python -m pytest -q -p no:cacheprovider test_demo.py; \
	rc=$$?; rm -rf $$d; exit $$rc

test-fast:
	$(PYTHON) -m pytest -x -q $(PYTEST_ARGS) tests

demo: compile
	$(PYTHON) -m pytest -s -q examples/test_demo.py

# The machine's ceiling (../shared/tools/limit/ring.c) links ISA-L.
bench: test-deps
	@$(MAKE) --no-print-directory system-deps APT_PACKAGES="libisal-dev"
	$(PYTHON) benchmarks/bench_qd.py --json bench-results/bench_qd.json
	$(PYTHON) benchmarks/bench_qemu.py --json bench-results/bench_qemu.json
	$(PYTHON) benchmarks/bench_ioworker.py --json bench-results/bench_ioworker.json

# ioworker 4K randread/randwrite QD64 on vfio and on kernel passthrough, in the test guest
# (QEMU's controller under TCG: correctness figures, not speed), JSON into bench-results/.
bench-guest: test-deps
	@mkdir -p bench-results
	$(PYTHON) tests/guest/guest.py run --vfio 1 --env AIONVME_ARENA_MB=128 --timeout 900 \
	    --log bench-results/bench_vfio_guest.log -- $(PYTHON) benchmarks/bench_device.py \
	    --pciaddr 0000:00:04.0 --time 2 --qd1 500 > bench-results/bench_vfio_guest.json
	$(PYTHON) tests/guest/guest.py run --kernel 1 --timeout 900 \
	    --log bench-results/bench_kernel_guest.log -- $(PYTHON) benchmarks/bench_device.py \
	    --pciaddr /dev/nvme0 --time 2 --qd1 500 > bench-results/bench_kernel_guest.json

docs: test-deps
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

lint:
	$(PIP) install -q "ruff>=0.4"
	$(PYTHON) -m ruff check $(CHECKED)

clean:
	rm -rf build dist *.egg-info site bench-results ext/aionvme/*.c ext/aionvme/*.html aionvme/*.so
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
