# Sluice — the one entry point. Targets a newcomer can guess:
#   make          install what the build needs, build everything into build/
#   make run      install what is missing, build, start the local demo
#   make test     everything CI runs (unit + API + browser tests), with a count
#   make bench    benchmarks (not tests)
#   make chaos    long fault scenarios (kill -9, Redis emptied, leaders frozen)
#   make fuzz     libFuzzer targets, FUZZ_SECONDS (60) each (docs/fuzzing.md)
#   make install  PREFIX=/usr/local DESTDIR=   (programs, library, share, etc)
#   make clean
# Variants: make test SANITIZE=address,undefined   (AddressSanitizer + UBSan)
#           make test WERROR=1                      (warnings are errors, as in CI)
#           make valgrind                           (unit tests under valgrind)
# Root only, not part of make test:
#           make fresh-check                        (a fresh clone on a bare machine)
#           make image-check                        (build the image, run it, check it)
# make image builds the container image (podman, or docker).
#
# Why two levels: the compiler flags come from pkg-config, which can only
# answer once the -dev packages are installed. So every public target first
# runs tools/deps.sh (installs, or says in one line what to install), then
# re-invokes make, which reads this file again with the packages present.

VERSION := 0.2.0
CC      ?= cc
BUILD   ?= build
PREFIX  ?= /usr/local
IMAGE   ?= sluice:0.1
DESTDIR ?=
PKGS    := lua5.4 jansson libmicrohttpd sqlite3 openssl hiredis libpq libcurl

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wwrite-strings
OPT     ?= -O2
CFLAGS  := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iengine \
           -DSLUICE_VERSION='"$(VERSION)"' \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) \
           -lpthread -lm

ifdef WERROR
CFLAGS  += -Werror
endif
ifdef SANITIZE
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# Objects of sluiced; every module but main is also linked into unit tests.
ENGINE_SRC := $(filter-out engine/main.c engine/sluicectl.c,$(wildcard engine/*.c))
ENGINE_OBJ := $(patsubst engine/%.c,$(BUILD)/obj/%.o,$(ENGINE_SRC)) $(BUILD)/obj/migrations.o \
              $(BUILD)/obj/autoscale_lib_lua.o
UNIT_SRC   := $(wildcard spec/unit/test_*.c)
UNIT_BIN   := $(patsubst spec/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

PROGRAMS   := $(BUILD)/sluiced $(BUILD)/sluicectl $(BUILD)/sluice-worker
LIBS       := $(BUILD)/libsluice.a $(BUILD)/libsluice.so
AGENT_LIBS := $(shell pkg-config --libs hiredis jansson openssl libcurl 2>/dev/null) -lpthread
# libsluice carries the Redis transport (engine/rconn.c) and the wire names
# (engine/protocol.c), and exports only sluice_*.
AGENT_OBJ  := $(BUILD)/obj/agent/sluice.o $(BUILD)/obj/agent/rconn.o $(BUILD)/obj/agent/protocol.o
UI_VENDOR  := ui/vendor/uPlot.iife.min.js ui/vendor/uPlot.min.css
SUB        := $(MAKE) --no-print-directory

.PHONY: all run test unit api ui bench clean deps valgrind install fresh-check image image-check chaos fuzz \
        build bench-build check-packages FORCE

# ---- public targets ----------------------------------------------------------

all:
	@tools/deps.sh build
	@$(SUB) build

deps:
	@tools/deps.sh test

run:
	@tools/deps.sh run
	@$(SUB) build
	@BUILD=$(BUILD) tools/run.sh

test:
	@tools/deps.sh test
	@$(SUB) build
	@BUILD=$(BUILD) tools/test.sh

unit api ui:
	@tools/deps.sh test
	@$(SUB) build
	@BUILD=$(BUILD) tools/test.sh $@

valgrind:
	@tools/deps.sh test
	@$(SUB) build
	@BUILD=$(BUILD) VALGRIND=1 tools/test.sh unit

# Every figure of issue 16 in one run, with a summary table and the command
# that repeats each line (spec/bench/README.md). BENCH_STRICT=1 makes a missed
# goal fail the run; otherwise only a harness error does.
bench:
	@tools/deps.sh bench
	@$(SUB) build bench-build
	@SLUICE_BUILD=$(abspath $(BUILD)) node spec/bench/bench.mjs $(ONLY)

install:
	@tools/deps.sh build
	@$(SUB) build
	@BUILD=$(BUILD) PREFIX=$(PREFIX) DESTDIR=$(DESTDIR) tools/install.sh

fresh-check:
	@tools/fresh-check.sh

# Long fault scenarios with a summary table (not part of make test, which
# runs their short versions). Root adds the full-volume scenario.
chaos:
	@tools/deps.sh test
	@$(SUB) build
	@BUILD=$(BUILD) tools/chaos.sh

# libFuzzer targets of spec/fuzz/, FUZZ_SECONDS (60) each; not part of make test.
fuzz:
	@BUILD=$(BUILD) tools/fuzz.sh

image:
	@IMAGE=$(IMAGE) tools/image.sh

image-check:
	@IMAGE=$(IMAGE) tools/image-check.sh

clean:
	rm -rf $(BUILD) ui/vendor

# ---- the build itself (run by the targets above) ------------------------------

build: check-packages $(PROGRAMS) $(LIBS) $(UNIT_BIN) $(UI_VENDOR)

# One line, never a compiler's "lua.h: No such file", when someone runs an
# inner target on a machine without the packages.
check-packages:
	@pkg-config --exists $(PKGS) 2>/dev/null || { echo "sluice: build packages are missing; run 'make' (it installs them) or tools/deps.sh build" >&2; exit 1; }

# The UI's chart library comes from npm at build time (ui/package-lock.json),
# never from a CDN at run time.
ui/vendor/%: ui/node_modules/.package-lock.json
	@mkdir -p ui/vendor
	cp ui/node_modules/uplot/dist/$* $@

ui/node_modules/.package-lock.json: ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error

# Rebuild everything when the flags change (e.g. switching to SANITIZE), so
# build/ never mixes instrumented and plain objects.
$(BUILD)/.flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDFLAGS)' > $@

$(BUILD)/obj/%.o: engine/%.c $(wildcard engine/*.h) $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Migrations are compiled in, so the binary needs no files beside it.
$(BUILD)/gen/migrations.c: $(wildcard db/sqlite/*.sql db/postgres/*.sql) tools/embed-migrations.sh
	@mkdir -p $(dir $@)
	tools/embed-migrations.sh $@

$(BUILD)/obj/migrations.o: $(BUILD)/gen/migrations.c engine/migrations.h $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# So is the Lua prelude of the autoscaling rule helpers (engine/autoscale_lib.c).
$(BUILD)/gen/autoscale_lib_lua.c: engine/autoscale_lib.lua tools/embed-lua.sh
	@mkdir -p $(dir $@)
	tools/embed-lua.sh $< autoscale_lib_lua $@

$(BUILD)/obj/autoscale_lib_lua.o: $(BUILD)/gen/autoscale_lib_lua.c $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/sluiced: $(BUILD)/obj/main.o $(ENGINE_OBJ)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# sluicectl: the client for CI jobs and shells (libcurl for HTTP).
$(BUILD)/sluicectl: $(BUILD)/obj/sluicectl.o $(BUILD)/obj/util.o $(BUILD)/obj/protocol.o $(BUILD)/obj/redact.o
	$(CC) $(LDFLAGS) $^ $(shell pkg-config --libs libcurl jansson libpq 2>/dev/null) -o $@

# libsluice: the C worker agent, static and shared, and the reference worker.
$(BUILD)/obj/agent/%.o: agents/c/%.c agents/c/sluice.h engine/rconn.h engine/protocol.h $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -Iagents/c -c $< -o $@

$(BUILD)/obj/agent/rconn.o: engine/rconn.c engine/rconn.h $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(BUILD)/obj/agent/protocol.o: engine/protocol.c engine/protocol.h $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(BUILD)/libsluice.a: $(AGENT_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/libsluice.so: $(AGENT_OBJ) agents/c/libsluice.map
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libsluice.so.0 -Wl,--version-script=agents/c/libsluice.map \
	    $(AGENT_OBJ) $(AGENT_LIBS) -o $@

$(BUILD)/sluice-worker: $(BUILD)/obj/agent/worker.o $(BUILD)/libsluice.a
	$(CC) $(LDFLAGS) $^ $(AGENT_LIBS) -o $@

$(BUILD)/unit/%: spec/unit/%.c spec/unit/unit.h $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispec/unit $< $(ENGINE_OBJ) $(LDFLAGS) $(LDLIBS) -o $@

# ---- benchmark programs (make bench) --------------------------------------------

# bare: the yardstick libmicrohttpd server; fleet_sim: simulated workers on
# hiredis + libevent; writes: PUT latency with open event streams. ingest
# (report parsing and ingest in-process) is built when its source is there.
BENCH_LIBS := $(shell pkg-config --libs hiredis jansson libevent libmicrohttpd 2>/dev/null)
BENCH_BIN  := $(BUILD)/bench/bare $(BUILD)/bench/fleet_sim $(BUILD)/bench/writes \
              $(if $(wildcard spec/bench/ingest.c),$(BUILD)/bench/ingest)

bench-build: $(BENCH_BIN)

$(BUILD)/bench/bare: spec/bench/bare.c $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LDFLAGS) $(BENCH_LIBS) -o $@

$(BUILD)/bench/%: spec/bench/%.c spec/bench/bench.c spec/bench/bench.h $(BUILD)/obj/protocol.o $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispec/bench $< spec/bench/bench.c $(BUILD)/obj/protocol.o $(LDFLAGS) $(BENCH_LIBS) -o $@

$(BUILD)/bench/ingest: spec/bench/ingest.c $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispec/bench $< $(ENGINE_OBJ) $(LDFLAGS) $(LDLIBS) -o $@
