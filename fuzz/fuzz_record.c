/* libFuzzer target for the log entry and event record decoders, and the
 * seals inside them: whatever a damaged or hostile log holds must decode
 * (or fail to open) to an error, never to a crash. */
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/account.h"
#include "core/record.h"
#include "core/sandbox.h"

/* Open everything openable in the input under a fixed key: a fuzzer cannot
 * forge a seal, so these must fail or find an unsealed one. */
static void fuzz__open(const uint8_t *data, size_t size,
                       const struct record_snapshot *snap,
                       const struct record_ship_batch *batch, bool is_batch)
{
    static const uint8_t master[SEAL_KEY_SIZE] = {9};
    struct seal_keys keys;
    struct buf plain;
    struct record_event ev;
    seal_keys_init(&keys, master, true);
    buf_init(&plain);
    if (record_open_event(data, size, &keys, NULL, &plain, &ev) == 0 &&
        ev.payload_len > 0 &&
        (ev.payload < data || ev.payload + ev.payload_len > data + size)) {
        abort(); /* opened, so unsealed: the payload is in the input */
    }
    plain.len = 0;
    if (snap != NULL) {
        record_open_snapshot(&plain, &keys, NULL, snap->sid, snap->number,
                             snap->epoch, snap->data, snap->len);
    }
    if (is_batch) {
        uint8_t secret[RECORD_SECRET_MAX], sk[64];
        for (uint32_t i = 0; i < batch->count && i < 4; i++) {
            size_t n = record_ship_batch_secret(batch, i, secret);
            if (n > sizeof secret) {
                abort();
            }
            record_ship_secret(&keys, secret, n, batch->public_keys + 32 * i,
                               sk);
        }
    }
    buf_free(&plain);
}

/* An effects item and every entry in it (core/record.h, "An event's
 * durable effects"), as the apply walks them. */
static void fuzz__effects(const uint8_t *data, size_t size)
{
    struct record_effects fx;
    if (record_decode_effects(data, size, &fx) != 0) {
        return;
    }
    size_t off = 0;
    const uint8_t *e;
    size_t n;
    while (record_effects_next(&fx, &off, &e, &n) == 0) {
        if (e < data || e + n > data + size) {
            abort();
        }
        struct record_destroy d;
        struct record_mail m;
        struct record_ship_batch b;
        record_decode_destroy(e, n, &d);
        record_decode_mail(e, n, &m);
        record_decode_ship_batch(e, n, &b);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t type;
    struct record_event ev;
    struct record_ship_new sn;
    struct record_snapshot snap;
    struct record_ship_batch batch;
    uint64_t sid;

    record_decode_event(data, size, &ev);
    if (record_entry_type(data, size, &type) != 0) {
        fuzz__open(data, size, NULL, NULL, false);
        return 0;
    }
    record_decode_ship_new(data, size, &sn);
    bool have_snap = record_decode_snapshot(data, size, &snap) == 0;
    record_decode_ship_remove(data, size, &sid);
    struct record_token tok;
    if (record_decode_token(data, size, &tok) == 0 &&
        (tok.name_len > size || (tok.name_len > 0 && tok.name == NULL))) {
        abort();
    }
    struct record_account acct;
    if (record_decode_account(data, size, &acct) == 0 &&
        (acct.name_len > size || (acct.name_len > 0 && acct.name == NULL) ||
         acct.op < ACCOUNT_OP_NEW || acct.op > ACCOUNT_OP_LIMIT ||
         (acct.caps_which & ~RECORD_ACCOUNT_CAPS_ALL) != 0 ||
         (acct.caps_which != 0 && acct.op != ACCOUNT_OP_LIMIT))) {
        abort();
    }
    size_t n_usage;
    if (record_decode_usage(data, size, &n_usage) == 0) {
        /* Every item a decoded USAGE entry counts lies inside it. */
        if (n_usage == 0 || 6 + n_usage * RECORD_USAGE_ITEM_SIZE != size) {
            abort();
        }
        struct record_usage_item it;
        record_usage_item(data, n_usage - 1, &it);
    }
    struct record_resize rs;
    if (record_decode_ship_resize(data, size, &rs) == 0 &&
        (rs.which & ~RECORD_RESIZE_ALL) != 0) {
        abort();
    }
    struct record_key_rotate kr;
    if (record_decode_key_rotate(data, size, &kr) == 0 &&
        (kr.count == 0 || kr.count > SEAL_KEYS_MAX)) {
        abort();
    }
    bool have_batch = record_decode_ship_batch(data, size, &batch) == 0;
    if (have_batch) {
        /* Every name a decoded batch can make must fit or be refused. */
        char name[64];
        for (uint32_t i = 0; i < batch.count && i < 16; i++) {
            record_ship_batch_name(&batch, i, name, sizeof name);
        }
    }
    fuzz__open(data, size, have_snap ? &snap : NULL, &batch, have_batch);
    size_t off = 0;
    const uint8_t *rec;
    size_t len;
    for (int i = 0; i < 100000; i++) {
        int rv = record_events_next(data, size, &off, &rec, &len);
        if (rv != 0) {
            break;
        }
        record_decode_event(rec, len, &ev);
        fuzz__effects(rec, len);
    }
    record_events_have_effects(data, size);
    fuzz__effects(data, size);
    struct record_destroy d;
    record_decode_destroy(data, size, &d);
    struct record_mail m;
    if (record_decode_mail(data, size, &m) == 0 &&
        (m.len > size || (m.len > 0 && m.body < data))) {
        abort();
    }
    struct sandbox sb;
    if (sandbox_decode(data, size, &sb) == 0 && sb.send_len > size) {
        abort();
    }
    return 0;
}
