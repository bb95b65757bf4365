#!/usr/bin/env bash
# Fetch real-world H.264 files that nobody on this project encoded, for tests/test_realworld.py:
# Debian's forensics-samples-files package (bookworm) ships a phone camera recording and two
# x264 screen recordings.  The .deb is downloaded with a private apt configuration
# (scripts/apt_private.sh: the system's apt state is not touched), only the needed files are
# extracted, and every file's sha256 is checked.
#
#   scripts/fetch_samples.sh DEST
set -euo pipefail
dest=${1:?usage: $0 DEST}
here=$(cd "$(dirname "$0")" && pwd)

PKG=forensics-samples-files
VERSION=1.1.4-5
DEB_SHA256=8710c751be1a71a88e343540ea1a5cab1fd349c2bcdf07626a27cfe68689e7c4
PREFIX=./usr/share/forensics-samples/original-files
# name in DEST | path in the package | sha256
SAMPLES="
phone_1080p.mp4|$PREFIX/movie1/VID_20191220_170832.mp4|9b0710a436413f75cc3cd1c1048aa3c4d7c28f76f51ef6a25413d0018d22ec99
hello_720p.mp4|$PREFIX/movie2/movie-hello.mp4|68162af4e15b20fb61261e55de79e989f53d6295f6226b4bda1905b8c40e9676
hello_576p.avi|$PREFIX/movie2/movie-hello.avi|eac488b5793f5428ea70f064abbf28941b4ede26824aec1808fcb528c64b1587
"

mkdir -p "$dest"
check() {  # all samples present with the right checksum?
    local ok=0 name path sum
    while IFS='|' read -r name path sum; do
        [ -n "$name" ] || continue
        echo "$sum  $dest/$name" | sha256sum -c --quiet - > /dev/null 2>&1 || ok=1
    done <<< "$SAMPLES"
    return $ok
}
if check; then
    echo "fetch_samples: $dest is up to date"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export APT_PRIVATE_DIR="$work/apt"
(cd "$work" && "$here/apt_private.sh" download -qq "$PKG=$VERSION") || {
    echo "fetch_samples: could not download $PKG=$VERSION from the Debian archive" >&2
    exit 1
}
deb=$(ls "$work"/${PKG}_*.deb)
echo "$DEB_SHA256  $deb" | sha256sum -c --quiet - || {
    echo "fetch_samples: $deb does not have the expected sha256" >&2
    exit 1
}
mkdir -p "$work/x"
members=()
while IFS='|' read -r name path sum; do
    [ -n "$name" ] && members+=("$path")
done <<< "$SAMPLES"
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/x" "${members[@]}"
while IFS='|' read -r name path sum; do
    [ -n "$name" ] || continue
    echo "$sum  $work/x/$path" | sha256sum -c --quiet - || {
        echo "fetch_samples: $path in $PKG has an unexpected sha256" >&2
        exit 1
    }
    cp "$work/x/$path" "$dest/$name.tmp" && mv "$dest/$name.tmp" "$dest/$name"
done <<< "$SAMPLES"
check
echo "fetch_samples: wrote $(echo "$SAMPLES" | grep -c '|') files to $dest"
