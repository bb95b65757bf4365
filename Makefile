# pycodec: the front door.  `make demo` builds everything and runs the demo,
# `make test` runs the test suite.  Everything installs into .venv/ and build/.

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         := .venv
PY           := $(VENV)/bin/python
BUILD        := build
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)

# FFmpeg's version, checksum and configure flags are defined once, in scripts/build_ffmpeg.sh (the
# recipe setup.py uses too); these copies are read from it.
FFMPEG_BUILD_SH    := scripts/build_ffmpeg.sh
FFMPEG_VERSION     := $(shell $(FFMPEG_BUILD_SH) --print version)
FFMPEG_DEB_VERSION := $(shell $(FFMPEG_BUILD_SH) --print deb-version)
FFMPEG_SHA256      := $(shell $(FFMPEG_BUILD_SH) --print sha256)
FFMPEG_TARBALL     := $(BUILD)/dl/$(shell $(FFMPEG_BUILD_SH) --print tarball)
FFMPEG_SRC         := $(BUILD)/ffmpeg-src
FFMPEG_OBJ         := $(BUILD)/ffmpeg-obj
FFMPEG_PREFIX      := $(BUILD)/ffmpeg
FFMPEG_DEV         := $(BUILD)/ffmpeg-dev
FFMPEG_PATCHES     := $(sort $(wildcard third_party/ffmpeg-patches/*.patch))

# Only what pycodec needs: the two decoders, their parsers, common containers (see the script).
FFMPEG_CONFIG      := $(shell $(FFMPEG_BUILD_SH) --print config)

EXT := pycodec/_core$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")

SAMPLES      := $(BUILD)/samples

.PHONY: all venv ffmpeg ext wheel samples demo test bench lint clean distclean ffmpeg-dev ffmpeg-patches dataset peers

all: venv ffmpeg ext

# ---------------------------------------------------------------- Python env
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# ---------------------------------------------------------------- FFmpeg
# scripts/build_ffmpeg.sh does the work (download, sha256, patches, configure, build, install) and
# keeps a hash of the patches and flags in its stamps: it is run every time (FORCE), does nothing
# when they are unchanged, and then leaves the stamps' dates alone, so nothing downstream rebuilds.
$(FFMPEG_TARBALL):
	$(FFMPEG_BUILD_SH) --fetch $(BUILD)

$(BUILD)/.tarball-ok: $(FFMPEG_TARBALL)
	$(FFMPEG_BUILD_SH) --fetch $(BUILD)
	touch $@

# nasm gives FFmpeg its SIMD code.  As root, make installs it (apt-get); otherwise the script uses
# a private copy of Debian's nasm package (build/nasm), or builds without SIMD (slower, works).
# yes/no: whether nasm is on PATH.
$(BUILD)/.nasm:
	@mkdir -p $(BUILD)
	@command -v nasm >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get -qq update && apt-get -qq install -y nasm) >/dev/null 2>&1; } || true
	@if command -v nasm >/dev/null; then echo yes > $@; else echo no > $@; fi

# The patched tree (build/ffmpeg-src), redone when the patches change.
$(FFMPEG_SRC)/.patched: FORCE
	@$(FFMPEG_BUILD_SH) --source $(BUILD)

ffmpeg: $(FFMPEG_PREFIX)/.built
$(FFMPEG_PREFIX)/.built: FORCE | $(BUILD)/.nasm
	@$(FFMPEG_BUILD_SH) -j$(JOBS) $(BUILD)

FORCE:

# A git tree for editing the patches: pristine commit, then one commit per patch.
ffmpeg-dev: $(BUILD)/.tarball-ok
	@test ! -e $(FFMPEG_DEV) || { echo "$(FFMPEG_DEV) exists; remove it first" >&2; exit 1; }
	mkdir -p $(FFMPEG_DEV) && tar -xf $(FFMPEG_TARBALL) -C $(FFMPEG_DEV) --strip-components=1
	cd $(FFMPEG_DEV) && git init -q && git add -A && git -c user.name=pycodec -c user.email=dev@pycodec.invalid commit -qm "pristine FFmpeg $(FFMPEG_VERSION)"
	set -e; for p in $(FFMPEG_PATCHES); do git -C $(FFMPEG_DEV) -c user.name=pycodec -c user.email=dev@pycodec.invalid am -q $(abspath $$p); done

# Regenerate third_party/ffmpeg-patches from the commits in build/ffmpeg-dev.
ffmpeg-patches:
	rm -f third_party/ffmpeg-patches/*.patch
	git -C $(FFMPEG_DEV) format-patch -q --no-signature --zero-commit \
	  -o $(abspath third_party/ffmpeg-patches) $$(git -C $(FFMPEG_DEV) rev-list --max-parents=0 HEAD)

# ---------------------------------------------------------------- extension
ext: $(EXT)
$(EXT): $(FFMPEG_PREFIX)/.built $(VENV)/.installed setup.py $(wildcard csrc/*.cpp csrc/*.h)
	FFMPEG_PREFIX=$(abspath $(FFMPEG_PREFIX)) $(PY) setup.py -q build_ext --inplace
	$(PY) -m pip install -q --no-deps --no-build-isolation -e . > /dev/null

# A wheel (the extension with the patched FFmpeg linked in) in dist/; `pip install .` and
# `pip wheel .` build the same from a clean clone without make (README, "Installing with pip").
wheel: venv ffmpeg
	@mkdir -p dist
	FFMPEG_PREFIX=$(abspath $(FFMPEG_PREFIX)) $(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist .
	@echo "wheel: $$(ls -t dist/pycodec-*.whl | head -1)"

# ---------------------------------------------------------------- fuzzing (docs/fuzzing.md)
# libFuzzer harnesses (fuzz/) over the patched decoders with every export on, built with clang,
# ASan and UBSan against a sanitized copy of the patched FFmpeg in build/fuzz/ (own objects and
# prefix; the normal build is not touched).  `make fuzz` builds, `make fuzz-smoke` (part of
# `make test`) runs both for about a minute, `make fuzz-campaign FUZZ_RUNS=10000000` is the long run.
FUZZ          := $(BUILD)/fuzz
FUZZ_SRC      := $(FUZZ)/ffmpeg-src
FUZZ_OBJ      := $(FUZZ)/ffmpeg-obj
FUZZ_PREFIX   := $(FUZZ)/ffmpeg
FUZZ_CODECS   := h264 hevc
FUZZ_CC       ?= clang
FUZZ_CXX      ?= clang++
# UBSan: every check of -fsanitize=undefined but those in FUZZ_UBSAN_OFF (why: docs/fuzzing.md); any
# report aborts.  No ASan ODR indicators: configure would take their symbol for an extern prefix.
FUZZ_UBSAN_OFF ?= alignment,pointer-overflow
FUZZ_SAN      ?= -fsanitize=address,undefined -fno-sanitize=$(FUZZ_UBSAN_OFF) -fno-sanitize-recover=all
# Coverage for libFuzzer without comparison tracing (a third of the run time; fuzz/*.dict instead).
FUZZ_CFLAGS   := $(FUZZ_SAN) -fsanitize=fuzzer-no-link -fno-sanitize-coverage=trace-cmp \
	-fno-sanitize-address-use-odr-indicator -gline-tables-only -fno-omit-frame-pointer
FUZZ_MAXLEN   ?= 512
FUZZ_RUNS     ?= 10000000
FUZZ_TIME     ?= 0
FUZZ_SMOKE_S  ?= 25
FUZZ_SEED     ?= 1
# -entropic=0: the entropic schedule's bookkeeping took 80% of the time with ~100k features.
FUZZ_OPTS      = -max_len=$(FUZZ_MAXLEN) -timeout=20 -rss_limit_mb=2048 -dict=fuzz/$(1).dict \
	-entropic=0 -detect_leaks=1 -print_final_stats=1
# FUZZ_MALLOC_CONTEXT: frames ASan records per malloc/free (its default 30); the campaign uses 4,
# 15% faster (an allocation's full stack comes back when the saved input is replayed).
FUZZ_MALLOC_CONTEXT ?= 30
FUZZ_ENV       = ASAN_OPTIONS=detect_leaks=1:symbolize=1:malloc_context_size=$(FUZZ_MALLOC_CONTEXT) UBSAN_OPTIONS=print_stacktrace=1

.PHONY: fuzz fuzz-smoke fuzz-campaign fuzz-seeds

# clang with the libFuzzer and sanitizer runtimes (Debian: clang, libclang-rt-N-dev); installed
# when running as root, like nasm.
$(FUZZ)/.clang:
	@mkdir -p $(FUZZ)
	@fuzz_ok() { echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return 0; }' \
	  | $(FUZZ_CC) -x c -fsanitize=fuzzer,address,undefined -o $(FUZZ)/.clang-check - >/dev/null 2>&1; }; \
	 fuzz_ok || { [ "$$(id -u)" = 0 ] && { command -v $(FUZZ_CC) >/dev/null || (apt-get -qq update && apt-get -qq install -y --no-install-recommends clang) >/dev/null 2>&1; } \
	   && (apt-get -qq install -y --no-install-recommends libclang-rt-$$($(FUZZ_CC) -dumpversion | cut -d. -f1)-dev || \
	       { apt-get -qq update && apt-get -qq install -y --no-install-recommends libclang-rt-$$($(FUZZ_CC) -dumpversion | cut -d. -f1)-dev; }) >/dev/null 2>&1 && fuzz_ok; } \
	 || { echo "error: fuzzing needs clang with libFuzzer and ASan/UBSan (Debian: apt-get install clang libclang-rt-14-dev; run make as root to install them)" >&2; exit 1; }
	@rm -f $(FUZZ)/.clang-check && touch $@

# The patched FFmpeg again, under ASan + UBSan + libFuzzer coverage: decoders and parsers only,
# from a copy of the patched tree (so that a rebuild of the normal one cannot pull it away).
$(FUZZ_SRC)/.patched: $(FFMPEG_SRC)/.patched
	rm -rf $(FUZZ_SRC) && mkdir -p $(FUZZ) && cp -a $(FFMPEG_SRC) $(FUZZ_SRC)
	touch $@

$(FUZZ_PREFIX)/.built: $(FUZZ_SRC)/.patched $(BUILD)/.nasm $(FUZZ)/.clang
	rm -rf $(FUZZ_OBJ) $(FUZZ_PREFIX) && mkdir -p $(FUZZ_OBJ)
	cd $(FUZZ_OBJ) && $(abspath $(FUZZ_SRC))/configure --prefix=$(abspath $(FUZZ_PREFIX)) \
	  --cc=$(FUZZ_CC) --cxx=$(FUZZ_CXX) --optflags=-O1 \
	  --extra-cflags="$(FUZZ_CFLAGS)" --extra-ldflags="$(FUZZ_SAN)" \
	  --disable-everything --disable-autodetect --disable-programs --disable-doc --disable-network \
	  --disable-avdevice --disable-swscale --disable-swresample --disable-postproc --disable-avfilter \
	  --enable-static --disable-shared --enable-decoder=h264,hevc --enable-parser=h264,hevc \
	  $$( [ "$$(cat $(abspath $(BUILD))/.nasm)" = yes ] || echo --disable-x86asm ) > configure.log \
	  || { tail -20 configure.log; exit 1; }
	@grep -q '^#define EXTERN_PREFIX ""$$' $(FUZZ_OBJ)/config.h \
	  || { echo "error: FFmpeg's configure found a symbol prefix under the sanitizers (docs/fuzzing.md)" >&2; exit 1; }
	$(MAKE) -C $(FUZZ_OBJ) -j$(JOBS) > $(FUZZ_OBJ)/build.log 2>&1 || { tail -40 $(FUZZ_OBJ)/build.log; exit 1; }
	$(MAKE) -C $(FUZZ_OBJ) install > $(FUZZ_OBJ)/install.log 2>&1
	touch $@

# One fuzzer per codec; pycodec's blob reader (csrc/blob.cpp, csrc/schema.cpp) is linked in.
FUZZ_BINS := $(FUZZ_CODECS:%=$(FUZZ)/%_fuzzer)
fuzz: $(FUZZ_BINS)
$(FUZZ)/%_fuzzer: fuzz/decoder_fuzzer.cpp csrc/blob.cpp csrc/schema.cpp csrc/blob.h csrc/schema.h $(FUZZ_PREFIX)/.built
	$(FUZZ_CXX) -std=c++17 -O1 $(FUZZ_SAN) -fsanitize=fuzzer -fno-sanitize-coverage=trace-cmp \
	  -gline-tables-only -fno-omit-frame-pointer \
	  -DFUZZ_CODEC_ID=AV_CODEC_ID_$(shell echo $* | tr a-z A-Z) -I$(FUZZ_PREFIX)/include -Icsrc \
	  fuzz/decoder_fuzzer.cpp csrc/blob.cpp csrc/schema.cpp \
	  $(FUZZ_PREFIX)/lib/libavcodec.a $(FUZZ_PREFIX)/lib/libavutil.a -lm -pthread -o $@

# Seed corpus from the test stream generators (small re-encodes, raw Annex B).
fuzz-seeds: $(FUZZ)/seeds/.made
$(FUZZ)/seeds/.made: fuzz/make_seeds.py tests/streams.py tests/hevc_streams.py tests/h264_bitstream.py $(VENV)/.installed
	rm -rf $(FUZZ)/seeds && $(PY) fuzz/make_seeds.py $(FUZZ)/seeds
	touch $@

# CI smoke run: each fuzzer FUZZ_SMOKE_S seconds from the seeds and the inputs the fuzzers found
# (tests/data/fuzz/) into a fresh corpus; any crash, leak, timeout or sanitizer report fails (the
# input and the log stay in build/fuzz/smoke/).
fuzz-smoke: $(FUZZ_BINS) $(FUZZ)/seeds/.made
	@rm -rf $(FUZZ)/smoke && mkdir -p $(FUZZ)/smoke
	@for c in $(FUZZ_CODECS); do \
	  mkdir -p $(FUZZ)/smoke/$$c; \
	  $(FUZZ_ENV) $(FUZZ)/$${c}_fuzzer $(call FUZZ_OPTS,$$c) -seed=$(FUZZ_SEED) -max_total_time=$(FUZZ_SMOKE_S) \
	    -artifact_prefix=$(FUZZ)/smoke/$$c- $(FUZZ)/smoke/$$c $(FUZZ)/seeds/$$c tests/data/fuzz/$$c > $(FUZZ)/smoke/$$c.log 2>&1 \
	  || { tail -40 $(FUZZ)/smoke/$$c.log; echo "error: fuzz-smoke: the $$c fuzzer failed (log: $(FUZZ)/smoke/$$c.log)" >&2; exit 1; }; \
	  echo "fuzz-smoke $$c: $$(fuzz/summary.sh $(FUZZ)/smoke/$$c.log)"; \
	done

# The long campaign: FUZZ_RUNS executions per codec (FUZZ_TIME > 0: at most that many seconds),
# both codecs in parallel, each split over FUZZ_JOBS processes (seeds FUZZ_SEED, FUZZ_SEED+1, ...;
# FUZZ_RUNS / FUZZ_JOBS executions each) that share the codec's corpus.  A campaign may be several
# runs that resume the corpus: logs <codec>.<UTC start>.<job>.log (the first line names the fuzzer's
# sha256), corpora and any crash inputs in build/fuzz/campaign/; fuzz/summary.sh prints the figures
# of this run and of all the runs so far.
FUZZ_JOBS     ?= 1
FUZZ_NICE     ?= 10
fuzz-campaign: $(FUZZ_BINS) $(FUZZ)/seeds/.made
	@mkdir -p $(FUZZ)/campaign
	@run=$$(date -u +%Y%m%dT%H%M%SZ); pids=; for c in $(FUZZ_CODECS); do for j in $$(seq 1 $(FUZZ_JOBS)); do \
	  mkdir -p $(FUZZ)/campaign/$$c; log=$(FUZZ)/campaign/$$c.$$run.$$j.log; \
	  echo "fuzzer: $$(sha256sum < $(FUZZ)/$${c}_fuzzer | cut -c1-16) $${c}_fuzzer" > $$log; \
	  echo "env: $(FUZZ_ENV) nice $(FUZZ_NICE)" >> $$log; \
	  ( start=$$(date +%s); $(FUZZ_ENV) nice -n $(FUZZ_NICE) $(FUZZ)/$${c}_fuzzer $(call FUZZ_OPTS,$$c) \
	      -seed=$$(( $(FUZZ_SEED) + j - 1 )) -runs=$$(( $(FUZZ_RUNS) / $(FUZZ_JOBS) )) -max_total_time=$(FUZZ_TIME) \
	      -artifact_prefix=$(FUZZ)/campaign/$$c- $(FUZZ)/campaign/$$c $(FUZZ)/seeds/$$c tests/data/fuzz/$$c >> $$log 2>&1; \
	    rc=$$?; echo "wall_s: $$(( $$(date +%s) - start )) exit: $$rc" >> $$log; exit $$rc ) & pids="$$pids $$!"; \
	done; done; rc=0; for p in $$pids; do wait $$p || rc=1; done; \
	for c in $(FUZZ_CODECS); do echo "fuzz-campaign $$c, this run: $$(fuzz/summary.sh $(FUZZ)/campaign/$$c.$$run.*.log)"; \
	  echo "fuzz-campaign $$c, all runs: $$(fuzz/summary.sh $(FUZZ)/campaign/$$c.*.log)"; done; exit $$rc

# ---------------------------------------------------------------- real-world samples
# H.264 files no one on the team encoded, from a Debian package (sha256 checked).
samples: $(SAMPLES)/.fetched
$(SAMPLES)/.fetched: scripts/fetch_samples.sh scripts/apt_private.sh
	scripts/fetch_samples.sh $(SAMPLES)
	touch $@

# ---------------------------------------------------------------- front door
demo: all
	$(PY) -m pycodec.demo $(BUILD)/demo

test: all samples peers fuzz-smoke
	$(PY) -m pytest -q tests

bench: all
	$(PY) benchmarks/bench.py --out docs/benchmarks.md
	$(PY) benchmarks/bench_backprojection.py --out docs/benchmarks_backprojection.md
	$(PY) benchmarks/bench_dataset.py --out docs/benchmarks_dataset.md
	$(PY) benchmarks/bench_restore.py --out docs/benchmarks.md

# ---------------------------------------------------------------- datasets
# make dataset SRC=videos/ OUT=data/ [CODECS="h264 hevc"] [RATES="60k 80k 100k 120k"] [CRFS="32 42"]
#              [SIZE=256] [GOP=0] [PRESET=medium] [FIELDS=all] [SPLIT="0.8 0.1 0.1"] [SHARD=i/N]
# One Make target per source video and per (video, codec, setting): use -j N and -k.  With SHARD,
# only that slice of the sources is built (one Slurm array task) and no manifest is written; a
# final run without SHARD writes it.  docs/dataset.md.
CODECS ?= h264
RATES  ?= 60k 80k 100k 120k
CRFS   ?=
SIZE   ?= 256
GOP    ?= 0
PRESET ?= medium
FIELDS ?= all
SPLIT  ?= 0.8 0.1 0.1
dataset: all
	@test -n "$(SRC)" -a -n "$(OUT)" || { echo "usage: make dataset SRC=videos/ OUT=data/ [CODECS=...] [RATES=...] (docs/dataset.md)" >&2; exit 2; }
	@$(PY) -m pipelines.plan "$(SRC)" "$(OUT)" --codecs "$(CODECS)" --rates "$(RATES)" --crfs "$(CRFS)" \
	  --size "$(SIZE)" --gop "$(GOP)" --preset "$(PRESET)" --fields "$(FIELDS)" --split "$(SPLIT)" $(if $(SHARD),--shard "$(SHARD)")
ifneq ($(SHARD),)
	@$(MAKE) --no-print-directory -f "$(OUT)/make/slice-$(subst /,-of-,$(SHARD)).mk" slice
else
	@rc=0; $(MAKE) --no-print-directory -f "$(OUT)/dataset.mk" shards || rc=$$?; \
	 $(MAKE) --no-print-directory -f "$(OUT)/dataset.mk" manifest || rc=1; exit $$rc
endif

# ---------------------------------------------------------------- training
# make train CONFIG=pipelines/configs/mdvd.yaml [RUN=runs/NAME] [RESUME=1] [NPROC=N] [ARGS="optim.lr=5e-4 ..."]
# The data: data.manifest in the config, in ARGS, or PYCODEC_DATA=path/to/manifest.jsonl.  NPROC > 1
# runs torchrun (DDP).  docs/training.md.
NPROC ?= 1
.PHONY: train
train: all
	@test -n "$(CONFIG)" || { echo "usage: make train CONFIG=pipelines/configs/mdvd.yaml [RUN=runs/NAME] [RESUME=1] [NPROC=N] [ARGS='key=value ...'] (docs/training.md)" >&2; exit 2; }
	$(if $(filter-out 1,$(NPROC)),$(PY) -m torch.distributed.run --standalone --nproc_per_node=$(NPROC),$(PY)) \
	  -m pipelines.train --config "$(CONFIG)" $(if $(RUN),--out "$(RUN)") $(if $(RESUME),--resume) $(ARGS)

# Table 1 of MDVD-Net: every row under one budget, resumable over sessions, then one evaluation.
# make table1 DATA=data/manifest.jsonl [TIME=MIN] [ROWS="0 1 8"] (docs/training.md)
.PHONY: table1
table1: all peers
	@test -n "$(DATA)" || { echo "usage: make table1 DATA=path/to/manifest.jsonl [TIME=minutes] [ROWS='0 1 8'] (docs/training.md)" >&2; exit 2; }
	$(PY) -m pipelines.table1 --manifest "$(DATA)" $(if $(TIME),--time-limit $(TIME)) $(if $(ROWS),--rows $(ROWS))

# The ffmpeg program for the post-filter peers of pipelines/evaluate.py (spp, pp7, hqdn3d, nlmeans:
# GPL filters that PyAV's LGPL FFmpeg lacks).  As root, make installs Debian's package (apt-get).
peers:
	@command -v ffmpeg >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get -qq update && apt-get -qq install -y --no-install-recommends ffmpeg) >/dev/null 2>&1; } \
	  || { echo "error: the evaluation peers need the ffmpeg program (Debian: apt-get install ffmpeg; run make as root to install it)" >&2; exit 1; }

lint: venv
	$(VENV)/bin/ruff check pycodec pipelines tests benchmarks

clean:
	rm -rf $(FFMPEG_SRC) $(FFMPEG_OBJ) $(FFMPEG_PREFIX) $(BUILD)/demo $(BUILD)/.nasm $(BUILD)/.tarball-ok \
	  $(BUILD)/temp.* $(BUILD)/lib.* $(BUILD)/fuzz pycodec/_core*.so *.egg-info .pytest_cache

distclean: clean
	rm -rf $(VENV) $(BUILD) dist
