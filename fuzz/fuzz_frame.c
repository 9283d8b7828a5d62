/* libFuzzer target for the frame codec: split frames from arbitrary bytes
 * and run every decoder and walker on each, as the host does on a
 * program's output. */
#include <stddef.h>
#include <stdint.h>

#include "proto/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        struct frame f;
        size_t used;
        if (frame_split(data + off, size - off, 1 << 20, &f, &used) != 0) {
            break;
        }
        off += used;
        struct frame_boot boot;
        struct frame_event ev;
        struct frame_done done;
        struct frame_reject rej;
        struct frame_snapshot snap;
        uint64_t n;
        bool accepted;
        frame_decode_boot(&f, &boot);
        frame_decode_snap_req(&f, &n);
        frame_decode_ready(&f, &accepted);
        frame_decode_reject(&f, &rej);
        frame_decode_snapshot(&f, &snap);
        if (frame_decode_done(&f, &done) == 0) {
            size_t eo = 0;
            struct frame_effect e;
            while (frame_effects_next(&done, &eo, &e) == 0) {
                struct frame_http_reply r;
                frame_decode_http_reply(e.data, e.len, &r);
            }
        }
        if (frame_decode_event(&f, &ev) == 0) {
            struct frame_http_request r;
            if (frame_decode_http_request(ev.payload, ev.payload_len, &r) ==
                0) {
                size_t ho = 0;
                struct frame_header h;
                while (frame_http_next_header(&r, &ho, &h) == 0) {
                }
            }
        }
    }
    return 0;
}
