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
exec python3 "$(dirname "$0")/cluster.py" "$BUILD" "$DIR"
