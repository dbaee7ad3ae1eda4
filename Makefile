# Sluice — the one entry point. Targets a newcomer can guess:
#   make          build everything into build/
#   make run      install what is missing, build, start the local demo
#   make test     everything CI runs (unit + API tests), with a closing count
#   make bench    benchmarks (not tests)
#   make clean
# Variants: make test SANITIZE=address,undefined   (AddressSanitizer + UBSan)
#           make test WERROR=1                      (warnings are errors, as in CI)
#           make valgrind                           (unit tests under valgrind)

CC      ?= cc
BUILD   ?= build
PKGS    := lua5.4 jansson libmicrohttpd sqlite3 libcrypto hiredis libpq

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wwrite-strings
OPT     ?= -O2
CFLAGS  := -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) -Iengine \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifdef WERROR
CFLAGS  += -Werror
endif
ifdef SANITIZE
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# Objects of sluiced; every module but main is also linked into unit tests.
ENGINE_SRC := $(filter-out engine/main.c engine/sluicectl.c,$(wildcard engine/*.c))
ENGINE_OBJ := $(patsubst engine/%.c,$(BUILD)/obj/%.o,$(ENGINE_SRC)) $(BUILD)/obj/migrations.o
UNIT_SRC   := $(wildcard spec/unit/test_*.c)
UNIT_BIN   := $(patsubst spec/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRC))

.PHONY: all run test unit api ui bench clean deps valgrind FORCE

AGENT_LIBS := $(shell pkg-config --libs hiredis jansson 2>/dev/null) -lpthread

UI_VENDOR := ui/vendor/uPlot.iife.min.js ui/vendor/uPlot.min.css

all: $(BUILD)/sluiced $(BUILD)/sluicectl $(BUILD)/libsluice.a $(BUILD)/libsluice.so $(BUILD)/sluice-worker $(UNIT_BIN) \
     $(UI_VENDOR)

# The UI's chart library comes from npm at build time (ui/package-lock.json),
# never from a CDN at run time.
ui/vendor/%: ui/node_modules/uplot/dist/%
	@mkdir -p ui/vendor
	cp $< $@

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

$(BUILD)/sluiced: $(BUILD)/obj/main.o $(ENGINE_OBJ)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# sluicectl: the client for CI jobs and shells (libcurl for HTTP).
$(BUILD)/sluicectl: $(BUILD)/obj/sluicectl.o $(BUILD)/obj/util.o
	$(CC) $(LDFLAGS) $^ $(shell pkg-config --libs libcurl jansson) -o $@

# libsluice: the C worker agent, static and shared, and the reference worker.
$(BUILD)/obj/agent/%.o: agents/c/%.c agents/c/sluice.h $(BUILD)/.flags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -Iagents/c -c $< -o $@

$(BUILD)/libsluice.a: $(BUILD)/obj/agent/sluice.o
	$(AR) rcs $@ $^

$(BUILD)/libsluice.so: $(BUILD)/obj/agent/sluice.o
	$(CC) $(LDFLAGS) -shared $^ $(AGENT_LIBS) -o $@

$(BUILD)/sluice-worker: $(BUILD)/obj/agent/worker.o $(BUILD)/libsluice.a
	$(CC) $(LDFLAGS) $^ $(AGENT_LIBS) -o $@

$(BUILD)/unit/%: spec/unit/%.c spec/unit/unit.h $(ENGINE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ispec/unit $< $(ENGINE_OBJ) $(LDFLAGS) $(LDLIBS) -o $@

deps:
	@tools/deps.sh

run: deps all
	@BUILD=$(BUILD) tools/run.sh

test: deps all
	@BUILD=$(BUILD) tools/test.sh

unit: all
	@BUILD=$(BUILD) tools/test.sh unit

api: all
	@BUILD=$(BUILD) tools/test.sh api

ui: all
	@BUILD=$(BUILD) tools/test.sh ui

valgrind: all
	@BUILD=$(BUILD) VALGRIND=1 tools/test.sh unit

bench: deps all
	@SLUICE_BUILD=$(abspath $(BUILD)) node spec/bench/propagation.mjs

clean:
	rm -rf $(BUILD)
