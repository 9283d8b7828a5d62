/* libFuzzer target for the check of libraft's open segments: arbitrary
 * bytes are read as the contents of an open segment, as segments_check()
 * reads DATA/raft/open-N before libraft opens it. A scan must end with a
 * verdict that points inside the bytes; the bytes are also read with a
 * valid format version in front, to reach the batches more often. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "consensus/segments.h"

/* Scan p[0..n) and check that the verdict holds together. */
static void scan(const uint8_t *p, size_t n)
{
    struct segments_scan s;
    segments_scan_open(p, n, &s);
    if (memchr(s.why, '\0', sizeof s.why) == NULL) {
        abort();
    }
    /* A batch's entries take 16 bytes of header each. */
    if (s.entries > n / 16 || ((s.damaged || s.cut) && s.damage_at > n)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scan(data, size);
    uint8_t *framed = malloc(size + 8);
    if (framed == NULL) {
        return 0;
    }
    memset(framed, 0, 8);
    framed[0] = 1;
    if (size > 0) {
        memcpy(framed + 8, data, size);
    }
    scan(framed, size + 8);
    free(framed);
    return 0;
}
