#!/bin/sh
# Starts a host in the foreground with a few demo ships of the sample kv
# program, and prints URLs to try. Ctrl-C stops it; the data stays in DATA.
set -e
BUILD=${1:-build}
DATA=${2:-$PWD/demo-data}
LISTEN=${3:-127.0.0.1:8080}
BERTH="$BUILD/berth"
KV="$(cd "$BUILD/programs" && pwd)/kv"

"$BERTH" serve --data "$DATA" --listen "$LISTEN" &
pid=$!
# Under set -e: the host may have stopped already (Ctrl-C reaches it too).
stop() {
  kill $pid 2>/dev/null || true
  wait $pid 2>/dev/null || true
}
# Ctrl-C is how the host is meant to stop: once it has, that is success.
trap 'stop; exit 0' INT TERM
trap stop EXIT

i=0
until curl -fs "http://$LISTEN/healthz" >/dev/null 2>&1; do
  i=$((i + 1))
  if [ $i -gt 200 ] || ! kill -0 $pid 2>/dev/null; then
    echo "run: the host did not start; see the messages above" >&2
    exit 1
  fi
  sleep 0.05
done

for name in ann bob cat; do
  if ! "$BERTH" ship show "$name" --data "$DATA" >/dev/null 2>&1; then
    "$BERTH" ship new --program "$KV" --name "$name" --data "$DATA" >/dev/null
  fi
done
curl -fs -X PUT --data-binary 'hello from ann' "http://$LISTEN/s/ann/k/greeting" >/dev/null

cat <<MSG

berth is running: data in $DATA, front door on http://$LISTEN
Demo ships: ann, bob, cat (the sample key/value program). Try:

  curl http://$LISTEN/s/ann/k/greeting
  curl -X PUT --data-binary 42 http://$LISTEN/s/bob/k/answer
  curl http://$LISTEN/s/bob/k
  $BERTH ship ls --data $DATA
  $BERTH ship sleep bob --data $DATA && curl http://$LISTEN/s/bob/k/answer

Ctrl-C stops the host.
MSG
wait $pid
