/* libFuzzer target for the HTTP request parser: arbitrary bytes, fed in
 * two pieces split where the input says, must produce requests, "more" or a
 * clean error, never a crash or a leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "http/internal.h"

static void drain(struct http_parser *p)
{
    for (int i = 0; i < 1000; i++) {
        struct http_request *req = NULL;
        int status;
        const char *why;
        int rv = http_parser_feed(p, &req, &status, &why);
        if (rv == HTTP_PARSE_REQUEST) {
            http_request_free(req);
            continue;
        }
        if (rv == HTTP_PARSE_CONTINUE_100) {
            continue;
        }
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_parser p;
    if (size < 1 || http_parser_init(&p, 4096, 2048) != 0) {
        return 0;
    }
    size_t cut = data[0] % size;
    data++;
    size--;
    if (cut > size) {
        cut = size;
    }
    buf_append(&p.in, data, cut);
    drain(&p);
    buf_append(&p.in, data + cut, size - cut);
    drain(&p);
    http_parser_free(&p);
    return 0;
}
