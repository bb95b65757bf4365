#!/usr/bin/env bash
# Download FFmpeg's orig tarball from the distribution's source package into
# $1 (a directory), using a private apt configuration: the system's apt
# sources and state are only read, never modified.  The version is scripts/build_ffmpeg.sh's
# (FFMPEG_DEB_VERSION overrides it); that script also checks the tarball's sha256.
set -euo pipefail
dest=$1
version=${FFMPEG_DEB_VERSION:-$(bash "$(dirname "$0")/build_ffmpeg.sh" --print deb-version)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/etc/sources.list.d" "$work/state/lists/partial" "$work/cache/archives/partial" "$dest"
: > "$work/etc/sources.list"
found=0
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed -e 's/^Types:.*/Types: deb-src/' "$f" > "$work/etc/sources.list.d/$(basename "$f")"
    found=1
done
if [ -f /etc/apt/sources.list ]; then
    sed -n 's/^deb \(.*\)/deb-src \1/p' /etc/apt/sources.list >> "$work/etc/sources.list"
    grep -q '^deb-src' "$work/etc/sources.list" && found=1
fi
if [ "$found" = 0 ]; then
    echo "fetch_ffmpeg: no apt sources found in /etc/apt; cannot fetch the ffmpeg source package" >&2
    exit 1
fi
cat > "$work/apt.conf" <<CONF
Dir::Etc::sourcelist "$work/etc/sources.list";
Dir::Etc::sourceparts "$work/etc/sources.list.d";
Dir::State "$work/state";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$work/cache";
APT::Sandbox::User "root";
CONF
export APT_CONFIG="$work/apt.conf"
apt-get -qq update
(cd "$work" && apt-get -qq source --download-only "ffmpeg=$version")
mv "$work"/ffmpeg_*.orig.tar.xz "$dest"/
