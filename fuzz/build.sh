#!/bin/sh
# Builds the libFuzzer targets into build-fuzz/ and, with -run SECONDS, runs
# each for that long on its corpus in fuzz/corpus/<target>/.
set -e
cd "$(dirname "$0")/.."
OUT=build-fuzz
mkdir -p "$OUT"
CC=${CC:-clang}
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc -I/usr/share/include/llhttp"
LIB="src/lib/buf.c src/lib/err.c src/lib/mem.c"
$CC $FLAGS fuzz/fuzz_frame.c src/proto/frame.c $LIB -o $OUT/fuzz_frame
$CC $FLAGS fuzz/fuzz_record.c src/core/record.c $LIB -lsodium -o $OUT/fuzz_record
$CC $FLAGS -w fuzz/fuzz_http.c src/http/parser.c /usr/share/llhttp/llhttp.c \
  /usr/share/llhttp/api.c /usr/share/llhttp/http.c $LIB -o $OUT/fuzz_http
echo "built $OUT/fuzz_frame $OUT/fuzz_record $OUT/fuzz_http"
if [ "$1" = "-run" ]; then
  for t in frame record http; do
    mkdir -p "fuzz/corpus/$t"
    "$OUT/fuzz_$t" -max_total_time="${2:-60}" -print_final_stats=1 "fuzz/corpus/$t" 2>&1 | tail -3
  done
fi
