# Set-up commands for a fresh Debian 12 machine (as root):
#   make run    install what is missing, build, run the main job
#   make test   install what is missing, build, run every test (incl. the ASan+UBSan build)
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 15
JOBS       ?= $(shell nproc)
SHELL      := /bin/bash
CMAKE_FLAGS ?=

# Debian 12 packages the build needs (see README "Dependencies").
APT_PACKAGES := cmake make g++ pkg-config libdnnl-dev libxsmm-dev libhwy-dev libeigen3-dev libgtest-dev \
                libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libxxhash-dev \
                clang-14 libclang-rt-14-dev libomp-14-dev ocl-icd-opencl-dev gnuplot-nox libtorch-dev \
                python3-dev pybind11-dev python3-numpy python3-torch python3-pytest \
                libboost-dev libssl-dev libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
                wrk nghttp2-client openssl redis-server redis-tools python3-redis libhiredis-dev \
                libfaiss-dev libopenblas-dev
# The Python package is built and tested for Debian's interpreter, not whichever python3 comes
# first on PATH (pyenv, a venv): its NumPy and torch are Debian's packages above.
PYTHON     ?= /usr/bin/python3

.PHONY: all deps redis-module-header build python python-install test test-fast asan fuzz bench bench-micro bench-torch bench-python bench-serve bench-redis \
        run clean

all: build

deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root (or install:$$missing)" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# redismodule.h (the Redis module API) ships only in Debian's redis source package: fetched for the
# installed redis-server into $(BUILD)/redis-module, a build input never committed.
REDIS_MODULE_DIR := $(abspath $(BUILD))/redis-module
redis-module-header: deps
	@sh apps/redis/fetch-redismodule-h.sh $(REDIS_MODULE_DIR)

build: deps redis-module-header
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DLINATTN_WERROR=ON -DLINATTN_PYTHON=$(PYTHON) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# The Python package alone, importable with PYTHONPATH=$(BUILD)/python (docs/python.md).
python: deps redis-module-header
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DLINATTN_WERROR=ON -DLINATTN_PYTHON=$(PYTHON) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target linattn_python

# Installs `linattn` into $(PYTHON)'s site directory for local packages (Debian:
# /usr/local/lib/python3.11/dist-packages); DESTDIR=DIR stages the install under DIR.
python-install: python
	DESTDIR=$(DESTDIR) cmake --install $(BUILD) --component python

# Every test: the optimised build, the core tests again under ASan+UBSan, then every decoder
# fuzzed for FUZZ_SECONDS each, JOBS at a time (six: under a minute on 2 cores).
test: test-fast asan fuzz

test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINATTN_SANITIZE=ON \
	  -DLINATTN_WERROR=ON -DLINATTN_BUILD_APPS=OFF -DLINATTN_BUILD_TORCH=OFF -DLINATTN_BUILD_PYTHON=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) -L core --output-on-failure -j $(JOBS)

# libFuzzer on every decoder, from the seed corpus in fuzz/corpus, $(JOBS) at a time. Longer runs:
#   make fuzz FUZZ_SECONDS=3600
fuzz: deps redis-module-header
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DLINATTN_REDISMODULE_DIR=$(REDIS_MODULE_DIR) \
	  -DLINATTN_FUZZ=ON -DLINATTN_BUILD_TESTS=OFF -DLINATTN_BUILD_APPS=ON -DLINATTN_BUILD_TORCH=OFF -DLINATTN_BUILD_PYTHON=OFF \
	  -DOpenMP_CXX_FLAGS=-fopenmp=libgomp -DOpenMP_CXX_LIB_NAMES=gomp \
	  -DOpenMP_gomp_LIBRARY=$$(g++ -print-file-name=libgomp.so)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_memory_file fuzz_bank fuzz_npy fuzz_reader_data fuzz_http_request fuzz_redis_value
	fuzz/run_fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(JOBS) memory_file bank npy reader_data http_request redis_value

# The cost model on this machine: tables on stdout, every figure in docs/bench/bench.json, plots
# in docs/bench/*.svg (a few seconds to a minute).
bench: build
	./$(BUILD)/bin/linattn bench --json docs/bench/bench.json --plots docs/bench

# The reader's attention modules, forward+backward, against naive LibTorch (a few minutes).
bench-torch: build
	./$(BUILD)/bin/linattn_torch_bench --json docs/bench/torch_modules.json

# The Python bindings' per-call overhead over the C++ call, and causal forward+backward through
# linattn.torch against plain PyTorch (docs/bench/python.{json,md}; a few minutes).
bench-python: build
	PYTHONPATH=$(BUILD)/python $(PYTHON) bench/python/bench_python.py --out docs/bench/python

# linattn-serve on loopback against wrk, h2load and an open-loop generator: the no-op route,
# lookups, search over 10,000 memories, the softmax baseline (docs/bench/serve.{json,md} and a
# plot; about 10 minutes, banks kept in $(BUILD)/bench-serve between runs).
bench-serve: build
	PYTHONPATH=$(BUILD)/python $(PYTHON) bench/serve/bench_serve.py --bin $(BUILD)/bin --proto apps/serve/proto \
	  --work $(BUILD)/bench-serve --out docs/bench/serve

# linattn_redis.so on one node and on a 3 + 3 cluster: LA.LOOKUP against GET of an answer-sized
# value and of the whole state, by redis-benchmark and a pipelined client; memory per key
# (docs/bench/redis.{json,md}; about 10 minutes).
bench-redis: build
	$(PYTHON) bench/redis/bench_redis.py --module $(BUILD)/lib/linattn_redis.so --client $(BUILD)/bin/linattn_redis_client \
	  --cluster-script apps/redis/redis-cluster.sh --work $(BUILD)/bench-redis --out docs/bench/redis

bench-micro: build
	./$(BUILD)/bin/linattn_micro_benchmarks --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

# The main job: the paper's comparison on bAbI, reproduced (about 5 minutes on 2 cores once
# built; results, report.md and plots in reader-results/). Rerunning reuses finished runs.
run: build
	./$(BUILD)/bin/linattn reader reproduce --out reader-results --jobs $(JOBS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
