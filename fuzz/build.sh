#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/ and, with -run SECONDS
# [TARGET...], runs each (frame, record, http, forward by default) for that
# long.
# Seeds are read from fuzz/corpus/<target>/; what the fuzzer finds goes to
# build-fuzz/corpus/<target>/ and crashes to build-fuzz/, so the committed
# seeds stay small.
set -e
cd "$(dirname "$0")/.."
OUT=build-fuzz
mkdir -p "$OUT"
CC=${CC:-clang}
# Undefined behaviour must abort, or the fuzzer would only print it.
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Isrc -I/usr/share/include/llhttp"
LIB="src/lib/buf.c src/lib/err.c src/lib/mem.c src/lib/strlist.c"
$CC $FLAGS fuzz/fuzz_frame.c src/proto/frame.c $LIB -o $OUT/fuzz_frame
$CC $FLAGS fuzz/fuzz_record.c src/core/record.c $LIB -lsodium -o $OUT/fuzz_record
$CC $FLAGS -w fuzz/fuzz_http.c src/http/parser.c /usr/share/llhttp/llhttp.c \
  /usr/share/llhttp/api.c /usr/share/llhttp/http.c $LIB -o $OUT/fuzz_http
$CC $FLAGS fuzz/fuzz_forward.c src/http/forward.c $LIB -o $OUT/fuzz_forward
echo "built $OUT/fuzz_frame $OUT/fuzz_record $OUT/fuzz_http $OUT/fuzz_forward"
if [ "$1" = "-run" ]; then
  secs=${2:-60}
  shift
  [ $# -gt 0 ] && shift
  targets=${*:-frame record http forward}
  for t in $targets; do
    mkdir -p "fuzz/corpus/$t" "$OUT/corpus/$t"
    "$OUT/fuzz_$t" -max_total_time="$secs" -print_final_stats=1 \
      -artifact_prefix="$OUT/" "$OUT/corpus/$t" "fuzz/corpus/$t" 2>&1 | tail -3
  done
fi
