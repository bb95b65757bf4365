#!/usr/bin/env bash
# The one recipe for the patched, minimal, static FFmpeg that pycodec._core links, used by the
# Makefile (`make ffmpeg`) and by setup.py (`pip install .`, `pip wheel .`).  What FFmpeg is
# (version, tarball checksum, configure flags) is defined here and nowhere else.
#
#   scripts/build_ffmpeg.sh [-j N] BUILD_DIR     everything below, up to the installed prefix
#   scripts/build_ffmpeg.sh --source BUILD_DIR   only the checked tarball and the patched tree
#   scripts/build_ffmpeg.sh --fetch BUILD_DIR    only the checked tarball
#   scripts/build_ffmpeg.sh --print WHAT         version | deb-version | sha256 | tarball | config
#
# Under BUILD_DIR:
#   dl/ffmpeg_<version>.orig.tar.xz   Debian's orig tarball (scripts/fetch_ffmpeg.sh), sha256 checked
#   ffmpeg-src/                       unpacked + third_party/ffmpeg-patches/*.patch in order;
#                                     .patched holds the hash of (tarball, patches)
#   ffmpeg-obj/                       out-of-tree objects and configure/build/install logs
#   ffmpeg/                           the install prefix (include/, lib/*.a); .built holds the hash
#                                     of (tarball, patches, configure flags, this recipe's revision)
#   nasm/                             a private nasm (from Debian's .deb) when none is installed
# A step whose stamp holds the current hash is skipped: a second call does nothing, a changed
# patch or flag redoes what depends on it.  Concurrent calls on one BUILD_DIR wait for each other.
#
# Environment:
#   PYCODEC_FFMPEG_TARBALL  a local copy of the orig tarball to use instead of downloading it
#                           (its sha256 is still checked)
#   PYCODEC_FFMPEG_ASM      auto (default): nasm from PATH, else Debian's nasm .deb unpacked into
#                           BUILD_DIR/nasm (no system change), else no SIMD; "no": no SIMD
set -euo pipefail

FFMPEG_VERSION=5.1.9
FFMPEG_DEB_VERSION=7:5.1.9-0+deb12u1
FFMPEG_SHA256=d9b593bb2ba93d4b50f74177e0cdcd41747e708596367deed0c30348a71dd176
FFMPEG_TARBALL_NAME=ffmpeg_${FFMPEG_VERSION}.orig.tar.xz
# Bump when a change below must rebuild FFmpeg although the flags and patches are the same.
RECIPE_REVISION=1

# Only what pycodec needs: the two decoders, their parsers, common containers, and the bitstream
# filter that gives raw streams their extradata.
# shellcheck disable=SC2054  # the commas are FFmpeg's lists, not array separators
FFMPEG_CONFIG=(
    --disable-everything --disable-autodetect --disable-programs
    --disable-doc --disable-network --disable-avdevice --disable-swscale
    --disable-swresample --disable-postproc --disable-avfilter
    --enable-static --disable-shared --enable-pic
    --enable-decoder=h264,hevc --enable-parser=h264,hevc
    --enable-demuxer=mov,matroska,avi,mpegts,h264,hevc --enable-protocol=file
    --enable-bsf=extract_extradata
)

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

say() { echo "build_ffmpeg: $*" >&2; }
die() { echo "build_ffmpeg: error: $*" >&2; exit 1; }
usage() { echo "usage: $0 [-j N] [--source|--fetch] BUILD_DIR | --print version|deb-version|sha256|tarball|config" >&2; exit 2; }

mode=build
jobs=${FFMPEG_JOBS:-$(nproc 2>/dev/null || echo 2)}
while [ $# -gt 0 ]; do
    case $1 in
        -j) [ $# -ge 2 ] || usage; jobs=$2; shift 2 ;;
        -j*) jobs=${1#-j}; shift ;;
        --source) mode=source; shift ;;
        --fetch) mode=fetch; shift ;;
        --print)
            [ $# -eq 2 ] || usage
            case $2 in
                version) echo "$FFMPEG_VERSION" ;;
                deb-version) echo "$FFMPEG_DEB_VERSION" ;;
                sha256) echo "$FFMPEG_SHA256" ;;
                tarball) echo "$FFMPEG_TARBALL_NAME" ;;
                config) echo "${FFMPEG_CONFIG[*]}" ;;
                *) usage ;;
            esac
            exit 0 ;;
        -*) usage ;;
        *) break ;;
    esac
done
[ $# -eq 1 ] || usage
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "-j wants a positive number, not '$jobs'"

mkdir -p "$1"
build=$(cd "$1" && pwd)
tarball=$build/dl/$FFMPEG_TARBALL_NAME
src=$build/ffmpeg-src
obj=$build/ffmpeg-obj
prefix=$build/ffmpeg

# FFmpeg's own make must not see a calling make's flags (jobserver, command-line variables).
unset MAKEFLAGS MFLAGS MAKELEVEL MAKEOVERRIDES

# One FFmpeg build at a time per BUILD_DIR (make and pip in the same tree, make -j).
if command -v flock > /dev/null; then
    exec 9> "$build/.ffmpeg.lock"
    flock 9
fi

hash_of() { sha256sum | cut -d' ' -f1; }

# The patches, in the order they are applied (the C locale sorts like make's $(sort)).
export LC_ALL=C
shopt -s nullglob
patches=("$root"/third_party/ffmpeg-patches/*.patch)
[ ${#patches[@]} -gt 0 ] || die "no patches in $root/third_party/ffmpeg-patches"

src_hash=$( {
    echo "ffmpeg $FFMPEG_VERSION $FFMPEG_SHA256"
    for p in "${patches[@]}"; do
        echo "$(basename "$p") $(sha256sum < "$p" | cut -d' ' -f1)"
    done
} | hash_of)
build_hash=$( {
    echo "$src_hash"
    echo "config ${FFMPEG_CONFIG[*]}"
    echo "recipe $RECIPE_REVISION asm ${PYCODEC_FFMPEG_ASM:-auto}"
} | hash_of)

stamp_is() { [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; }

fetch() {
    if [ ! -f "$tarball" ]; then
        mkdir -p "$build/dl"
        if [ -n "${PYCODEC_FFMPEG_TARBALL:-}" ]; then
            [ -f "$PYCODEC_FFMPEG_TARBALL" ] || die "PYCODEC_FFMPEG_TARBALL=$PYCODEC_FFMPEG_TARBALL is not a file"
            say "using the FFmpeg tarball $PYCODEC_FFMPEG_TARBALL"
            cp "$PYCODEC_FFMPEG_TARBALL" "$tarball.part"
            mv "$tarball.part" "$tarball"
        else
            say "downloading FFmpeg $FFMPEG_VERSION's source (Debian source package ffmpeg=$FFMPEG_DEB_VERSION)"
            FFMPEG_DEB_VERSION=$FFMPEG_DEB_VERSION bash "$here/fetch_ffmpeg.sh" "$build/dl" \
                || die "could not download FFmpeg's source package; it needs apt sources for Debian 12 in /etc/apt and network access (or set PYCODEC_FFMPEG_TARBALL to a copy of $FFMPEG_TARBALL_NAME)"
            [ -f "$tarball" ] || die "the source package did not contain $FFMPEG_TARBALL_NAME"
        fi
    fi
    if [ "$(sha256sum < "$tarball" | cut -d' ' -f1)" != "$FFMPEG_SHA256" ]; then
        die "$tarball does not have the expected sha256 ($FFMPEG_SHA256); delete it and run again"
    fi
}

source_tree() {
    stamp_is "$src/.patched" "$src_hash" && return 0
    fetch
    say "unpacking FFmpeg and applying ${#patches[@]} patches"
    rm -rf "$src" "$src.tmp"
    mkdir -p "$src.tmp"
    tar -xf "$tarball" -C "$src.tmp" --strip-components=1
    for p in "${patches[@]}"; do
        patch -d "$src.tmp" -p1 -s --no-backup-if-mismatch < "$p" || die "$(basename "$p") does not apply"
    done
    echo "$src_hash" > "$src.tmp/.patched"
    mv "$src.tmp" "$src"
}

# Debian's nasm package unpacked into $build/nasm (with the private apt configuration of
# scripts/apt_private.sh: nothing is installed on the system).  Fails quietly.
private_nasm() {
    local tmp=$build/nasm.tmp debs
    command -v dpkg-deb > /dev/null || return 1
    say "nasm is not installed; fetching Debian's nasm package into $build/nasm"
    rm -rf "$tmp" && mkdir -p "$tmp/deb"
    (cd "$tmp/deb" && bash "$here/apt_private.sh" -d "$build/apt" download nasm) > /dev/null 2>&1 || return 1
    debs=("$tmp"/deb/nasm_*.deb)
    [ ${#debs[@]} -eq 1 ] && dpkg-deb -x "${debs[0]}" "$tmp/root" && "$tmp/root/usr/bin/nasm" -v > /dev/null || return 1
    rm -rf "$build/nasm" && mv "$tmp/root" "$build/nasm" && rm -rf "$tmp"
}

# Prints the configure option for assembly: --x86asmexe=NASM, or --disable-x86asm.
asm_option() {
    local nasm=""
    if [ "${PYCODEC_FFMPEG_ASM:-auto}" = no ]; then
        echo --disable-x86asm
        return
    fi
    if command -v nasm > /dev/null; then
        nasm=$(command -v nasm)
    elif [ -x "$build/nasm/usr/bin/nasm" ] || private_nasm; then
        nasm=$build/nasm/usr/bin/nasm
    fi
    rm -rf "$build/nasm.tmp"
    if [ -n "$nasm" ]; then
        echo "--x86asmexe=$nasm"
    else
        say "warning: nasm is not available; building FFmpeg without SIMD (decoding will be slower)"
        echo --disable-x86asm
    fi
}

ffmpeg() {
    if stamp_is "$prefix/.built" "$build_hash" && stamp_is "$src/.patched" "$src_hash" \
        && [ -f "$prefix/lib/libavcodec.a" ] && [ -f "$prefix/lib/libavformat.a" ] && [ -f "$prefix/lib/libavutil.a" ]; then
        return 0
    fi
    source_tree
    local asm
    asm=$(asm_option)
    rm -rf "$obj" "$prefix"
    mkdir -p "$obj"
    say "configuring FFmpeg ($asm)"
    (cd "$obj" && "$src/configure" --prefix="$prefix" "${FFMPEG_CONFIG[@]}" "$asm") > "$obj/configure.log" 2>&1 \
        || { tail -20 "$obj/configure.log" >&2; die "FFmpeg's configure failed (log: $obj/configure.log)"; }
    say "compiling FFmpeg with $jobs jobs (one to a few minutes)"
    make -C "$obj" -j"$jobs" > "$obj/build.log" 2>&1 \
        || { tail -40 "$obj/build.log" >&2; die "FFmpeg did not compile (log: $obj/build.log)"; }
    make -C "$obj" install > "$obj/install.log" 2>&1 \
        || { tail -20 "$obj/install.log" >&2; die "FFmpeg's install failed (log: $obj/install.log)"; }
    echo "$build_hash" > "$prefix/.built"
    say "FFmpeg $FFMPEG_VERSION (patched) installed in $prefix"
}

case $mode in
    fetch) fetch ;;
    source) source_tree ;;
    build) ffmpeg ;;
esac
