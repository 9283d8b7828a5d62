/* Sealed event records for tests that build a ship's log by hand: an
 * EVENTS entry of events from..to of ship sid, each payload "value", each
 * chained to the one before through head (updated to the last record's
 * hash) and sealed under keys with a nonce of its number. Include after
 * cmocka.h. */
#ifndef BERTH_TEST_FX_EVENTS_H
#define BERTH_TEST_FX_EVENTS_H

#include <string.h>

#include "core/record.h"
#include "lib/buf.h"

/* Fill e (initialised here; the caller frees it) with the entry. */
static inline void fx_events_entry(struct buf *e, uint64_t sid, uint64_t from,
                                   uint64_t to, uint8_t *head,
                                   const struct seal_keys *keys)
{
    buf_init(e);
    assert_int_equal(record_events_begin(e), 0);
    for (uint64_t n = from; n <= to; n++) {
        uint8_t nonce[SEAL_NONCE_SIZE] = {(uint8_t)n};
        struct record_event ev = {.sid = sid, .number = n, .kind = 2};
        ev.payload = (const uint8_t *)"value";
        ev.payload_len = 5;
        memcpy(ev.prev_hash, head, RECORD_HASH_SIZE);
        struct buf r;
        buf_init(&r);
        assert_int_equal(record_encode_event(&r, &ev, keys, NULL, nonce), 0);
        record_hash(r.data, r.len, head);
        assert_int_equal(record_events_add(e, r.data, r.len), 0);
        buf_free(&r);
    }
}

#endif
