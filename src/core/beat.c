#include "core/beat.h"

#include <string.h>

#include "lib/buf.h"
#include "lib/err.h"

/* The flags byte's bits. */
#define BEAT__LEADING 1

void beat_encode(const struct beat *b, uint8_t out[BEAT_SIZE])
{
    memset(out, 0, BEAT_SIZE);
    out[0] = BEAT_VERSION;
    out[1] = b->leading ? BEAT__LEADING : 0;
    put_le16(out + 2, b->front_port);
    put_le32(out + 4, b->load_milli);
    put_le64(out + 8, b->sent_ns);
    put_le64(out + 16, b->rss_bytes);
    put_le64(out + 24, b->programs);
    put_le64(out + 32, b->live);
    put_le64(out + 40, b->fds);
    put_le32(out + 48, b->cpus);
}

int beat_decode(const uint8_t *p, size_t len, struct beat *b)
{
    if (len < BEAT_SIZE || p[0] != BEAT_VERSION) {
        return BERTH_EMALFORMED;
    }
    b->leading = (p[1] & BEAT__LEADING) != 0;
    b->front_port = get_le16(p + 2);
    b->load_milli = get_le32(p + 4);
    b->sent_ns = get_le64(p + 8);
    b->rss_bytes = get_le64(p + 16);
    b->programs = get_le64(p + 24);
    b->live = get_le64(p + 32);
    b->fds = get_le64(p + 40);
    b->cpus = get_le32(p + 48);
    return 0;
}
