/* libFuzzer target for the codec of forwarded HTTP requests and answers:
 * arbitrary bytes must decode or fail cleanly, never read past the end,
 * and whatever decodes must encode back to the very same bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/forward.h"
#include "lib/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_forward_request r;
    struct http_forward_answer a;
    struct buf b;
    buf_init(&b);
    if (http_forward_decode_request(data, size, &r) == 0) {
        if (http_forward_encode_request(&b, &r) != 0 || b.len != size ||
            memcmp(b.data, data, size) != 0) {
            abort();
        }
    }
    buf_free(&b);
    if (http_forward_decode_answer(data, size, &a) == 0) {
        /* Decoded text holds no NUL, so it round-trips as C strings. */
        char ct[HTTP_FORWARD_MAX_CONTENT_TYPE + 1];
        char extra[HTTP_FORWARD_MAX_EXTRA + 1];
        snprintf(ct, sizeof ct, "%.*s", (int)a.content_type_len,
                 a.content_type);
        snprintf(extra, sizeof extra, "%.*s", (int)a.extra_len, a.extra);
        if (http_forward_encode_answer(&b, a.status, ct, extra, a.body,
                                       a.body_len) != 0 ||
            b.len != size || memcmp(b.data, data, size) != 0) {
            abort();
        }
    }
    buf_free(&b);
    return 0;
}
