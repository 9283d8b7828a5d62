#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/ and, with -run SECONDS
# [TARGET...], runs each (every target by default) for that long. `make
# fuzz` runs every target for FUZZ_SECONDS (20) this way.
#
# Seeds are read from fuzz/corpus/<target>/; what the fuzzer finds goes to
# build-fuzz/corpus/<target>/ and crashes to build-fuzz/, so the committed
# seeds stay small. A crash, a leak, undefined behaviour, an input that
# takes over FUZZ_TIMEOUT seconds or a failed build makes the script exit
# non-zero, after every target ran; a missing clang or libFuzzer runtime is
# an error, never a skip.
set -e
cd "$(dirname "$0")/.."
OUT=build-fuzz
TARGETS="frame record http forward transport channel admin master segments identity strlist shipcopy sni beat websocket"
mkdir -p "$OUT"
CC=${CC:-clang}
if ! command -v "$CC" >/dev/null 2>&1; then
  echo "fuzz: $CC is not installed (scripts/deps.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi
# Undefined behaviour must abort, or the fuzzer would only print it.
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
FLAGS="-g -O1 -std=c11 -Wall -Wextra -Wshadow -Wno-unused-parameter -Werror \
-D_GNU_SOURCE -Isrc $SAN"
LIB="src/lib/buf.c src/lib/err.c src/lib/mem.c src/lib/strlist.c src/lib/utf8.c"

# The target fuzz_$1 from fuzz/fuzz_$1.c and the sources after it.
build() {
  name=$1
  shift
  $CC $FLAGS -fsanitize=fuzzer "fuzz/fuzz_$name.c" "$@" -o "$OUT/fuzz_$name"
}

# llhttp is generated code: built apart, without warnings.
LLHTTP=""
for f in llhttp api http; do
  $CC -g -O1 -w -fsanitize=fuzzer-no-link $SAN -I/usr/share/include/llhttp \
    -c "/usr/share/llhttp/$f.c" -o "$OUT/llhttp_$f.o"
  LLHTTP="$LLHTTP $OUT/llhttp_$f.o"
done

build frame src/proto/frame.c $LIB
build record src/core/record.c src/core/sandbox.c src/crypto/seal.c $LIB -lsodium
build http -I/usr/share/include/llhttp src/http/parser.c $LLHTTP $LIB
build forward src/http/forward.c $LIB
build transport src/consensus/transport.c src/crypto/channel.c $LIB -luv -lraft -lsodium
build channel src/crypto/channel.c $LIB -lsodium
build admin src/daemon/body.c src/core/gate.c src/core/ship.c src/core/caps.c $LIB -ljansson -lsodium
build master src/crypto/master.c src/lib/file.c $LIB -lsodium
build segments src/consensus/segments.c $LIB
build identity src/consensus/identity.c $LIB
build strlist $LIB
build sni src/http/hostname.c $LIB
build beat src/core/beat.c $LIB
build websocket src/http/websocket.c $LIB -lcrypto
build shipcopy src/store/store.c src/store/heads.c src/store/heap.c \
  src/store/apply.c src/store/fsck.c src/store/shipcopy.c src/store/shipkey.c \
  src/core/record.c src/core/export.c \
  src/core/registry.c src/core/gate.c src/core/auth.c src/core/account.c \
  src/core/sandbox.c src/core/caps.c src/proto/frame.c src/crypto/seal.c \
  src/lib/file.c $LIB -lsqlite3 -lsodium
echo "fuzz: built $(for t in $TARGETS; do printf '%s ' "$OUT/fuzz_$t"; done)"

if [ "$1" = "-run" ]; then
  secs=${2:-60}
  shift
  [ $# -gt 0 ] && shift
  targets=${*:-$TARGETS}
  failed=""
  for t in $targets; do
    if [ ! -d "fuzz/corpus/$t" ]; then
      echo "fuzz: no seeds in fuzz/corpus/$t" >&2
      exit 1
    fi
    mkdir -p "$OUT/corpus/$t"
    log="$OUT/fuzz_$t.log"
    echo "fuzz: $t for ${secs}s"
    if "$OUT/fuzz_$t" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-10}" \
      -print_final_stats=1 -artifact_prefix="$OUT/$t-" \
      "$OUT/corpus/$t" "fuzz/corpus/$t" >"$log" 2>&1; then
      grep -E '^stat::(number_of_executed_units|new_units_added)' "$log" |
        sed 's/^/  /'
    else
      # The sanitizer's report and the input that caused it.
      grep -v -E '^#[0-9]+' "$log" | tail -60 >&2
      echo "fuzz: $t FAILED (full output in $log)" >&2
      failed="$failed $t"
    fi
  done
  if [ -n "$failed" ]; then
    echo "fuzz: failed:$failed" >&2
    exit 1
  fi
  echo "fuzz: every target ran ${secs}s clean"
fi
