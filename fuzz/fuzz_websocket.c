/* libFuzzer target for the WebSocket reader (http/websocket.h): arbitrary
 * bytes, read frame by frame as a client's, must give messages, control
 * frames or a close code, never read past the end, never hand out more
 * than the limit, and never hand out text that is not UTF-8. The first
 * byte picks the limit. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/websocket.h"
#include "lib/mem.h"
#include "lib/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t max = (size_t)data[0] * 8;
    /* A copy the reader may unmask in place, sized exactly so that the
     * sanitizer sees a read past it. */
    uint8_t *in = mem_alloc(size - 1 ? size - 1 : 1);
    if (in == NULL) {
        return 0;
    }
    memcpy(in, data + 1, size - 1);
    struct ws_reader r;
    ws_reader_init(&r, max);
    size_t off = 0, n = size - 1;
    for (;;) {
        struct ws_item it;
        size_t used;
        int rv = ws_read(&r, in + off, n - off, &used, &it);
        if (rv == WS_READ_MORE || rv == WS_READ_ERROR) {
            if (rv == WS_READ_ERROR && it.code < 1000) {
                abort();
            }
            break;
        }
        if (used == 0 || used > n - off) {
            abort();
        }
        if (rv == WS_READ_ITEM) {
            if (it.opcode <= WS_OP_BINARY && it.len > max) {
                abort();
            }
            if (it.opcode == WS_OP_TEXT && !utf8_valid(it.data, it.len)) {
                abort();
            }
            if (it.opcode == WS_OP_CLOSE && it.code != WS_CLOSE_NO_STATUS &&
                !ws_close_code_valid(it.code)) {
                abort();
            }
            /* Touch every byte handed out. */
            volatile uint8_t sum = 0;
            for (size_t i = 0; i < it.len; i++) {
                sum ^= it.data[i];
            }
            (void)sum;
        }
        off += used;
    }
    ws_reader_free(&r);
    mem_free(in);
    return 0;
}
