#!/usr/bin/env bash
# Fetch real-world files that nobody on this project made, from Debian packages (bookworm):
#  * forensics-samples-files: a phone camera recording and two x264 screen recordings
#    (tests/test_realworld.py);
#  * opencv-doc: Megamind.avi, a short talking-face clip with sound (MPEG-4 part 2 + AC-3), and
#    Megamind_bugy.avi, the same clip without sound (tests/test_dataset_e2e.py).
# Each .deb is downloaded with a private apt configuration (scripts/apt_private.sh: the system's
# apt state is not touched), only the needed files are extracted, and every sha256 is checked.
#
#   scripts/fetch_samples.sh DEST
set -euo pipefail
dest=${1:?usage: $0 DEST}
here=$(cd "$(dirname "$0")" && pwd)

FORENSICS=./usr/share/forensics-samples/original-files
OPENCV=./usr/share/doc/opencv-doc/examples/data
# package=version | sha256 of the .deb
PACKAGES="
forensics-samples-files=1.1.4-5|8710c751be1a71a88e343540ea1a5cab1fd349c2bcdf07626a27cfe68689e7c4
opencv-doc=4.6.0+dfsg-12|4b12681df35878207ac7097dc66184b2ae552e4bf4ddd2af04a0f03ed0b8682a
"
# name in DEST | package | path in the package | sha256
SAMPLES="
phone_1080p.mp4|forensics-samples-files|$FORENSICS/movie1/VID_20191220_170832.mp4|9b0710a436413f75cc3cd1c1048aa3c4d7c28f76f51ef6a25413d0018d22ec99
hello_720p.mp4|forensics-samples-files|$FORENSICS/movie2/movie-hello.mp4|68162af4e15b20fb61261e55de79e989f53d6295f6226b4bda1905b8c40e9676
hello_576p.avi|forensics-samples-files|$FORENSICS/movie2/movie-hello.avi|eac488b5793f5428ea70f064abbf28941b4ede26824aec1808fcb528c64b1587
Megamind.avi|opencv-doc|$OPENCV/Megamind.avi|0057387cb7e75c8fd1663b62cfdc51fa53f527795d0fe3c1fea2fd159d3130b5
Megamind_bugy.avi|opencv-doc|$OPENCV/Megamind_bugy.avi|b82dd32d5444031d1a46a133e7554be7b80c54d12e3503a1b1332a540218e22c
"

mkdir -p "$dest"
missing() {  # the packages that have a sample missing or with the wrong checksum
    local name pkg path sum
    while IFS='|' read -r name pkg path sum; do
        [ -n "$name" ] || continue
        echo "$sum  $dest/$name" | sha256sum -c --quiet - > /dev/null 2>&1 || echo "$pkg"
    done <<< "$SAMPLES" | sort -u
}
todo=$(missing)
if [ -z "$todo" ]; then
    echo "fetch_samples: $dest is up to date"
    exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export APT_PRIVATE_DIR="$work/apt"
for pkg in $todo; do
    spec=$(grep "^$pkg=" <<< "$PACKAGES")
    pkgver=${spec%%|*}
    debsum=${spec##*|}
    (cd "$work" && "$here/apt_private.sh" download -qq "$pkgver") || {
        echo "fetch_samples: could not download $pkgver from the Debian archive" >&2
        exit 1
    }
    deb=$(ls "$work"/${pkg}_*.deb)
    echo "$debsum  $deb" | sha256sum -c --quiet - || {
        echo "fetch_samples: $deb does not have the expected sha256" >&2
        exit 1
    }
    members=()
    while IFS='|' read -r name p path sum; do
        [ "$p" = "$pkg" ] && members+=("$path")
    done <<< "$SAMPLES"
    mkdir -p "$work/x"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work/x" "${members[@]}"
    while IFS='|' read -r name p path sum; do
        [ "$p" = "$pkg" ] || continue
        echo "$sum  $work/x/$path" | sha256sum -c --quiet - || {
            echo "fetch_samples: $path in $pkg has an unexpected sha256" >&2
            exit 1
        }
        cp "$work/x/$path" "$dest/$name.tmp" && mv "$dest/$name.tmp" "$dest/$name"
    done <<< "$SAMPLES"
    rm -f "$deb"
done
[ -z "$(missing)" ] || { echo "fetch_samples: some samples are still missing in $dest" >&2; exit 1; }
echo "fetch_samples: $dest has all $(grep -c '|' <<< "$SAMPLES") samples"
