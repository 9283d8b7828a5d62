#!/bin/sh
# Installs the Debian packages berth needs to build, test and benchmark.
# As root it runs apt-get; otherwise it prints the one command to run.
set -e
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev \
libraft-dev liblz4-dev libuv1-dev libsqlite3-dev liblmdb-dev libsodium-dev \
libjansson-dev libcmocka-dev node-llhttp python3 python3-pytest curl"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
  echo "deps: installing:$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null || apt-get update
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "deps: missing packages; run:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
