# voicebridge — one non-recursive Makefile.
#   make            build/voicebridge and build/libvoicebridge.a
#   make test       deps, build, unit tests, sanitizer passes; ends with "N passed, N failed"
#   make bench      DSP micro-benchmarks, then the load runs (tests/load/) -> build/bench.json
#   make fuzz       libFuzzer targets, each run for FUZZ_SECONDS
#   make deps       install missing Debian packages (apt-get when root)
#   SAN=address,undefined or SAN=thread builds into build/san-<name>/.

CC       ?= cc
SAN      ?=
ifeq ($(SAN),)
B        ?= build
else
B        ?= build/san-$(subst $(comma),-,$(SAN))
endif
comma    := ,

LLHTTP_SRC_DIR := /usr/share/llhttp
LLHTTP_INC_DIR := /usr/share/include/llhttp

OPT      ?= -O2
CPPFLAGS += -D_GNU_SOURCE -I. -I$(LLHTTP_INC_DIR)
CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Werror -MMD -MP -pthread
LDLIBS   += -luv -lmbedtls -lmbedx509 -lmbedcrypto -lhiredis -ljansson -lm -pthread
ifneq ($(SAN),)
CFLAGS   += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=$(SAN)
endif
ifneq ($(FUZZ),)
CFLAGS   += -fsanitize=fuzzer-no-link
endif

# Our code: every .c of a layer folder, except the program entry point.
LIB_SRC  := $(sort $(wildcard common/*.c dsp/*.c worker/*.c master/*.c))
MAIN_SRC := master/main.c
LIB_SRC  := $(filter-out $(MAIN_SRC),$(LIB_SRC))
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
LLHTTP_OBJ := $(addprefix $(B)/llhttp/,api.o http.o llhttp.o)
LIB      := $(B)/libvoicebridge.a
BIN      := $(B)/voicebridge

# Helpers shared by the unit tests and the benchmarks (signal measurement and the like).
TESTLIB_SRC := $(sort $(wildcard tests/lib/*.c))
TESTLIB_OBJ := $(TESTLIB_SRC:%.c=$(B)/%.o)

UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/%.o) $(TESTLIB_OBJ)
UNIT_BIN := $(B)/tests/unit-tests

BENCH_SRC := $(sort $(wildcard tests/bench/*.c))
BENCH_OBJ := $(BENCH_SRC:%.c=$(B)/%.o) $(TESTLIB_OBJ)
BENCH_BIN := $(B)/bench/bench-dsp

# The load generator behind `make bench` (tests/load/run-bench drives it).
LOAD_SRC := $(sort $(wildcard tests/load/*.c))
LOAD_OBJ := $(LOAD_SRC:%.c=$(B)/%.o) $(TESTLIB_OBJ)
LOAD_BIN := $(B)/load/loadgen

# The kernel's floor under any bridge: a relay that only reads and writes (tests/floor/).
FLOOR_BIN := $(B)/load/relay-floor

FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz-*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 20

.PHONY: all deps test unit bench fuzz fuzz-build demo clean format
all: $(BIN) $(LIB)

# Kernels written for a CPU feature are compiled for it; the dispatcher picks them at run time.
$(B)/%_avx2.o: EXTRA_CFLAGS = -mavx2 -mfma

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(EXTRA_CFLAGS) -c $< -o $@

# llhttp is built from the Debian package's sources, never copied into the tree.
$(B)/llhttp/%.o: $(LLHTTP_SRC_DIR)/%.c
	@mkdir -p $(dir $@)
	$(CC) -I$(LLHTTP_INC_DIR) $(OPT) -g -w $(if $(SAN),-fsanitize=$(SAN)) $(if $(FUZZ),-fsanitize=fuzzer-no-link) -c $< -o $@

$(LIB): $(LIB_OBJ) $(LLHTTP_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN): $(B)/$(MAIN_SRC:.c=.o) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(UNIT_BIN): $(UNIT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BENCH_BIN): $(BENCH_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -lsoxr -lspeexdsp -lwslay -o $@

$(LOAD_BIN): $(LOAD_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(FLOOR_BIN): $(B)/tests/floor/relay-floor.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -pthread -o $@

unit: $(UNIT_BIN) $(BIN) $(FLOOR_BIN)

deps:
	@tests/deps.sh

test: deps
	@tests/run-all.sh

bench: deps
	@$(MAKE) --no-print-directory $(BENCH_BIN) $(BIN) $(LOAD_BIN) $(FLOOR_BIN)
	@$(BENCH_BIN) build/bench.json
	@tests/load/run-bench build/bench.json

# Fuzz targets are built by clang with libFuzzer in their own folder.
fuzz: deps
	@$(MAKE) --no-print-directory CC=clang B=build/fuzz-obj SAN=address,undefined FUZZ=1 fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BIN)

fuzz-build: $(FUZZ_BIN)
build/fuzz/%: tests/fuzz/%.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -std=c11 -O1 -g -fsanitize=fuzzer,$(SAN) $< $(LIB) $(LDLIBS) -o $@

demo: deps
	@$(MAKE) --no-print-directory all
	@tests/demo.sh

format:
	clang-format -i $(LIB_SRC) $(MAIN_SRC) $(wildcard */*.h tests/*/*.c tests/*/*.h)

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(sort $(UNIT_OBJ:.o=.d) $(BENCH_OBJ:.o=.d) $(LOAD_OBJ:.o=.d)) $(B)/tests/floor/relay-floor.d $(B)/master/main.d
