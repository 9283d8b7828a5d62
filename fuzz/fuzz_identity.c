/* libFuzzer target for the identity file (consensus/identity.h), which the
 * log reads from DATA/raft/cluster at every start: arbitrary text must be
 * refused or parse to fields that write back to text parsing to the very
 * same fields. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "consensus/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The log reads at most IDENTITY_TEXT_SIZE - 1 bytes and adds a NUL. */
    char text[IDENTITY_TEXT_SIZE];
    size_t n = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    struct identity who, again;
    if (identity_parse(text, &who) != 0) {
        return 0;
    }
    if (who.id == 0 || memchr(who.peer, '\0', sizeof who.peer) == NULL) {
        abort();
    }
    char out[IDENTITY_TEXT_SIZE];
    int len = identity_format(&who, out, sizeof out);
    if (len < 0 || (size_t)len >= sizeof out ||
        identity_parse(out, &again) != 0 ||
        memcmp(&who, &again, sizeof who) != 0) {
        abort();
    }
    return 0;
}
