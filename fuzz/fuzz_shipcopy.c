/* libFuzzer target for a ship's copy as another host sends it
 * (store/shipcopy.h): whatever the bytes, installing them into a store
 * either keeps a copy that checks out or changes nothing, and never reads
 * or writes out of bounds. The store is SQLite in memory, made once. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/record.h"
#include "lib/err.h"
#include "store/apply.h"
#include "store/fsck.h"
#include "store/shipcopy.h"

static struct store *store;
static struct seal_keys keys;
static uint64_t sid;

/* A store with one ship whose log has two events. */
static void fuzz__setup(void)
{
    static const uint8_t master[SEAL_KEY_SIZE] = {4};
    char errmsg[ERRMSG_SIZE];
    if (store_open(&store, ":memory:", errmsg) != 0) {
        abort();
    }
    seal_keys_init(&keys, master, true);
    uint8_t seed[32], sk[64], pk[32], nonce[SEAL_NONCE_SIZE] = {1};
    struct record_ship_batch b = {.program = "/bin/kv",
                                  .program_len = 7,
                                  .first = 1,
                                  .count = 1,
                                  .public_keys = pk};
    memset(b.key, 7, sizeof b.key);
    record_ship_seed(b.key, 1, seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    struct buf e;
    int res;
    buf_init(&e);
    if (record_encode_ship_batch(&e, &b, &keys, nonce) != 0 ||
        store_apply_entry(store, 0, e.data, e.len, NULL, &res) != 0) {
        abort();
    }
    e.len = 0;
    sid = 1;
    uint8_t head[RECORD_HASH_SIZE] = {0};
    if (record_events_begin(&e) != 0) {
        abort();
    }
    for (uint64_t n = 1; n <= 2; n++) {
        struct record_event ev = {.sid = sid, .number = n, .kind = 2};
        memcpy(ev.prev_hash, head, sizeof head);
        struct buf r;
        buf_init(&r);
        if (record_encode_event(&r, &ev, &keys, NULL, nonce) != 0 ||
            record_events_add(&e, r.data, r.len) != 0) {
            abort();
        }
        record_hash(r.data, r.len, head);
        buf_free(&r);
    }
    if (store_apply_entry(store, 0, e.data, e.len, NULL, &res) != 0) {
        abort();
    }
    buf_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (store == NULL) {
        fuzz__setup();
    }
    char errmsg[ERRMSG_SIZE];
    uint8_t *p = malloc(size > 0 ? size : 1);
    if (p == NULL) {
        abort();
    }
    memcpy(p, data, size);
    int rv = shipcopy_install(store, &keys, sid, p, size, errmsg);
    struct fsck_result r;
    /* Kept only when right: the ship checks out whatever came. */
    if (fsck_ship(store, &keys, sid, &r) != 0 || (rv == 0 && !r.ok)) {
        abort();
    }
    free(p);
    return 0;
}
