# coil: the two commands that matter are `make run` and `make test`.
JOBS    ?= $(shell nproc)
CMAKE   ?= cmake
RELEASE := build/release
ASAN    := build/asan
TSAN    := build/tsan
LISTEN  ?= 127.0.0.1:8080
DATA    ?= ./var
FUZZ    := build/fuzz
FUZZ_TIME ?= 60

.PHONY: all deps build run test test-asan test-tsan test-faults soak bench examples install clean fuzz fuzz-conn

all: build

deps:
	@scripts/deps all

$(RELEASE)/Makefile:
	$(CMAKE) -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DCOIL_BUILD_TESTS=OFF

build: $(RELEASE)/Makefile
	$(CMAKE) --build $(RELEASE) -j $(JOBS)

# Starts `coil serve` on $(LISTEN) with its data in $(DATA); Ctrl-C drains and stops it.
run:
	@scripts/deps build
	@$(MAKE) --no-print-directory build
	$(RELEASE)/coil serve --listen $(LISTEN) --data $(DATA)

# The release build too: -O2 finds warnings the Debug builds do not, and
# `make run` must keep building.
test:
	@scripts/deps test
	@$(MAKE) --no-print-directory build test-asan test-tsan

test-asan:
	$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCOIL_SANITIZE="address;undefined"
	$(CMAKE) --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && ctest --output-on-failure -j $(JOBS) --timeout 300

test-tsan:
	$(CMAKE) -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DCOIL_SANITIZE=thread \
	  -DCOIL_BUILD_BENCH=OFF -DCOIL_BUILD_EXAMPLES=OFF
	$(CMAKE) --build $(TSAN) -j $(JOBS)
	cd $(TSAN) && TSAN_OPTIONS="atexit_sleep_ms=0 suppressions=$(CURDIR)/tests/tsan.supp $$TSAN_OPTIONS" \
	  ctest --output-on-failure -j $(JOBS) --timeout 300 -L threads

# Allocation-failure injection (tests/faults): every allocation of each
# scenario is failed in turn, under ASan+UBSan. make test runs an even
# subset of about 120 runs a scenario.
test-faults:
	@scripts/deps test
	$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCOIL_SANITIZE="address;undefined"
	$(CMAKE) --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && COIL_FAULTS_FULL=1 COIL_TEST_TIMEOUT=3600 ctest --output-on-failure -j $(JOBS) \
	  --timeout 3600 -L faults

# The job system's soak test, SOAK_ROUNDS rounds under ASan+UBSan and then
# under TSan (make test runs 2 of them). A failing round prints its seed:
# replay it with COIL_SOAK_SEED=N COIL_SOAK_ROUNDS=1.
SOAK_ROUNDS ?= 100
soak:
	@scripts/deps test
	$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCOIL_SANITIZE="address;undefined"
	$(CMAKE) --build $(ASAN) -j $(JOBS) --target coil test_soak
	COIL_SOAK_ROUNDS=$(SOAK_ROUNDS) COIL_TEST_TIMEOUT=7200 $(ASAN)/tests/test_soak
	$(CMAKE) -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DCOIL_SANITIZE=thread \
	  -DCOIL_BUILD_BENCH=OFF -DCOIL_BUILD_EXAMPLES=OFF
	$(CMAKE) --build $(TSAN) -j $(JOBS) --target coil test_soak
	TSAN_OPTIONS="atexit_sleep_ms=0 suppressions=$(CURDIR)/tests/tsan.supp $$TSAN_OPTIONS" \
	  COIL_SOAK_ROUNDS=$(SOAK_ROUNDS) COIL_TEST_TIMEOUT=7200 $(TSAN)/tests/test_soak

bench:
	@scripts/deps bench
	@$(MAKE) --no-print-directory build
	$(RELEASE)/coil bench runtime
	$(RELEASE)/coil bench watchdog
	$(RELEASE)/coil bench http
	$(RELEASE)/coil bench store
	$(RELEASE)/coil bench pool
	$(RELEASE)/coil bench jobs
	$(RELEASE)/coil bench jobs --store postgres
	$(RELEASE)/coil bench import

# The HTTP parser under libFuzzer, ASan and UBSan, for FUZZ_TIME seconds,
# from the seeds in fuzz/corpus/http (new finds go to build/fuzz/corpus).
FUZZ_HTTP_SRC := fuzz/fuzz_http_parser.c src/http/server/parser.c src/http/server/request.c \
                 /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c
fuzz:
	@scripts/deps fuzz
	@mkdir -p $(FUZZ)/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -D_GNU_SOURCE -DCOIL_BUILDING=1 -Iinclude -Isrc -I/usr/share/include/llhttp \
	  $(FUZZ_HTTP_SRC) -o $(FUZZ)/fuzz_http_parser
	$(FUZZ)/fuzz_http_parser -max_total_time=$(FUZZ_TIME) -timeout=10 $(FUZZ)/corpus fuzz/corpus/http

# The HTTP connection (conn.c through a socketpair, with a server's
# handlers behind it) under libFuzzer, ASan and UBSan: FUZZ_RUNS inputs, or
# FUZZ_TIME seconds if FUZZ_RUNS is 0 (fuzz/fuzz_http_conn.c).
FUZZ_RUNS ?= 0
FUZZ_CONN_SRC := fuzz/fuzz_http_conn.c $(wildcard src/runtime/*.c src/io/*.c src/http/*/*.c) \
                 /usr/share/llhttp/api.c /usr/share/llhttp/http.c /usr/share/llhttp/llhttp.c
fuzz-conn:
	@scripts/deps fuzz
	@mkdir -p $(FUZZ)/corpus-conn
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -D_GNU_SOURCE -DCOIL_BUILDING=1 -Iinclude -Isrc -I/usr/share/include/llhttp \
	  $(FUZZ_CONN_SRC) -o $(FUZZ)/fuzz_http_conn -luv -lcurl -ljansson \
	  /usr/lib/x86_64-linux-gnu/libboost_context.a -lunwind -lpthread -lm
	$(FUZZ)/fuzz_http_conn $(if $(filter-out 0,$(FUZZ_RUNS)),-runs=$(FUZZ_RUNS),-max_total_time=$(FUZZ_TIME)) \
	  -timeout=10 $(FUZZ)/corpus-conn fuzz/corpus/conn

examples: build

install: build
	$(CMAKE) --install $(RELEASE)

clean:
	rm -rf build
