#!/bin/sh
# make bench, cluster section: 3 hosts on loopback beside etcd 3.4 (Debian's
# etcd-server, installed here when missing and run as root; never by make
# test). usage: cluster.sh BUILD DIR
set -e
BUILD=${1:-build}
DIR=${2:-$(mktemp -d "$PWD/bench-cluster.XXXXXX")}
if ! command -v etcd >/dev/null 2>&1 && [ ! -x /usr/bin/etcd ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bench: installing etcd-server for the cluster floor" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends etcd-server >/dev/null 2>&1 || {
      apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends etcd-server >/dev/null
    }
  else
    echo "bench: etcd-server is missing; as root: apt-get install etcd-server" >&2
  fi
fi
python3 "$(dirname "$0")/cluster.py" "$BUILD" "$DIR"
# The leader kill -9 loop of the tests, 50 rounds, on this build: every
# acknowledged write is read back and every host's store compared.
ROUNDS=${BENCH_KILL_ROUNDS:-50}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=$(cd "$BUILD" && pwd)
if out=$(cd "$DIR" && BERTH_KILL_ROUNDS=$ROUNDS BERTH_BIN="$B/berth" BERTH_PROGRAMS="$B/programs" \
    BERTH_TEST_TMP="$DIR" pytest-3 -q -p no:cacheprovider \
    "$ROOT/test/integration/test_cluster.py" -k kill_loop 2>&1); then
  echo "kill loop: $ROUNDS leader kills under writes to 8 ships; every acknowledged write read back, stores equal ($(echo "$out" | tail -1))"
else
  echo "kill loop: $ROUNDS rounds FAILED:"
  echo "$out" | tail -30
fi
