/* libFuzzer target for the peer channel (crypto/channel.h), the first thing
 * a peer port reads from anyone who connects. The first byte picks what the
 * rest is fed to: a listener waiting for a hello (0), a dialer waiting for
 * an answer (1), or a listener whose handshake with a real dialer is done,
 * as records (2). Whatever the bytes, the channel must refuse them or open
 * them, never read or write out of bounds, and never let a peer without the
 * secret through the handshake. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto/channel.h"
#include "lib/err.h"

static const uint8_t secret[CHANNEL_SECRET_SIZE] = {1, 2, 3};

/* Feed a message from one side to the other, passing back what it
 * answers, until neither has more to say. */
static void fuzz__shake(struct channel *d, struct channel *l)
{
    struct buf a, b, plain;
    buf_init(&a);
    buf_init(&b);
    buf_init(&plain);
    if (channel_start(d, &a) != 0) {
        abort();
    }
    while (a.len > 0) {
        b.len = 0;
        if (channel_feed(l, a.data, a.len, &b, &plain) != 0) {
            abort();
        }
        a.len = 0;
        if (b.len > 0 && channel_feed(d, b.data, b.len, &a, &plain) != 0) {
            abort();
        }
    }
    if (!channel_ready(d) || !channel_ready(l) || plain.len != 0) {
        abort();
    }
    buf_free(&a);
    buf_free(&b);
    buf_free(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    struct channel d, l;
    struct buf out, plain;
    buf_init(&out);
    buf_init(&plain);
    channel_init(&d, secret, true);
    channel_init(&l, secret, false);
    /* A copy exactly as long as the input, so that a read past its end is
     * caught. */
    size_t n = size - 1;
    uint8_t *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        abort();
    }
    memcpy(p, data + 1, n);
    int rv;
    switch (data[0] % 3) {
    case 0:
        rv = channel_feed(&l, p, n, &out, &plain);
        /* The fuzzer cannot make a proof without the secret. */
        if (rv == 0 && channel_ready(&l)) {
            abort();
        }
        break;
    case 1:
        if (channel_start(&d, &out) != 0) {
            abort();
        }
        rv = channel_feed(&d, p, n, &out, &plain);
        if (rv == 0 && channel_ready(&d)) {
            abort();
        }
        break;
    default:
        fuzz__shake(&d, &l);
        rv = channel_feed(&l, p, n, &out, &plain);
        /* Records are sealed under keys the fuzzer does not have. */
        if (rv == 0 && plain.len != 0) {
            abort();
        }
        break;
    }
    (void)rv;
    free(p);
    buf_free(&out);
    buf_free(&plain);
    channel_wipe(&d);
    channel_wipe(&l);
    return 0;
}
