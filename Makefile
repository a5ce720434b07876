# borne: two commands set everything up on a fresh clone.
#   make sim    run the charger simulation (agent under the MicroPython unix port + dev CSMS)
#   make test   run every test (host, system, and on-target tests inside the unix port)
# Everything lands in .venv/ and build/; a second run reuses them.

PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MPLIB := build/mplib/umqtt/simple.py
SIM_ARGS ?=
# The browser the claim page test drives (tests/test_claim_page.py): Debian's chromium, installed
# by `make test` when missing. Overridable to check the rule, or to use another Chromium.
CHROMIUM ?= /usr/bin/chromium
APT_GET ?= apt-get
# The MQTT broker the MQTT tests start per test (tests/mqttpeer.py): Debian's mosquitto,
# installed by `make test` when missing, the same way.
MOSQUITTO ?= /usr/sbin/mosquitto
# A second CSMS on another stack for the interoperability test (tests/test_interop_node.py):
# ocpp-rpc on Node.js, pinned by tests/interop/package-lock.json, installed into build/interop
# by npm (Debian's npm, installed by `make test` when missing, the same way).
NPM ?= /usr/bin/npm
NODE_PEER := build/interop/node_modules/ocpp-rpc/package.json

.PHONY: setup sim test bench frozen chaos lint lock clean

setup: $(STAMP) $(MPLIB)

$(STAMP): requirements.lock pyproject.toml
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "borne needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# MicroPython libraries the unix port lacks, fetched by name from the package index, hash-pinned.
$(MPLIB): $(STAMP) host_tools/borne/mplib.py
	$(BIN)/borne mplib --dest build/mplib

sim: setup
	$(BIN)/borne sim $(SIM_ARGS)

test: setup $(CHROMIUM) $(MOSQUITTO) $(NODE_PEER)
	$(BIN)/ruff check host_tools tests
	BORNE_CHROMIUM=$(CHROMIUM) BORNE_MOSQUITTO=$(MOSQUITTO) BORNE_NODE_PEER=build/interop \
	  $(BIN)/python -m pytest

# Debian packages the tests need, installed once: a second run finds the file and does nothing.
# As root, or through `sudo -n`. If one cannot be installed, this says why and the run goes on:
# every other test runs, and the tests that need it fail naming it (so `make test` fails too).
# $(call apt_install,PACKAGE,VARIABLE,WHAT NEEDS IT)
define apt_install
	-@if [ "$$(id -u)" = 0 ]; then sudo=; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; \
	else echo "make: $@ is missing and this user can neither apt-get install it nor sudo -n:" \
	  "install Debian's $(1) (apt-get install $(1)), or run make test $(2)=/path/to/$(1)" >&2; \
	  exit 1; fi; \
	echo "installing Debian's $(1) for $(3)"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive $(APT_GET) update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -q --no-install-recommends $(1) \
	  || { echo "make: apt-get could not install $(1) (see above): $(3) needs it" >&2; exit 1; }; \
	test -x $@ || { echo "make: $(1) was installed but $@ is still missing:" \
	  "set $(2)=/path/to/$(1)" >&2; exit 1; }
endef

$(CHROMIUM):
	$(call apt_install,chromium,CHROMIUM,the claim page test (tests/test_claim_page.py))

$(MOSQUITTO):
	$(call apt_install,mosquitto,MOSQUITTO,the MQTT tests (tests/test_mqtt*.py))

$(NPM):
	$(call apt_install,npm,NPM,the interoperability test (tests/test_interop_node.py))

# A failed install says why and the run goes on: the interoperability test then fails naming it.
$(NODE_PEER): tests/interop/package.json tests/interop/package-lock.json | $(NPM)
	-mkdir -p build/interop && cp tests/interop/package.json tests/interop/package-lock.json build/interop/ \
	  && cd build/interop && $(NPM) ci --no-audit --no-fund --quiet && touch node_modules/ocpp-rpc/package.json

bench: setup $(MOSQUITTO)
	BORNE_MOSQUITTO=$(MOSQUITTO) \
	  BORNE_FROZEN_MICROPYTHON=$${BORNE_FROZEN_MICROPYTHON:-$(wildcard $(CURDIR)/$(FROZEN))} \
	  $(BIN)/borne bench

# A unix port with the application frozen in, as a charger's image holds it, for the bench's
# frozen figures (`make bench` then measures it): from a MicroPython v1.28.0 checkout with its
# submodules (MICROPYTHON_SRC), built 32-bit (an ESP32's word size: gcc-multilib) with
# boards/micropython/'s patch, which is applied to the checkout unless it already is.
# FROZEN_PATCH=no builds stock MicroPython's figures instead (on an unpatched checkout).
MICROPYTHON_SRC ?=
FROZEN_PATCH ?= yes
FROZEN := build/frozen/micropython-borne
PATCH := $(CURDIR)/boards/micropython/frozen-static-functions.patch
frozen:
	@test -n "$(MICROPYTHON_SRC)" || { echo "make frozen MICROPYTHON_SRC=/path/to/micropython \
	(a v1.28.0 checkout with its submodules)"; exit 1; }
	@if [ "$(FROZEN_PATCH)" = yes ]; then cd $(MICROPYTHON_SRC) && \
	  (git apply --reverse --check $(PATCH) 2>/dev/null || git apply $(PATCH)); fi
	$(MAKE) -C $(MICROPYTHON_SRC)/mpy-cross
	$(MAKE) -C $(MICROPYTHON_SRC)/ports/unix MICROPY_FORCE_32BIT=1 MICROPY_PY_FFI=0 \
	  MICROPY_PY_BTREE=0 MPY_CROSS_FLAGS=-march=x86 BUILD=$(CURDIR)/build/frozen/port \
	  PROG=micropython-borne USER_C_MODULES=$(CURDIR)/boards/unix_sim/cmodules \
	  FROZEN_MANIFEST=$(CURDIR)/boards/unix_sim/manifest.py
	mkdir -p build/frozen && cp build/frozen/port/micropython-borne $(FROZEN)
	@echo "built $(FROZEN): \`make bench\` measures it; \`borne sim --frozen $(FROZEN)\` runs it"

# The full reliability campaign (issue 11): power cuts, network cuts, mutated CSMS frames, hostile
# hotspot requests, serial noise, connector property sequences, a soak. Figures printed; exits
# non-zero on any violation. CHAOS_ARGS e.g. --only power,net --seed 7. `make test` runs a slice.
CHAOS_ARGS ?=
chaos: setup
	$(BIN)/borne chaos $(CHAOS_ARGS)

lint: setup
	$(BIN)/ruff check host_tools tests

lock:
	rm -rf build/lockvenv && $(PY) -m venv build/lockvenv
	build/lockvenv/bin/pip install --quiet -r requirements.in
	{ echo "# Generated by 'make lock' from requirements.in: every host package, transitive ones included, pinned."; \
	  build/lockvenv/bin/pip freeze; \
	  echo "setuptools==84.2.1"; echo "wheel==0.48.0"; } > requirements.lock

clean:
	rm -rf $(VENV) build .pytest_cache
