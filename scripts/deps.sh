#!/bin/sh
# Installs the Debian packages berth needs to build, test and benchmark
# (chromium, nodejs and npm: the dashboard's test in a real browser;
# systemd: systemd-analyze, which checks the unit in test/selfhost.sh;
# openssl: the command the TLS tests make their certificates with;
# python3-websockets: the WebSocket clients of the chat test and benches).
# As root it runs apt-get; otherwise it prints the commands to run.
#
# libraft comes from Debian's bookworm-backports (0.22, the maintained fork):
# bookworm's own 0.15 is not safe with more than one voter. The backports
# source is added only if apt does not know it already.
set -e
PKGS="build-essential cmake pkg-config clang clang-format libclang-rt-14-dev \
liblz4-dev libuv1-dev libsqlite3-dev liblmdb-dev libsodium-dev \
libjansson-dev libcmocka-dev libseccomp-dev libssl-dev openssl node-llhttp python3 python3-pytest python3-nacl python3-websockets \
curl procps iproute2 chromium nodejs systemd"
RAFT_MIN=0.22
BACKPORTS="deb http://deb.debian.org/debian bookworm-backports main"
BACKPORTS_LIST=/etc/apt/sources.list.d/bookworm-backports.list

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# npm, for the dashboard's browser test (playwright-core): Debian's package,
# unless the nodejs installed carries its own npm (and conflicts with it).
command -v npm >/dev/null 2>&1 || missing="$missing npm"
raft_ok=1
pkg-config --atleast-version=$RAFT_MIN raft 2>/dev/null || raft_ok=0
[ -z "$missing" ] && [ $raft_ok = 1 ] && exit 0

has_backports() {
  grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/
}

if [ "$(id -u)" != 0 ]; then
  echo "deps: missing packages; run as root:" >&2
  has_backports || echo "  echo '$BACKPORTS' > $BACKPORTS_LIST" >&2
  [ -n "$missing" ] && echo "  apt-get update && apt-get install -y$missing" >&2
  [ $raft_ok = 1 ] || echo "  apt-get install -y -t bookworm-backports libraft-dev" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if [ $raft_ok = 0 ] && ! has_backports; then
  echo "deps: adding bookworm-backports ($BACKPORTS_LIST)" >&2
  echo "$BACKPORTS" > $BACKPORTS_LIST
fi
apt-get update -qq >/dev/null || apt-get update
if [ -n "$missing" ]; then
  echo "deps: installing:$missing" >&2
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ $raft_ok = 0 ]; then
  echo "deps: installing libraft-dev >= $RAFT_MIN from bookworm-backports" >&2
  apt-get install -y -qq --no-install-recommends -t bookworm-backports libraft-dev >/dev/null
fi
pkg-config --atleast-version=$RAFT_MIN raft || {
  echo "deps: libraft $RAFT_MIN or newer is required; found $(pkg-config --modversion raft 2>/dev/null || echo none)" >&2
  exit 1
}
