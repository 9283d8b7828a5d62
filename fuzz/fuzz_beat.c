/* libFuzzer target for heartbeats (core/beat.h), the body of a peer's
 * TRANSPORT_BEAT call: arbitrary bytes must be refused or decode to fields
 * that encode to the input's first BEAT_SIZE bytes, but for the flag bits
 * a reader ignores, and decode again to the very same
 * fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/beat.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct beat b, again;
    memset(&b, 0, sizeof b);
    int rv = beat_decode(data, size, &b);
    if (rv != 0) {
        if (rv != BERTH_EMALFORMED ||
            (size >= BEAT_SIZE && data[0] == BEAT_VERSION)) {
            abort();
        }
        return 0;
    }
    if (size < BEAT_SIZE) {
        abort();
    }
    uint8_t out[BEAT_SIZE], want[BEAT_SIZE];
    beat_encode(&b, out);
    memcpy(want, data, BEAT_SIZE);
    want[1] &= 1; /* the leading flag alone */
    if (memcmp(out, want, BEAT_SIZE) != 0) {
        abort();
    }
    memset(&again, 0, sizeof again);
    if (beat_decode(out, sizeof out, &again) != 0 ||
        memcmp(&b, &again, sizeof b) != 0) {
        abort();
    }
    return 0;
}
