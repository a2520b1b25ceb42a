# Set-up commands for a fresh Debian 12 machine (as root):
#   make run    install what is missing, build, run the main job
#   make test   install what is missing, build, run every test (incl. the ASan+UBSan build)
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

# Debian 12 packages the build needs (see README "Dependencies").
APT_PACKAGES := cmake make g++ pkg-config libdnnl-dev libhwy-dev libeigen3-dev libgtest-dev \
                libgmock-dev libbenchmark-dev libcli11-dev nlohmann-json3-dev libxxhash-dev clang-14 libclang-rt-14-dev

.PHONY: all deps build test test-fast asan run clean

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

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DLINATTN_WERROR=ON $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

# Every test: the optimised build, then the core tests again under ASan+UBSan.
test: test-fast asan

test-fast: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINATTN_SANITIZE=ON \
	  -DLINATTN_WERROR=ON -DLINATTN_BUILD_APPS=OFF
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --test-dir $(ASAN_BUILD) -L core --output-on-failure -j $(JOBS)

run: build
	./$(BUILD)/bin/linattn demo

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
