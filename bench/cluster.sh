#!/bin/sh
# make bench, cluster section: the front door beside nginx, one host beside
# one etcd member, and 3 hosts on loopback beside etcd 3.4 with 3 members
# (bench/cluster.py). usage: cluster.sh BUILD DIR
set -e
BUILD=${1:-build}
DIR=${2:-$(mktemp -d "$PWD/bench-cluster.XXXXXX")}
# The peers the bench measures against, Debian's packages, installed here
# when missing (as root; never by make test): etcd-server, and nginx-light
# for the front door.
need() { # COMMAND PATH PACKAGE
  if ! command -v "$1" >/dev/null 2>&1 && [ ! -x "$2" ]; then
    if [ "$(id -u)" = 0 ]; then
      echo "bench: installing $3 for the comparison" >&2
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -qq --no-install-recommends "$3" >/dev/null 2>&1 || {
        apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "$3" >/dev/null
      }
    else
      echo "bench: $3 is missing; as root: apt-get install $3" >&2
    fi
  fi
}
need etcd /usr/bin/etcd etcd-server
need nginx /usr/sbin/nginx nginx-light
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
