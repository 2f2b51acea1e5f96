# dmpflow build. `make V=1` shows the commands.
#
#   make              build/dmpflow
#   make deps         install the Debian and Python packages (idempotent)
#   make test         deps, build, unit tests, then integration tests against
#                     a real Kafka broker this target starts and stops
#   make test-unit / make test-integration
#   make peer-jar     the Kafka Streams peer's jar (Maven; test-integration needs it)
#   make asan         the test suite under ASan + UBSan (asan-full: all of it)
#   make soak         15 min on demand: 20 kills, 5 broker bounces, 1 % poison,
#                     one summary line (SOAK_SECONDS, SOAK_KILLS, SOAK_BOUNCES)
#   make demo         the pipeline on an embedded Kafka, no broker needed, and its
#                     live page on http://127.0.0.1:8464/ (DEMO_SECONDS=0: until Ctrl-C)
#   make bench        all benchmarks: in-process windows and decode, then end to
#                     end vs Kafka Streams and Quix Streams on a real broker
#                     (10 M events; bench/RESULTS.md)
#   make bench-quick  the end-to-end part, reduced (< 3 min once bench/prepare has run)
#   make bench-windows / bench-decode   the in-process parts alone
#   make bench-nexmark Nexmark Q5 / Q7 end to end (NEXMARK_EVENTS bids)
#   make fuzz         every libFuzzer target (clang), FUZZ_SECONDS (30) each
#   make fuzz-long    the fuzzing campaign: FUZZ_CPU_SECONDS (3600) of CPU per target
#   make screenshot   docs/live-page.png, the README's picture of the live page

CC      ?= gcc
PKGS    := rdkafka avro-c rocksdb inih jansson libcurl libmicrohttpd
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wno-unused-parameter
OPT     ?= -O2 -g
CFLAGS  += $(CSTD) $(WARN) $(OPT) -Iinclude -Isrc -MMD -MP
LDLIBS  += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -lrdkafka -lavro -lrocksdb -linih -ljansson -lcurl -lmicrohttpd) -lpthread -lm
BUILD   ?= build
# The daemon's allocator is jemalloc, as in Redis: glibc's malloc serialises
# the processing thread's frees of what librdkafka's broker thread allocated
# (docs/PERFORMANCE.md "Measurements behind the code"). Sanitizer builds use
# their own allocator (MALLOC_LIB=); unit tests keep glibc's. valgrind on
# build/dmpflow sees jemalloc's allocations only with
# --soname-synonyms=somalloc=*jemalloc*.
MALLOC_LIB ?= $(shell pkg-config --libs jemalloc 2>/dev/null || echo -ljemalloc)

LIB_SRCS := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/schemas.o $(BUILD)/obj/gen/web.o
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
# The daemon suites first: they run longest, mostly waiting on the mock
# cluster (scripts/run-unit-tests runs the suites side by side)
UNIT_SLOW := $(BUILD)/tests/test_daemon $(BUILD)/tests/test_daemon_txn
UNIT_BINS := $(UNIT_SLOW) $(filter-out $(UNIT_SLOW),$(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%))
# Helpers shared by unit tests, fuzz targets and benchmarks (tests/support/).
SUPPORT_SRCS := $(wildcard tests/support/*.c)
SUPPORT_OBJS := $(SUPPORT_SRCS:tests/support/%.c=$(BUILD)/obj/support/%.o)
.SECONDARY: $(SUPPORT_OBJS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all deps test test-unit test-integration peer-jar asan asan-full soak demo bench bench-quick bench-windows clean docs fuzz fuzz-build fuzz-long fuzz-merge fuzz-seeds bench-decode bench-nexmark screenshot

all: $(BUILD)/dmpflow

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The output schemas built in (src/schemas.h), generated from schemas/ so
# that the file stays the one source of truth.
# Each schemas/NAME.avsc becomes `const char dmp_schema_NAME[]`.
OUTPUT_SCHEMAS := schemas/window_result.avsc schemas/group_result.avsc schemas/pattern.avsc
$(BUILD)/gen/schemas.c: $(OUTPUT_SCHEMAS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q){ echo '#include "schemas.h"'; for f in $(OUTPUT_SCHEMAS); do \
	      echo "const char dmp_schema_$$(basename $$f .avsc)[] ="; \
	      sed 's/\\/\\\\/g; s/"/\\"/g; s/^/        "/; s/$$/\\n"/' $$f; echo ';'; done; } > $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -c $< -o $@

# The live page (src/web.h): each file of src/web/ becomes
# `const char dmp_web_NAME_EXT[]` and its length, so that the binary serves
# it with nothing else installed. `?` is escaped: C11 mode reads trigraphs.
WEB_FILES := src/web/index.html src/web/dmpflow.js src/web/dmpflow.css
$(BUILD)/gen/web.c: $(WEB_FILES)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q){ echo '#include "web.h"'; for f in $(WEB_FILES); do \
	      n=dmp_web_$$(basename $$f | tr . _); echo "const char $$n[] ="; \
	      sed 's/\\/\\\\/g; s/"/\\"/g; s/?/\\?/g; s/^/        "/; s/$$/\\n"/' $$f; echo ';'; \
	      echo "const size_t $${n}_len = sizeof($$n) - 1;"; done; } > $@

$(BUILD)/libdmpflow.a: $(LIB_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)ar rcs $@ $^

$(BUILD)/dmpflow: $(BUILD)/obj/main.o $(BUILD)/libdmpflow.a
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS) $(MALLOC_LIB)

$(BUILD)/obj/support/%.o: tests/support/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests/support -c $< -o $@

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libdmpflow.a $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests/support $< -o $@ $(UNIT_EXTRA) $(SUPPORT_OBJS) $(BUILD)/libdmpflow.a $(LDLIBS) -lcmocka

# The daemon on the mock cluster (tests/unit/daemon_mock.h), shared by the
# two suites that drive it: split so that they run side by side.
DAEMON_MOCK_OBJ := $(BUILD)/obj/unit/daemon_mock.o
$(DAEMON_MOCK_OBJ): tests/unit/daemon_mock.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests/support -c $< -o $@
$(BUILD)/tests/test_daemon $(BUILD)/tests/test_daemon_txn: $(DAEMON_MOCK_OBJ)
$(BUILD)/tests/test_daemon $(BUILD)/tests/test_daemon_txn: UNIT_EXTRA := $(DAEMON_MOCK_OBJ)

# libFuzzer targets (tests/fuzz/fuzz_*.c, docs/FUZZING.md); built by `make fuzz`
# with clang and the sanitizers. The same files without their entry points
# go into the unit test that replays the regression inputs.
FUZZ_TARGETS := decode schema registry config http state
FUZZ_NOENTRY_OBJS := $(FUZZ_TARGETS:%=$(BUILD)/obj/fuzz/fuzz_%.o)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libdmpflow.a $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer -Itests/support -Itests/fuzz $< -o $@ $(SUPPORT_OBJS) $(BUILD)/libdmpflow.a $(LDLIBS)

$(BUILD)/obj/fuzz/fuzz_%.o: tests/fuzz/fuzz_%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -DFUZZ_NO_ENTRY -Itests/support -Itests/fuzz -c $< -o $@

$(BUILD)/tests/test_fuzz_regress: tests/unit/test_fuzz_regress.c $(FUZZ_NOENTRY_OBJS) $(BUILD)/libdmpflow.a $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests/support -Itests/fuzz $< -o $@ $(FUZZ_NOENTRY_OBJS) $(SUPPORT_OBJS) $(BUILD)/libdmpflow.a $(LDLIBS) -lcmocka

$(BUILD)/fuzz/make_seeds: tests/fuzz/make_seeds.c $(BUILD)/libdmpflow.a $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests/support -Itests/fuzz $< -o $@ $(SUPPORT_OBJS) $(BUILD)/libdmpflow.a $(LDLIBS)

$(BUILD)/bench/decode_bench: bench/decode_bench.c $(BUILD)/libdmpflow.a $(SUPPORT_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) -Itests/support $< -o $@ $(SUPPORT_OBJS) $(BUILD)/libdmpflow.a $(LDLIBS) $(MALLOC_LIB)

# Producer cost per message by librdkafka API (docs/PERFORMANCE.md); run
# it against a broker: build/bench/produce_bench BROKERS TOPIC [N].
$(BUILD)/bench/produce_bench: bench/produce_bench.c $(BUILD)/libdmpflow.a
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libdmpflow.a $(LDLIBS) $(MALLOC_LIB)

deps:
	$(Q)scripts/deps

test-unit: $(BUILD)/dmpflow $(UNIT_BINS)
	$(Q)scripts/run-unit-tests $(UNIT_BINS)

# The Kafka Streams peer (bench/peers/kstreams), one runnable jar, built with
# Maven from Maven Central: the benchmark's peer and the other side of
# tests/integration/test_kstreams_equivalence.py. Rebuilt when its sources
# change; Maven's output goes to a log (Debian's Maven prints colour codes).
KSTREAMS_JAR := bench/peers/kstreams/target/kstreams-bench.jar
$(KSTREAMS_JAR): bench/peers/kstreams/pom.xml $(shell find bench/peers/kstreams/src -type f)
	@$(if $(Q),echo "  MVN     $@")
	$(Q)mvn -q -B -f bench/peers/kstreams/pom.xml package </dev/null \
		>bench/peers/kstreams/mvn.log 2>&1 || { tail -n 40 bench/peers/kstreams/mvn.log; exit 1; }
	$(Q)touch $@

peer-jar: $(KSTREAMS_JAR)

test-integration: $(BUILD)/dmpflow $(KSTREAMS_JAR)
	$(Q)DMPFLOW_BIN=$(abspath $(BUILD)/dmpflow) scripts/run-integration-tests

test: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(MAKE) --no-print-directory test-unit
	$(Q)$(MAKE) --no-print-directory test-integration

# The suite under AddressSanitizer + UndefinedBehaviorSanitizer, in a
# separate build directory: every unit suite, and the integration tests but
# ASAN_SKIP, whose cost is waiting (broker bounces, kill -9 loops), a peer
# (Kafka Streams), a browser or the docs, not more C paths; `make asan-full`
# runs every test, as CI did until it passed 40 minutes.
ASAN_OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_SKIP ?= test_broker_bounce test_crash test_kstreams_equivalence test_memory \
	test_page test_demo test_gen test_deploy test_docs
ASAN_ENV := DMPFLOW_SANITIZED=1 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0
asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan MALLOC_LIB= OPT="$(ASAN_OPT)" build-asan/dmpflow
	$(Q)$(ASAN_ENV) PYTEST_ARGS="$(foreach t,$(ASAN_SKIP),--ignore=tests/integration/$(t).py)" \
		$(MAKE) --no-print-directory BUILD=build-asan MALLOC_LIB= OPT="$(ASAN_OPT)" \
		test-unit test-integration

asan-full:
	$(Q)$(MAKE) --no-print-directory ASAN_SKIP= asan

# The soak (tests/integration/soak.py): on a broker of its own, never in CI.
soak: $(BUILD)/dmpflow
	$(Q)DMPFLOW_BIN=$(abspath $(BUILD)/dmpflow) python3 tests/integration/soak.py

# Every libFuzzer target under ASan + UBSan (clang), FUZZ_SECONDS (30) each,
# on its kept corpus tests/fuzz/corpus/<target> with its dictionary
# tests/fuzz/dict/<target>.dict (scripts/fuzz; docs/FUZZING.md); new inputs
# go to build-fuzz/corpus/<target>, crashes to build-fuzz/crash/<target>/.
# FUZZ=... picks targets. fuzz-long is the campaign: each target until it
# has had FUZZ_CPU_SECONDS (3600) of CPU, one at a time under nice -n 19,
# resumable (its figures in build-fuzz/long/); fuzz-merge minimizes what
# the campaign found into the kept corpora (size-capped).
FUZZ_SECONDS ?= 30
FUZZ_CPU_SECONDS ?= 3600
FUZZ ?= $(FUZZ_TARGETS)
FUZZ_OPT := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
	-fno-sanitize-recover=undefined -fsanitize=fuzzer-no-link
fuzz-build:
	$(Q)$(MAKE) --no-print-directory CC=clang BUILD=build-fuzz MALLOC_LIB= OPT="$(FUZZ_OPT)" \
		$(FUZZ:%=build-fuzz/fuzz/fuzz_%)

fuzz: fuzz-build
	$(Q)scripts/fuzz run --seconds $(FUZZ_SECONDS) $(FUZZ)

fuzz-long: fuzz-build
	$(Q)scripts/fuzz long --cpu-seconds $(FUZZ_CPU_SECONDS) $(FUZZ)

fuzz-merge: fuzz-build
	$(Q)scripts/fuzz merge $(FUZZ)

# The seeds of every target (tests/fuzz/make_seeds.c), from the test data;
# `make fuzz-merge` folds them into the kept corpora.
fuzz-seeds: $(BUILD)/fuzz/make_seeds
	$(Q)rm -rf tests/fuzz/seeds
	$(Q)$(BUILD)/fuzz/make_seeds tests/fuzz/seeds

# Installs the build dependencies, builds and runs the demo (DEMO_SECONDS=20;
# 0: until Ctrl-C), which prints the URL of its live page.
DEMO_SECONDS ?= 20
demo:
	$(Q)scripts/deps --build-only
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(BUILD)/dmpflow demo --seconds $(DEMO_SECONDS)

# In-process cost of window assignment and update; BENCH_EVENTS events per
# configuration.
BENCH_EVENTS ?= 3000000
$(BUILD)/bench_windows: bench/bench_windows.c $(BUILD)/libdmpflow.a
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $< -o $@ $(BUILD)/libdmpflow.a $(LDLIBS) $(MALLOC_LIB)

bench-windows: $(BUILD)/bench_windows
	$(Q)mkdir -p bench/results
	$(Q)$(BUILD)/bench_windows bench/results/windows.json $(BENCH_EVENTS)

# Decode ns/record: the compiled plan vs Avro C's generic reader.
bench-decode: $(BUILD)/bench/decode_bench
	$(Q)$(BUILD)/bench/decode_bench $(BENCH_RECORDS)

# Benchmarks (bench/run.py): bench/prepare makes the Python virtualenv and the
# Kafka Streams jar and prints the Python to use. A broker is started with
# scripts/kafka-local unless one runs (KAFKA_* as for scripts/kafka-local).
# BENCH_ARGS adds options, e.g. BENCH_ARGS="--engines dmpflow,kstreams".
BENCH_ARGS ?=
bench: all bench-windows bench-decode
	$(Q)py=$$(bench/prepare) && BENCH_COMMAND="make bench" \
		$$py bench/run.py --events 10000000 $(BENCH_ARGS)
	$(Q)$(MAKE) --no-print-directory bench-nexmark

# Nexmark Q5 and Q7 (bench/nexmark.py): NEXMARK_EVENTS bids on the local
# broker (started and stopped here unless one runs).
NEXMARK_EVENTS ?= 5000000
bench-nexmark: all
	$(Q)started=0; scripts/kafka-local status >/dev/null 2>&1 || \
		{ scripts/kafka-local start && started=1; }; \
	py=$$(bench/prepare) && $$py bench/nexmark.py --events $(NEXMARK_EVENTS); rc=$$?; \
	[ $$started -eq 0 ] || scripts/kafka-local stop; exit $$rc

bench-quick: all
	$(Q)py=$$(bench/prepare) && BENCH_COMMAND="make bench-quick" \
		$$py bench/run.py --name quick --events 300000 --keys 2000 --verify-keys 200 \
		--latency-seconds 10 --startup-runs 1 \
		$(BENCH_ARGS)

# The README's picture of the live page, taken by its browser test
# (tests/integration/test_page.py) on a broker of scripts/kafka-local.
screenshot: $(BUILD)/dmpflow
	$(Q)DMPFLOW_README_SCREENSHOT=$(abspath docs/live-page.png) DMPFLOW_BIN=$(abspath $(BUILD)/dmpflow) \
		PYTEST_ARGS="-k test_live_page_in_chromium" scripts/run-integration-tests

docs: $(BUILD)/dmpflow
	$(Q)mkdir -p docs
	$(Q)$(BUILD)/dmpflow --help-config --markdown > docs/CONFIGURATION.md

clean:
	rm -rf build build-asan build-clang build-fuzz

-include $(LIB_OBJS:.o=.d) $(SUPPORT_OBJS:.o=.d) $(DAEMON_MOCK_OBJ:.o=.d) $(FUZZ_NOENTRY_OBJS:.o=.d) $(BUILD)/obj/main.d
