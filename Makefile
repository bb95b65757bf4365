# pycodec: the front door.  `make demo` builds everything and runs the demo,
# `make test` runs the test suite.  Everything installs into .venv/ and build/.

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         := .venv
PY           := $(VENV)/bin/python
BUILD        := build
JOBS         ?= $(shell nproc 2>/dev/null || echo 2)

FFMPEG_VERSION     := 5.1.9
FFMPEG_DEB_VERSION := 7:5.1.9-0+deb12u1
FFMPEG_SHA256      := d9b593bb2ba93d4b50f74177e0cdcd41747e708596367deed0c30348a71dd176
FFMPEG_TARBALL     := $(BUILD)/dl/ffmpeg_$(FFMPEG_VERSION).orig.tar.xz
FFMPEG_SRC         := $(BUILD)/ffmpeg-src
FFMPEG_OBJ         := $(BUILD)/ffmpeg-obj
FFMPEG_PREFIX      := $(BUILD)/ffmpeg
FFMPEG_DEV         := $(BUILD)/ffmpeg-dev
FFMPEG_PATCHES     := $(sort $(wildcard third_party/ffmpeg-patches/*.patch))

# Only what pycodec needs: the two decoders, their parsers, common containers.
FFMPEG_CONFIG := --disable-everything --disable-autodetect --disable-programs \
	--disable-doc --disable-network --disable-avdevice --disable-swscale \
	--disable-swresample --disable-postproc --disable-avfilter \
	--enable-static --disable-shared --enable-pic \
	--enable-decoder=h264,hevc --enable-parser=h264,hevc \
	--enable-demuxer=mov,matroska,avi,mpegts,h264,hevc --enable-protocol=file

EXT := pycodec/_core$(shell $(PYTHON) -c "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")

SAMPLES      := $(BUILD)/samples

.PHONY: all venv ffmpeg ext samples demo test bench lint clean distclean ffmpeg-dev ffmpeg-patches dataset

all: venv ffmpeg ext

# ---------------------------------------------------------------- Python env
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# ---------------------------------------------------------------- FFmpeg
$(FFMPEG_TARBALL):
	scripts/fetch_ffmpeg.sh $(BUILD)/dl

$(BUILD)/.tarball-ok: $(FFMPEG_TARBALL)
	@echo "$(FFMPEG_SHA256)  $(FFMPEG_TARBALL)" | sha256sum -c --quiet - \
	  || { echo "error: $(FFMPEG_TARBALL) does not have the expected sha256; delete it and run make again" >&2; exit 1; }
	touch $@

# nasm gives FFmpeg its SIMD code; without it the build still works, slower.
$(BUILD)/.nasm:
	@mkdir -p $(BUILD)
	@command -v nasm >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get -qq update && apt-get -qq install -y nasm) >/dev/null 2>&1; } || true
	@if command -v nasm >/dev/null; then echo yes > $@; \
	 else echo "warning: nasm is not available; building FFmpeg without SIMD (decoding will be slower)" >&2; echo no > $@; fi

$(FFMPEG_SRC)/.patched: $(BUILD)/.tarball-ok $(FFMPEG_PATCHES)
	rm -rf $(FFMPEG_SRC) && mkdir -p $(FFMPEG_SRC)
	tar -xf $(FFMPEG_TARBALL) -C $(FFMPEG_SRC) --strip-components=1
	set -e; for p in $(FFMPEG_PATCHES); do echo "applying $$p"; patch -d $(FFMPEG_SRC) -p1 -s --no-backup-if-mismatch < $$p; done
	touch $@

ffmpeg: $(FFMPEG_PREFIX)/.built
$(FFMPEG_PREFIX)/.built: $(FFMPEG_SRC)/.patched $(BUILD)/.nasm
	rm -rf $(FFMPEG_OBJ) $(FFMPEG_PREFIX) && mkdir -p $(FFMPEG_OBJ)
	cd $(FFMPEG_OBJ) && ../ffmpeg-src/configure --prefix=$(abspath $(FFMPEG_PREFIX)) \
	  $(FFMPEG_CONFIG) $$( [ "$$(cat ../.nasm)" = yes ] || echo --disable-x86asm ) > configure.log \
	  || { tail -20 configure.log; exit 1; }
	$(MAKE) -C $(FFMPEG_OBJ) -j$(JOBS) > $(FFMPEG_OBJ)/build.log 2>&1 || { tail -40 $(FFMPEG_OBJ)/build.log; exit 1; }
	$(MAKE) -C $(FFMPEG_OBJ) install > $(FFMPEG_OBJ)/install.log 2>&1
	touch $@

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

# ---------------------------------------------------------------- real-world samples
# H.264 files no one on the team encoded, from a Debian package (sha256 checked).
samples: $(SAMPLES)/.fetched
$(SAMPLES)/.fetched: scripts/fetch_samples.sh scripts/apt_private.sh
	scripts/fetch_samples.sh $(SAMPLES)
	touch $@

# ---------------------------------------------------------------- front door
demo: all
	$(PY) -m pycodec.demo $(BUILD)/demo

test: all samples
	$(PY) -m pytest -q tests

bench: all
	$(PY) benchmarks/bench.py --out docs/benchmarks.md
	$(PY) benchmarks/bench_backprojection.py --out docs/benchmarks_backprojection.md
	$(PY) benchmarks/bench_dataset.py --out docs/benchmarks_dataset.md

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

lint: venv
	$(VENV)/bin/ruff check pycodec pipelines tests benchmarks

clean:
	rm -rf $(FFMPEG_SRC) $(FFMPEG_OBJ) $(FFMPEG_PREFIX) $(BUILD)/demo $(BUILD)/.nasm $(BUILD)/.tarball-ok \
	  $(BUILD)/temp.* $(BUILD)/lib.* pycodec/_core*.so *.egg-info .pytest_cache

distclean: clean
	rm -rf $(VENV) $(BUILD)
