#!/bin/sh
# Fetches redismodule.h, the Redis module API, into DIR: it ships only in Debian's `redis` source
# package, not in a binary one. The source package is the one matching the installed
# redis-server, from the deb-src twins of the machine's own apt sources, with apt's lists kept
# in DIR so that the system's apt state is not touched. A build input, never committed.
#   fetch-redismodule-h.sh DIR
set -eu
dir=$1
[ -f "$dir/redismodule.h" ] && exit 0
version=$(dpkg-query -W -f='${Version}' redis-server 2>/dev/null) || {
  echo "fetch-redismodule-h: redis-server is not installed (make deps installs it)" >&2; exit 1; }
work="$dir/apt"
rm -rf "$work"
mkdir -p "$work/parts" "$work/lists/partial" "$work/source" "$work/cache/archives/partial"
# deb822 sources (Debian 12's default) and one-line ones (debootstrap's), as deb-src.
for f in /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] && sed 's/^Types:.*/Types: deb-src/' "$f" > "$work/parts/$(basename "$f")"
done
: > "$work/sources.list"
[ -f /etc/apt/sources.list ] && grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' > "$work/sources.list" || true
opts="-o Dir::Etc::SourceList=$work/sources.list -o Dir::Etc::SourceParts=$work/parts -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache"
apt-get $opts update -qq
cd "$work/source"
apt-get $opts source --download-only -qq "redis=$version" >/dev/null 2>&1 || apt-get $opts source --download-only "redis=$version"
orig=$(ls redis_*.orig.tar.* | head -1)
tar -xf "$orig" --wildcards --strip-components=2 '*/src/redismodule.h'
mv redismodule.h "$dir/redismodule.h"
rm -rf "$work"
echo "fetch-redismodule-h: redismodule.h of redis $version in $dir"
