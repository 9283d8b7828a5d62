/* misbehave: a program that fails on request, to test that the host
 * survives it. POST /crash aborts, /exit exits 3, /hang never answers,
 * /garbage writes a malformed frame, /huge declares a 100 MiB frame,
 * /slow/<ms> sleeps then answers, /reject rejects, /count adds one to a
 * counter (a write); GET / reads the counter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "berth_program.h"

static int on_event(void *ctx, const struct bp_event *ev, struct bp_out *out)
{
    unsigned long *count = ctx;
    const struct bp_http *h = ev->http;
    char body[32];
    if (h == NULL) {
        return bp_reject(out, "only HTTP");
    }
    if (bp_http_match(h, "POST", "/crash")) {
        abort();
    }
    if (bp_http_match(h, "POST", "/exit")) {
        exit(3);
    }
    if (bp_http_match(h, "POST", "/hang")) {
        for (;;) {
            pause();
        }
    }
    if (bp_http_match(h, "POST", "/garbage")) {
        static const unsigned char junk[] = {1, 0, 0, 0, 0x99};
        if (write(1, junk, sizeof junk) < 0) {
            exit(1);
        }
        for (;;) {
            pause();
        }
    }
    if (bp_http_match(h, "POST", "/huge")) {
        static const unsigned char big[] = {0, 0, 0x40, 6, 0x82};
        if (write(1, big, sizeof big) < 0) {
            exit(1);
        }
        for (;;) {
            pause();
        }
    }
    if (bp_http_match(h, "POST", "/slow/")) {
        long ms = atol(h->target + 6);
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
        nanosleep(&ts, NULL);
        bp_reply(out, 200, "text/plain", "slow\n", 5);
        return BP_UNCHANGED;
    }
    if (bp_http_match(h, "POST", "/reject")) {
        return bp_reject(out, "asked to reject");
    }
    if (bp_http_match(h, "POST", "/count")) {
        (*count)++;
        int n = snprintf(body, sizeof body, "%lu\n", *count);
        bp_reply(out, 200, "text/plain", body, (size_t)n);
        return BP_CHANGED;
    }
    int n = snprintf(body, sizeof body, "%lu\n", *count);
    bp_reply(out, 200, "text/plain", body, (size_t)n);
    return BP_UNCHANGED;
}

static int on_boot(void *ctx, const uint8_t *snap, size_t len)
{
    unsigned long *count = ctx;
    if (snap == NULL) {
        return 0;
    }
    if (len != sizeof *count) {
        return -1;
    }
    memcpy(count, snap, len);
    return 0;
}

static int on_snapshot(void *ctx, struct bp_bytes *out)
{
    return bp_bytes_append(out, ctx, sizeof(unsigned long));
}

int main(void)
{
    unsigned long count = 0;
    struct bp_program p = {on_boot, on_event, on_snapshot, &count};
    return bp_run(&p);
}
