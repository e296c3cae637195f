# Thin wrapper around the CMake presets (CMakePresets.json). Everything real lives in
# CMakeLists.txt; this file only picks presets, installs missing tools and runs things.
#
#   make / make build   configure + build the dev preset into build/
#   make test           build, then run every test (stress included) with ctest
#   make demo           build, then run build/examples/demo
#   make bench          release build (build-release/), then run each bench_* binary but the
#                       echo servers (bench_server_*, which bench-compare drives)
#   make bench-compare  run bench/compare/run.sh (blitzio vs Tokio), if present
#   make check          ASan+UBSan, TSan, then schedule-perturbation builds + tests (no stress)
#   make check-aarch64  cross build for 64-bit Arm, tests run under qemu-user (no stress)
#   make check-ucontext the portable ucontext fiber switch (other CPUs) + tests (no stress)
#   make format         clang-format -i every .c/.h
#   make format-check   fail if any .c/.h is not formatted
#   make tidy           clang-tidy over the library sources (build/compile_commands.json)
#   make clean          remove the build trees
#
# Variables: CI=true turns on -DBLZ_WERROR=ON (override with BLZ_WERROR=ON|OFF);
# CMAKE_ARGS adds configure arguments; JOBS sets parallelism (default: nproc);
# BLZ_TEST_TIMEOUT_MULTIPLIER scales test timeouts (read when configuring).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build

JOBS ?= $(shell nproc 2>/dev/null || echo 2)
ifeq ($(CI),true)
BLZ_WERROR ?= ON
else
BLZ_WERROR ?= OFF
endif
CONFIGURE_ARGS = -DBLZ_WERROR=$(BLZ_WERROR) $(CMAKE_ARGS)
# The generated Makefiles run as a fresh make, not a sub-make of this one (no "Entering
# directory" noise, no jobserver mix-up); cmake --build gets -j explicitly.
CMAKE_BUILD = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL cmake --build

# Sanitizer tests run with ASLR off whenever the machine allows it (setarch -R): the
# sanitizer runtimes map fixed shadow regions, and high ASLR entropy on newer kernels
# makes them die at startup (libuv's CI disables ASLR for the same reason).
SAN_WRAP = $(shell setarch "$$(uname -m)" -R true >/dev/null 2>&1 && echo setarch "$$(uname -m)" -R)

# C sources and headers to format: tracked plus untracked-but-not-ignored files, or a
# plain find outside a git checkout.
FORMAT_FILES = ( { git ls-files -z --cached --others --exclude-standard -- '*.c' '*.h' 2>/dev/null \
	|| find include src tests bench examples -name '*.[ch]' -print0 2>/dev/null || true; } \
	| { grep -zv '^bench/tokio/' || true; } )

# $(call need,<command>,<debian package>): installs the package if the command is missing.
need = command -v $(1) >/dev/null 2>&1 || { \
	echo "make: '$(1)' not found; installing Debian package $(2)"; \
	sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	command -v apt-get >/dev/null 2>&1 || { echo "make: no apt-get; install $(2) by hand" >&2; exit 1; }; \
	$$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $(2); }

.PHONY: all build test demo bench bench-compare check check-asan check-tsan check-perturb \
	check-aarch64 check-ucontext format format-check tidy clean tools

all: build

tools:
	@$(call need,cmake,cmake)
	@$(call need,cc,build-essential)

build: tools
	cmake --preset dev $(CONFIGURE_ARGS)
	$(CMAKE_BUILD) --preset dev -j $(JOBS)

test: build
	ctest --preset dev -j $(JOBS)

demo: build
	@if [ ! -x build/examples/demo ]; then echo "make demo: build/examples/demo not built (is there an examples/demo.c?)" >&2; exit 1; fi
	./build/examples/demo

bench: tools
	cmake --preset release $(CONFIGURE_ARGS)
	$(CMAKE_BUILD) --preset release -j $(JOBS) --target blz_benches
	@shopt -s nullglob; benches=(); \
	for b in build-release/bench/bench_*; do \
		case $${b##*/} in bench_server_*) ;; *) benches+=("$$b") ;; esac; \
	done; \
	if [ $${#benches[@]} -eq 0 ]; then echo "make bench: no benchmarks yet (bench/*.c)"; exit 0; fi; \
	for b in "$${benches[@]}"; do echo "== $$b"; "$$b"; done

bench-compare:
	@if [ -f bench/compare/run.sh ]; then bash bench/compare/run.sh; \
	else echo "make bench-compare: bench/compare/run.sh is not there yet; nothing to compare"; fi

check: tools
	$(MAKE) --no-print-directory check-asan
	$(MAKE) --no-print-directory check-tsan
	$(MAKE) --no-print-directory check-perturb

# Schedule perturbation: random yields and spins at the atomic steps of the sync and
# channel primitives and of the scheduler's rescue protocol (BLZ_PERTURB), so interleavings a quiet machine never produces
# get exercised on every CI run.
check-perturb: tools
	cmake -S . -B build-perturb -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLZ_PERTURB=ON \
		-DBLZ_BUILD_BENCH=OFF -DBLZ_BUILD_EXAMPLES=OFF $(CONFIGURE_ARGS)
	$(CMAKE_BUILD) build-perturb -j $(JOBS)
	ctest --test-dir build-perturb -j $(JOBS) -R '^(sync_|chan_|rt_rescue)' -LE stress --output-on-failure

# -O2, so values live in callee-saved registers across fiber switches (what the fiber
# tests check), with assertions kept (no -DNDEBUG).
OPTIMISED_WITH_ASSERTS = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g"

# The AArch64 build (cmake/aarch64-linux-gnu.cmake): Debian's cross compiler, every test
# but stress run through qemu-user, so the Arm context switch and the ABI are exercised
# on every CI run. Left out: the tests that spawn processes (process_*, and
# shutdown_graceful and the *_examples tests, which run examples). posix_spawn's vfork becomes a plain fork
# under qemu-user, which loses the child's exec error, and a fork of a multi-threaded
# guest can leave the child deadlocked inside qemu before it execs. io_uring tests skip
# (qemu-user has no io_uring); BLZ_TEST_EMULATOR lets a test skip a case the emulator
# cannot run, saying why.
check-aarch64: tools
	@$(call need,aarch64-linux-gnu-gcc,gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
	@$(call need,qemu-aarch64,qemu-user)
	cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
		$(OPTIMISED_WITH_ASSERTS) -DBLZ_BUILD_BENCH=OFF -DBLZ_TEST_TIMEOUT_MULTIPLIER=4 \
		$(CONFIGURE_ARGS)
	$(CMAKE_BUILD) build-aarch64 -j $(JOBS)
	BLZ_TEST_EMULATOR=qemu-aarch64 ctest --test-dir build-aarch64 -j $(JOBS) -LE stress \
		-E '^(process_|shutdown_graceful|[a-z]+_examples)' --output-on-failure

# The fiber switch every CPU without our assembly uses (swapcontext; fiber.c), forced
# on x86-64 so that CI runs the suite on it too.
check-ucontext: tools
	cmake -S . -B build-ucontext $(OPTIMISED_WITH_ASSERTS) -DBLZ_FIBER_UCONTEXT=ON \
		-DBLZ_BUILD_BENCH=OFF $(CONFIGURE_ARGS)
	$(CMAKE_BUILD) build-ucontext -j $(JOBS)
	ctest --test-dir build-ucontext -j $(JOBS) -LE stress --output-on-failure

# The test presets carry the sanitizer options (ASAN_OPTIONS, UBSAN_OPTIONS, TSAN_OPTIONS
# with tsan.supp) and exclude the stress label. The tsan preset triples every test's
# timeout: rt_wake takes 8 s under TSan on a quiet machine here and 50 s beside other
# heavy work, and a timeout is there to catch a hang, not a slow run.
check-asan: tools
	cmake --preset asan-ubsan $(CONFIGURE_ARGS)
	$(CMAKE_BUILD) --preset asan-ubsan -j $(JOBS)
	$(SAN_WRAP) ctest --preset asan-ubsan -j $(JOBS)

check-tsan: tools
	cmake --preset tsan $(CONFIGURE_ARGS)
	$(CMAKE_BUILD) --preset tsan -j $(JOBS)
	$(SAN_WRAP) ctest --preset tsan -j $(JOBS)

format:
	@$(call need,clang-format,clang-format)
	@$(FORMAT_FILES) | xargs -0 -r clang-format -i
	@echo "make format: done ($$(clang-format --version))"

format-check:
	@$(call need,clang-format,clang-format)
	@n=$$( $(FORMAT_FILES) | tr -cd '\0' | wc -c); \
	$(FORMAT_FILES) | xargs -0 -r clang-format --dry-run --Werror; \
	echo "make format-check: $$n files formatted ($$(clang-format --version))"

# One file per clang-tidy process: with four per process, clang-tidy 14's
# analyzer once reported a va_end on a call to blz__waitlist_front in
# src/sync/mutex.c (no va_list anywhere in its batch), in one CI run of
# many, and never again on the same tree: apparently a name it looked up
# in one file, matched against another's.
tidy: build
	@$(call need,clang-tidy,clang-tidy)
	@grep -o '"file": *"[^"]*"' build/compile_commands.json | sed 's/.*"\([^"]*\)"$$/\1/' \
	| grep '/src/.*\.c$$' | sort -u | xargs -r -P $(JOBS) -n 1 clang-tidy -p build --quiet

clean:
	rm -rf build build-release build-asan build-tsan build-perturb build-aarch64 build-ucontext
