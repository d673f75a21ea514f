# coil: the two commands that matter are `make run` and `make test`.
JOBS    ?= $(shell nproc)
CMAKE   ?= cmake
RELEASE := build/release
ASAN    := build/asan
TSAN    := build/tsan
LISTEN  ?= 127.0.0.1:8080
DATA    ?= ./var

.PHONY: all deps build run test test-asan test-tsan bench examples install clean

all: build

deps:
	@scripts/deps all

$(RELEASE)/Makefile:
	$(CMAKE) -S . -B $(RELEASE) -DCMAKE_BUILD_TYPE=Release -DCOIL_BUILD_TESTS=OFF

build: $(RELEASE)/Makefile
	$(CMAKE) --build $(RELEASE) -j $(JOBS)

# Until the HTTP server lands, `make run` shows the runtime at work.
run:
	@scripts/deps build
	@$(MAKE) --no-print-directory build
	$(RELEASE)/examples/ticker_offload

test:
	@scripts/deps test
	@$(MAKE) --no-print-directory test-asan test-tsan

test-asan:
	$(CMAKE) -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DCOIL_SANITIZE="address;undefined"
	$(CMAKE) --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && ctest --output-on-failure -j $(JOBS) --timeout 300

test-tsan:
	$(CMAKE) -S . -B $(TSAN) -DCMAKE_BUILD_TYPE=Debug -DCOIL_SANITIZE=thread \
	  -DCOIL_BUILD_BENCH=OFF -DCOIL_BUILD_EXAMPLES=OFF
	$(CMAKE) --build $(TSAN) -j $(JOBS)
	cd $(TSAN) && TSAN_OPTIONS="atexit_sleep_ms=0 $$TSAN_OPTIONS" \
	  ctest --output-on-failure -j $(JOBS) --timeout 300 -L threads

bench:
	@scripts/deps bench
	@$(MAKE) --no-print-directory build
	$(RELEASE)/coil bench runtime

examples: build

install: build
	$(CMAKE) --install $(RELEASE)

clean:
	rm -rf build
