# Thin wrapper over meson: `make demo` and `make test` each set up what is
# missing (Debian packages, the build directory) and run.
BUILD      ?= build
TESTBUILD  ?= build-test
MESON      ?= meson

.PHONY: all deps build demo test bench clean format

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

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(TESTBUILD)
