#!/usr/bin/env bash
# Run apt-get with a private configuration: the system's apt sources are read (not modified),
# and the package lists, cache and lock files live in a directory of our own, so neither the
# system's apt state nor its sources change.
#
#   scripts/apt_private.sh [-d DIR] APT-GET-ARGS...
#
# DIR defaults to $APT_PRIVATE_DIR, else build/apt in the repository.  The private lists are
# fetched ("update") automatically the first time.  Examples:
#   scripts/apt_private.sh download forensics-samples-files=1.1.4-5
#   scripts/apt_private.sh update
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${APT_PRIVATE_DIR:-$root/build/apt}
if [ "${1:-}" = "-d" ]; then
    dir=$2
    shift 2
fi
[ $# -gt 0 ] || { echo "usage: $0 [-d DIR] APT-GET-ARGS..." >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir/etc/sources.list.d" "$dir/etc/preferences.d" "$dir/state/lists/partial" \
         "$dir/cache/archives/partial"

# Binary package sources, as configured on this machine (deb822 .sources, .list and sources.list).
rm -f "$dir"/etc/sources.list.d/*
: > "$dir/etc/sources.list"
found=0
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    grep -qi '^Types:.*\bdeb\b' "$f" || continue
    cp "$f" "$dir/etc/sources.list.d/"
    found=1
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    if grep -q '^deb ' "$f"; then
        grep '^deb ' "$f" >> "$dir/etc/sources.list"
        found=1
    fi
done
if [ "$found" = 0 ]; then
    echo "apt_private: no apt sources found in /etc/apt; cannot reach the Debian archive" >&2
    exit 1
fi

sandbox=""
[ "$(id -u)" = 0 ] && sandbox='APT::Sandbox::User "root";'
cat > "$dir/apt.conf" <<CONF
Dir::Etc::sourcelist "$dir/etc/sources.list";
Dir::Etc::sourceparts "$dir/etc/sources.list.d";
Dir::Etc::preferencesparts "$dir/etc/preferences.d";
Dir::State "$dir/state";
Dir::State::status "/var/lib/dpkg/status";
Dir::Cache "$dir/cache";
$sandbox
CONF
export APT_CONFIG="$dir/apt.conf"

if [ "$1" != update ] && ! ls "$dir"/state/lists/*_Packages* > /dev/null 2>&1; then
    apt-get -qq update
fi
exec apt-get "$@"
