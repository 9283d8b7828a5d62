/* libFuzzer target for the peer port's messages: arbitrary bytes are read
 * as a stream of requests (what a listener reads, the first of them being
 * a connection's handshake) and as a stream of replies (what a dialer
 * reads). Whatever decodes must lie inside the input and encode back to the
 * very same bytes; the input is also tried as a peer address, which is what
 * a JOIN request's body and a RAFT handshake's body hold. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "consensus/transport.h"
#include "lib/buf.h"
#include "lib/err.h"

/* A sink the compiler cannot drop, so that touching memory really reads it. */
static volatile uint8_t fuzz_sink;

/* Read every byte of p[0..n). */
static void touch(const uint8_t *p, size_t n)
{
    uint8_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x ^= p[i];
    }
    fuzz_sink = x;
}

/* Decode p[0..n) as a stream of requests (request true) or replies,
 * checking each message as it comes. */
static void fuzz_stream(const uint8_t *p, size_t n, bool request)
{
    size_t off = 0;
    bool first = true;
    struct buf out;
    buf_init(&out);
    while (off < n) {
        struct transport_message m;
        size_t used = 0;
        int rv = request ? transport_decode_request(p + off, n - off, &m, &used)
                         : transport_decode_reply(p + off, n - off, &m, &used);
        if (rv != 0) {
            if (rv != BERTH_EPARTIAL && rv != BERTH_EMALFORMED &&
                rv != BERTH_ETOOBIG) {
                abort();
            }
            break;
        }
        size_t head =
            request ? TRANSPORT_REQUEST_HEADER : TRANSPORT_REPLY_HEADER;
        if (used != head + m.len || used > n - off ||
            m.body != p + off + head) {
            abort();
        }
        touch(m.body, m.len);
        if (request && first && transport_check_handshake(&m)) {
            /* A handshake's body is an address with no NUL in it. */
            if (memchr(m.body, '\0', m.len) != NULL || m.len == 0) {
                abort();
            }
        }
        out.len = 0;
        rv = request ? transport_encode_request(&out, &m)
                     : transport_encode_reply(&out, &m);
        if (rv == 0 &&
            (out.len != used || memcmp(out.data, p + off, used) != 0)) {
            abort();
        }
        first = false;
        off += used;
    }
    buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_stream(data, size, true);
    fuzz_stream(data, size, false);
    /* A peer address as a JOIN request carries it: at most a handshake's
     * address, NUL-terminated here as the transport does. */
    if (size <= TRANSPORT_ADDRESS_MAX) {
        char address[TRANSPORT_ADDRESS_MAX + 1];
        struct sockaddr_storage ss;
        memcpy(address, data, size);
        address[size] = '\0';
        transport_parse_address(address, &ss);
    }
    return 0;
}
