# Thin wrapper over meson: `make demo` and `make test` each set up what is
# missing (Debian packages, the build directory) and run.
BUILD      ?= build
TESTBUILD  ?= build-test
MESON      ?= meson

.PHONY: all deps build demo test bench clean format fuzz memcheck

all: build

deps:
	@sh scripts/deps.sh

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD) --buildtype=release

build: deps $(BUILD)/build.ninja
	$(MESON) compile -C $(BUILD)

demo: build
	./$(BUILD)/scoreloss demo

# The test build runs under AddressSanitizer and UndefinedBehaviorSanitizer,
# with optimisation so the statistical tests stay fast.
$(TESTBUILD)/build.ninja:
	$(MESON) setup $(TESTBUILD) --buildtype=debugoptimized -Db_sanitize=address,undefined

test: deps $(TESTBUILD)/build.ninja
	$(MESON) compile -C $(TESTBUILD)
	@$(MESON) test -C $(TESTBUILD) --print-errorlogs --num-processes 2; status=$$?; \
	  python3 scripts/test_summary.py $(TESTBUILD)/meson-logs/testlog.json; exit $$status

bench: build
	./$(BUILD)/bench/bench_csv
	./$(BUILD)/bench/bench_llsfe
	./$(BUILD)/bench/bench_loss
	bench/bench_recover.sh $(BUILD)

# libFuzzer targets (clang, ASan + UBSan) for the CSV reader, the distribution
# specifications and parameter files, and the sweep configuration parser,
# each run for FUZZ_SECONDS (scripts/fuzz.sh).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) sh scripts/fuzz.sh

# The command-line tests under valgrind memcheck on a debug build without
# sanitizers (scripts/memcheck.sh; MEMCHECK_EVERY=N: valgrind on every Nth process).
memcheck:
	sh scripts/memcheck.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TESTBUILD)
