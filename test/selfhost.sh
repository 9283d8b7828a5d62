#!/bin/sh
# docs/self-host.md's recipe, as far as a CI machine allows: make install
# (of the build under test) under a temporary prefix, the units checked
# with systemd-analyze, the master key made as the recipe makes it, the
# installed berth started with the unit's own ExecStart line (what systemd
# would run, its specifiers filled in) on the front door's socket passed as
# berth.socket passes it, a ship made, exported, removed and imported, the
# admin API on loopback with a token, and a stop on SIGTERM that leaves no
# program behind. Run by CTest: sh test/selfhost.sh BUILD.
set -eu
BUILD=$(cd "${1:?usage: selfhost.sh BUILD}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
T=$(mktemp -d "${TMPDIR:-/tmp}/berth-selfhost-XXXXXX")
PID=
fail() {
    echo "selfhost: $*" >&2
    [ -f "$T/host.log" ] && tail -20 "$T/host.log" >&2
    exit 1
}
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null || true
    fi
    rm -rf "$T"
}
trap cleanup EXIT
step() { echo "selfhost: $*"; }

# --- Install: make install's files, from this build. ---
PREFIX=$T/prefix
step "make install-files PREFIX=$PREFIX"
make -s -C "$ROOT" install-files BUILD="$BUILD" PREFIX="$PREFIX" >/dev/null
BERTH=$PREFIX/bin/berth
UNIT=$PREFIX/lib/systemd/system/berth.service
SOCKET=$PREFIX/lib/systemd/system/berth.socket
TLS_SOCKET=$PREFIX/lib/systemd/system/berth-tls.socket
for f in "$BERTH" "$PREFIX/lib/berth/programs/kv" "$PREFIX/lib/berth/programs/share" "$PREFIX/lib/berth/programs/chat"; do
    [ -x "$f" ] || fail "not installed: $f"
done
for f in "$UNIT" "$SOCKET" "$TLS_SOCKET" "$PREFIX/share/man/man1/berth.1" "$PREFIX/share/bash-completion/completions/berth"; do
    [ -s "$f" ] || fail "not installed: $f"
done
grep -q '^\.SS "berth ship export' "$PREFIX/share/man/man1/berth.1" || fail "the man page lacks ship export"
bash -c ". '$PREFIX/share/bash-completion/completions/berth' && complete -p berth" >/dev/null ||
    fail "the completion does not load in bash"

# --- The unit. ---
command -v systemd-analyze >/dev/null ||
    fail "systemd-analyze is missing (scripts/deps.sh installs systemd)"
step "systemd-analyze verify $UNIT $SOCKET $TLS_SOCKET"
out=$(systemd-analyze verify --man=no "$UNIT" "$SOCKET" "$TLS_SOCKET" 2>&1) || fail "systemd-analyze verify failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify warns: $out"
for line in 'Type=notify' 'NotifyAccess=main' 'WatchdogSec=' 'Delegate=yes' \
    'ProtectSystem=strict' 'PrivateTmp=yes' 'NoNewPrivileges=yes' \
    'Sockets=berth.socket' "ExecStart=$PREFIX/bin/berth serve"; do
    grep -q "^$line" "$UNIT" || fail "the unit lacks $line"
done
grep -q '^FileDescriptorName=front$' "$SOCKET" || fail "berth.socket does not name its socket front"
grep -q '^FileDescriptorName=tls$' "$TLS_SOCKET" || fail "berth-tls.socket does not name its socket tls"
grep -q '^Service=berth.service$' "$TLS_SOCKET" || fail "berth-tls.socket does not name berth.service"
listen_stream=$(sed -n 's/^ListenStream=//p' "$SOCKET")
listen_env=$(sed -n 's/^Environment=.*BERTH_LISTEN=\([^ ]*\).*/\1/p' "$UNIT")
[ "${listen_stream##*:}" = "${listen_env##*:}" ] ||
    fail "berth.socket listens on $listen_stream but BERTH_LISTEN is $listen_env"

# --- The master key, as the recipe makes it (/etc/berth here under $T). ---
install -d -m 0700 "$T/etc/berth"
head -c 32 /dev/urandom > "$T/etc/berth/master-key"
chmod 0600 "$T/etc/berth/master-key"
# What systemd does for the unit: the state directory (StateDirectory=,
# mode 0700) and the credential (LoadCredential=) in a directory of its
# own.
install -d -m 0700 "$T/state/berth" "$T/credentials"
cp "$T/etc/berth/master-key" "$T/credentials/master-key"

# --- Start it with the unit's ExecStart line. ---
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
FRONT=$(port)
ADMIN=$(port)
exec_start=$(sed -n 's/^ExecStart=//p' "$UNIT")
[ -n "$exec_start" ] || fail "no ExecStart line"
# Environment= and /etc/default/berth: the doors on loopback, free ports.
BERTH_LISTEN=127.0.0.1:$FRONT
BERTH_ADMIN=127.0.0.1:$ADMIN
BERTH_OPTS=
cmd=$(printf '%s\n' "$exec_start" | sed -e "s|%S|$T/state|g" -e "s|%d|$T/credentials|g" \
    -e "s|\${BERTH_LISTEN}|$BERTH_LISTEN|g" -e "s|\${BERTH_ADMIN}|$BERTH_ADMIN|g" \
    -e "s|\$BERTH_OPTS|$BERTH_OPTS|g")
case $cmd in *'$'* | *%*) fail "unfilled variables in ExecStart: $cmd" ;; esac
step "start: $cmd"
# As systemd starts it: the front door bound as berth.socket binds it (on
# a free port here) and passed as descriptor 3, named front.
# shellcheck disable=SC2086 # the line is split into words, as systemd splits it
python3 "$ROOT/test/activate.py" "$FRONT" $cmd > "$T/host.log" 2>&1 &
PID=$!
i=0
until curl -sf "http://$BERTH_LISTEN/healthz" >/dev/null 2>&1; do
    kill -0 "$PID" 2>/dev/null || fail "the host exited"
    i=$((i + 1))
    [ $i -lt 400 ] || fail "the host did not answer /healthz in 20 s"
    sleep 0.05
done
grep -q 'master key sits beside the data' "$T/host.log" &&
    fail "the master key is not sealed under the key file"
grep -q 'front door socket from the service manager' "$T/host.log" ||
    fail "the host did not take the front door's socket"

# --- Using it, backups: as the recipe's commands. ---
export BERTH_DATA="$T/state/berth"
"$BERTH" ship new --program "$PREFIX/lib/berth/programs/kv" --name ann >/dev/null
curl -sf -X PUT --data-binary blue "http://$BERTH_LISTEN/s/ann/k/colour" >/dev/null
[ "$(curl -sf "http://$BERTH_LISTEN/s/ann/k/colour")" = blue ] || fail "ann does not answer blue"
install -d -m 0700 "$T/backups"
"$BERTH" ship ls --json | python3 -c 'import json, sys; [print(s["id"]) for s in json.load(sys.stdin)["ships"]]' |
    while read -r id; do "$BERTH" ship export "$id" "$T/backups/$id.berth" >/dev/null; done
id=$("$BERTH" ship show ann --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
[ -s "$T/backups/$id.berth" ] || fail "no export of ann"
"$BERTH" ship rm ann >/dev/null
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$BERTH_LISTEN/s/ann/k/colour")" = 404 ] ||
    fail "ann is still there after ship rm"
"$BERTH" ship import "$T/backups/$id.berth" >/dev/null
[ "$(curl -sf "http://$BERTH_LISTEN/s/ann/k/colour")" = blue ] || fail "the imported ann does not answer blue"
"$BERTH" fsck >/dev/null || fail "fsck after the import"

# The admin API on TCP, loopback only, with a token.
token=$("$BERTH" token new --scope read --name selfhost)
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://$BERTH_ADMIN/v1/stats")" = 401 ] ||
    fail "the admin API on TCP answers without a token"
curl -sf -H "Authorization: Bearer $token" "http://$BERTH_ADMIN/v1/stats" >/dev/null ||
    fail "the admin API on TCP refuses its token"

# --- Stop, as systemctl stop does: SIGTERM, exit 0, no program left. ---
tag=$(python3 -c 'import os, sys; st = os.stat(sys.argv[1]); print("%x-%x" % (st.st_dev, st.st_ino))' "$BERTH_DATA")
kill -TERM "$PID"
rc=0
wait "$PID" || rc=$?
PID=
[ $rc = 0 ] || fail "the host exited $rc on SIGTERM"
left=$(grep -l "BERTH_HOST=$tag/" /proc/[0-9]*/environ 2>/dev/null || true)
[ -z "$left" ] || fail "programs outlived the host: $left"
step "ok"
