#include "core/record.h"

#include "core/account.h"

#include "core/gate.h"
#include "core/sandbox.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "crypto/keywrap.h"
#include "lib/err.h"
#include "lib/strlist.h"

#define RECORD__ENTRY_VERSION 1

/* Write the readable head of rec, the seal's associated data, to p
 * (RECORD_HEAD_SIZE bytes). */
static void record__event_head(const struct record_event *rec, uint8_t *p)
{
    p[0] = RECORD_VERSION;
    put_le64(p + 1, rec->sid);
    put_le64(p + 9, rec->number);
    p[17] = rec->kind;
    memcpy(p + 18, rec->prev_hash, RECORD_HASH_SIZE);
    put_le64(p + 18 + RECORD_HASH_SIZE, rec->alarm_ns);
}

int record_encode_event(struct buf *out, const struct record_event *rec,
                        const struct seal_keys *keys, const uint8_t *own,
                        const uint8_t *nonce)
{
    size_t inner = 8 + sizeof rec->entropy + rec->payload_len;
    int rv = buf_reserve(out, RECORD_HEAD_SIZE + seal_size(keys, inner));
    if (rv != 0) {
        return rv;
    }
    uint8_t head[RECORD_HEAD_SIZE];
    record__event_head(rec, head);
    /* The inner part is built apart and sealed into out. */
    struct buf tmp;
    buf_init(&tmp);
    if ((rv = buf_reserve(&tmp, inner)) != 0) {
        return rv;
    }
    buf_put_u64(&tmp, rec->time_ns);
    buf_append(&tmp, rec->entropy, sizeof rec->entropy);
    buf_append(&tmp, rec->payload, rec->payload_len);
    buf_append(out, head, sizeof head);
    rv = seal_put(out, keys, SEAL_USE_SHIP, rec->sid, own, nonce, head,
                  sizeof head, tmp.data, tmp.len);
    sodium_memzero(tmp.data, tmp.len);
    buf_free(&tmp);
    return rv;
}

/* Decode the inner part of a version 3 record (time, entropy, payload)
 * from p (len bytes) into rec. */
static int record__event_inner(const uint8_t *p, size_t len,
                               struct record_event *rec)
{
    struct cursor c;
    cursor_init(&c, p, len);
    rec->time_ns = cursor_u64(&c);
    const uint8_t *entropy = cursor_bytes(&c, sizeof rec->entropy);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(rec->entropy, entropy, sizeof rec->entropy);
    rec->payload_len = cursor_left(&c);
    rec->payload = cursor_bytes(&c, rec->payload_len);
    rec->sealed = false;
    return 0;
}

/* Decode a record written before sealing (versions 1 and 2). */
static int record__decode_old(uint8_t version, struct cursor *c,
                              struct record_event *rec)
{
    rec->sid = cursor_u64(c);
    rec->number = cursor_u64(c);
    rec->time_ns = cursor_u64(c);
    const uint8_t *entropy = cursor_bytes(c, sizeof rec->entropy);
    rec->kind = cursor_u8(c);
    const uint8_t *prev = cursor_bytes(c, sizeof rec->prev_hash);
    /* Version 1 records predate alarms: no ship had one. */
    rec->alarm_ns = version == 1 ? 0 : cursor_u64(c);
    uint32_t n = cursor_u32(c);
    rec->payload = cursor_bytes(c, n);
    rec->payload_len = n;
    rec->sealed = false;
    if (c->err != 0 || cursor_left(c) != 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(rec->entropy, entropy, sizeof rec->entropy);
    memcpy(rec->prev_hash, prev, sizeof rec->prev_hash);
    return 0;
}

int record_decode_event(const uint8_t *p, size_t len, struct record_event *rec)
{
    struct cursor c;
    cursor_init(&c, p, len);
    uint8_t version = cursor_u8(&c);
    if (version == 1 || version == 2) {
        return record__decode_old(version, &c, rec);
    }
    if (version != RECORD_VERSION || len < RECORD_HEAD_SIZE + 4) {
        return BERTH_EMALFORMED;
    }
    rec->sid = get_le64(p + 1);
    rec->number = get_le64(p + 9);
    rec->kind = p[17];
    memcpy(rec->prev_hash, p + 18, RECORD_HASH_SIZE);
    rec->alarm_ns = get_le64(p + 18 + RECORD_HASH_SIZE);
    const uint8_t *seal = p + RECORD_HEAD_SIZE;
    size_t seal_len = len - RECORD_HEAD_SIZE;
    if (seal_key_id(seal, seal_len) == 0) {
        return record__event_inner(seal + 4, seal_len - 4, rec);
    }
    if (seal_len < SEAL_OVERHEAD + 8 + sizeof rec->entropy) {
        return BERTH_EMALFORMED;
    }
    rec->time_ns = 0;
    memset(rec->entropy, 0, sizeof rec->entropy);
    rec->payload = NULL;
    rec->payload_len = 0;
    rec->sealed = true;
    return 0;
}

int record_open_event(const uint8_t *p, size_t len,
                      const struct seal_keys *keys, const uint8_t *own,
                      struct buf *plain, struct record_event *rec)
{
    int rv = record_decode_event(p, len, rec);
    if (rv != 0 || !rec->sealed) {
        return rv;
    }
    plain->len = 0;
    rv = seal_open(plain, keys, SEAL_USE_SHIP, rec->sid, own, p,
                   RECORD_HEAD_SIZE, p + RECORD_HEAD_SIZE,
                   len - RECORD_HEAD_SIZE);
    return rv != 0 ? rv : record__event_inner(plain->data, plain->len, rec);
}

void record_hash(const uint8_t *p, size_t len, uint8_t *out)
{
    crypto_generichash(out, RECORD_HASH_SIZE, p, len, NULL, 0);
}

void record_snapshot_sum(uint64_t sid, uint64_t number, const uint8_t *epoch,
                         const uint8_t *chain, bool sealed, const uint8_t *data,
                         size_t len, uint8_t *out)
{
    /* A label, then the fixed-size identity, then the bytes: no two
     * different inputs make the same hashed string. */
    const char *label = sealed ? "berth snapshot s" : "berth snapshot 1";
    uint8_t head[8 + 8 + 2 * RECORD_HASH_SIZE];
    crypto_generichash_state st;
    put_le64(head, sid);
    put_le64(head + 8, number);
    memcpy(head + 16, epoch, RECORD_HASH_SIZE);
    memcpy(head + 16 + RECORD_HASH_SIZE, chain, RECORD_HASH_SIZE);
    crypto_generichash_init(&st, NULL, 0, RECORD_HASH_SIZE);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
    crypto_generichash_update(&st, head, sizeof head);
    crypto_generichash_update(&st, data, len);
    crypto_generichash_final(&st, out, RECORD_HASH_SIZE);
}

static int record__begin(struct buf *out, uint8_t type)
{
    int rv = buf_put_u8(out, RECORD__ENTRY_VERSION);
    return rv != 0 ? rv : buf_put_u8(out, type);
}

static int record__put_str(struct buf *out, const char *s)
{
    size_t n = strlen(s);
    int rv = buf_put_u16(out, (uint16_t)n);
    return rv != 0 ? rv : buf_append(out, s, n);
}

int record_encode_ship_new(struct buf *out, const struct record_ship_new *s)
{
    int rv;
    if ((rv = record__begin(out, RECORD_ENTRY_SHIP_NEW)) != 0 ||
        (rv = record__put_str(out, s->id)) != 0 ||
        (rv = record__put_str(out, s->name)) != 0 ||
        (rv = record__put_str(out, s->program)) != 0 ||
        (rv = buf_put_u64(out, s->created_ns)) != 0 ||
        (rv = buf_put_u64(out, s->idle_timeout_ms)) != 0 ||
        (rv = buf_append(out, s->public_key, sizeof s->public_key)) != 0 ||
        (rv = buf_append(out, s->secret_key, sizeof s->secret_key)) != 0) {
        return rv;
    }
    return 0;
}

/* Write the associated data of ship sid's snapshot at number, made by the
 * program of epoch, to ad (RECORD__SNAP_AD bytes). */
#define RECORD__SNAP_AD (4 + 8 + 8 + RECORD_HASH_SIZE)
static void record__snapshot_ad(uint64_t sid, uint64_t number,
                                const uint8_t *epoch, uint8_t *ad)
{
    memcpy(ad, "snap", 4);
    put_le64(ad + 4, sid);
    put_le64(ad + 12, number);
    memcpy(ad + 20, epoch, RECORD_HASH_SIZE);
}

int record_encode_snapshot(struct buf *out, const struct record_snapshot *s,
                           const struct seal_keys *keys, const uint8_t *own,
                           const uint8_t *nonce)
{
    uint8_t ad[RECORD__SNAP_AD];
    int rv;
    record__snapshot_ad(s->sid, s->number, s->epoch, ad);
    if ((rv = buf_reserve(out, 2 + 16 + sizeof s->epoch +
                                   seal_size(keys, s->len))) != 0 ||
        (rv = record__begin(out, RECORD_ENTRY_SNAPSHOT_SEALED)) != 0 ||
        (rv = buf_put_u64(out, s->sid)) != 0 ||
        (rv = buf_put_u64(out, s->number)) != 0 ||
        (rv = buf_append(out, s->epoch, sizeof s->epoch)) != 0) {
        return rv;
    }
    return seal_put(out, keys, SEAL_USE_SHIP, s->sid, own, nonce, ad, sizeof ad,
                    s->data, s->len);
}

int record_open_snapshot(struct buf *out, const struct seal_keys *keys,
                         const uint8_t *own, uint64_t sid, uint64_t number,
                         const uint8_t *epoch, const uint8_t *p, size_t len)
{
    uint8_t ad[RECORD__SNAP_AD];
    record__snapshot_ad(sid, number, epoch, ad);
    return seal_open(out, keys, SEAL_USE_SHIP, sid, own, ad, sizeof ad, p, len);
}

int record_encode_ship_remove(struct buf *out, uint64_t sid)
{
    int rv = record__begin(out, RECORD_ENTRY_SHIP_REMOVE);
    return rv != 0 ? rv : buf_put_u64(out, sid);
}

int record_events_begin(struct buf *out)
{
    int rv = record__begin(out, RECORD_ENTRY_EVENTS);
    return rv != 0 ? rv : buf_put_u32(out, 0);
}

void record_events_cut(struct buf *out, size_t mark, uint32_t count)
{
    out->len = mark;
    if (mark >= 6) {
        put_le32(out->data + 2, count);
    }
}

uint32_t record_events_count(const struct buf *out)
{
    return out->len >= 6 ? get_le32(out->data + 2) : 0;
}

int record_events_add(struct buf *out, const uint8_t *rec, size_t len)
{
    int rv = buf_reserve(out, 4 + len);
    if (rv != 0) {
        return rv;
    }
    buf_put_u32(out, (uint32_t)len);
    buf_append(out, rec, len);
    put_le32(out->data + 2, record_events_count(out) + 1);
    return 0;
}

int record_entry_type(const uint8_t *p, size_t len, uint8_t *type)
{
    if (len < 2 || p[0] != RECORD__ENTRY_VERSION) {
        return BERTH_EMALFORMED;
    }
    *type = p[1];
    return 0;
}

static const char *record__get_str(struct cursor *c, size_t *len)
{
    *len = cursor_u16(c);
    return (const char *)cursor_bytes(c, *len);
}

static int record__open(const uint8_t *p, size_t len, uint8_t type,
                        struct cursor *c)
{
    uint8_t t;
    if (record_entry_type(p, len, &t) != 0 || t != type) {
        return BERTH_EMALFORMED;
    }
    cursor_init(c, p + 2, len - 2);
    return 0;
}

/* The associated data of a batch key's seal: a label. The seal needs no
 * more, since a batch key moved to another ship's row derives a key pair
 * whose public key is not that ship's (record_ship_secret). */
static const char record__batch_ad[] = "berth batch key";

/* The associated data of a ship's seed's seal: a label and the ship's
 * public key, so that a seal moved to another ship does not open. */
#define RECORD__SEED_AD (16 + 32)
static void record__seed_ad(const uint8_t *public_key, uint8_t *ad)
{
    memcpy(ad, "berth ship seed", 16);
    memcpy(ad + 16, public_key, 32);
}

/* Append the seals of b's count seeds to out, ship i's nonce derived from
 * nonce and i: a nonce of its own for every seal, from one draw. */
static int record__put_seeds(struct buf *out, const struct record_ship_batch *b,
                             const struct seal_keys *keys, const uint8_t *nonce)
{
    int rv = 0;
    for (uint32_t i = 0; i < b->count && rv == 0; i++) {
        uint8_t ad[RECORD__SEED_AD], n[SEAL_NONCE_SIZE], place[4];
        put_le32(place, i);
        crypto_generichash(n, sizeof n, place, sizeof place, nonce,
                           SEAL_NONCE_SIZE);
        record__seed_ad(b->public_keys + (size_t)i * 32, ad);
        rv = b->parent_own != NULL
                 ? seal_put(out, keys, SEAL_USE_SHIP, b->parent, b->parent_own,
                            n, ad, sizeof ad, b->seeds + (size_t)i * 32, 32)
                 : seal_put(out, keys, SEAL_USE_BATCH, 0, NULL, n, ad,
                            sizeof ad, b->seeds + (size_t)i * 32, 32);
    }
    return rv;
}

int record_encode_ship_batch(struct buf *out, const struct record_ship_batch *b,
                             const struct seal_keys *keys, const uint8_t *nonce)
{
    int rv;
    if (b->program_len > UINT16_MAX || b->name_len > UINT16_MAX ||
        b->args_len > RECORD_LIST_MAX || b->env_len > RECORD_LIST_MAX ||
        b->access_len > RECORD_LIST_MAX || b->sandbox_len > RECORD_LIST_MAX) {
        return BERTH_ETOOBIG;
    }
    bool lists = b->args_len > 0 || b->env_len > 0;
    uint8_t flags =
        (uint8_t)((b->flags & ~(RECORD_BATCH_ARGS | RECORD_BATCH_ACCOUNT |
                                RECORD_BATCH_PARENT | RECORD_BATCH_ACCESS |
                                RECORD_BATCH_SANDBOX)) |
                  (b->sandbox_len > 0 ? RECORD_BATCH_SANDBOX : 0) |
                  (b->access_len > 0 ? RECORD_BATCH_ACCESS : 0) |
                  (lists ? RECORD_BATCH_ARGS : 0) |
                  (b->account != 0 ? RECORD_BATCH_ACCOUNT : 0) |
                  (b->parent != 0 ? RECORD_BATCH_PARENT : 0) |
                  RECORD_BATCH_SEALED);
    uint8_t type =
        b->seeds != NULL ? RECORD_ENTRY_SHIP_SEEDS : RECORD_ENTRY_SHIP_BATCH;
    if ((rv = record__begin(out, type)) != 0 ||
        (rv = buf_put_u16(out, (uint16_t)b->program_len)) != 0 ||
        (rv = buf_append(out, b->program, b->program_len)) != 0 ||
        (rv = buf_put_u16(out, (uint16_t)b->name_len)) != 0 ||
        (rv = buf_append(out, b->name, b->name_len)) != 0 ||
        (rv = buf_put_u8(out, flags)) != 0 ||
        (rv = buf_put_u64(out, b->created_ns)) != 0 ||
        (rv = buf_put_u64(out, b->idle_timeout_ms)) != 0 ||
        (rv = buf_put_u64(out, b->freeze_timeout_ms)) != 0) {
        return rv;
    }
    if ((flags & RECORD_BATCH_ACKS) && (rv = buf_put_u8(out, b->acks)) != 0) {
        return rv;
    }
    if ((flags & RECORD_BATCH_ACCOUNT) &&
        (rv = buf_put_u64(out, b->account)) != 0) {
        return rv;
    }
    if ((flags & RECORD_BATCH_PARENT) &&
        ((rv = buf_put_u64(out, b->parent)) != 0 ||
         (rv = buf_put_u8(out, b->lifetime)) != 0 ||
         (rv = buf_put_u64(out, b->lifetime_ms)) != 0 ||
         (rv = buf_put_u32(out, b->tag)) != 0)) {
        return rv;
    }
    if ((flags & RECORD_BATCH_ACCESS) &&
        ((rv = buf_put_u32(out, (uint32_t)b->access_len)) != 0 ||
         (rv = buf_append(out, b->access, b->access_len)) != 0)) {
        return rv;
    }
    if ((flags & RECORD_BATCH_SANDBOX) &&
        ((rv = buf_put_u32(out, (uint32_t)b->sandbox_len)) != 0 ||
         (rv = buf_append(out, b->sandbox, b->sandbox_len)) != 0)) {
        return rv;
    }
    if (lists && ((rv = buf_put_u32(out, (uint32_t)b->args_len)) != 0 ||
                  (rv = buf_append(out, b->args, b->args_len)) != 0 ||
                  (rv = buf_put_u32(out, (uint32_t)b->env_len)) != 0 ||
                  (rv = buf_append(out, b->env, b->env_len)) != 0)) {
        return rv;
    }
    if ((rv = buf_put_u32(out, b->first)) != 0 ||
        (rv = buf_put_u32(out, b->count)) != 0) {
        return rv;
    }
    if (b->seeds != NULL && b->parent_own != NULL && b->parent == 0) {
        return BERTH_EINVAL; /* only a child has a parent's key */
    }
    if (b->seeds != NULL) {
        rv = buf_put_u8(out, b->parent_own != NULL ? 1 : 0);
        if (rv == 0) {
            rv = record__put_seeds(out, b, keys, nonce);
        }
    } else {
        rv = seal_put(out, keys, SEAL_USE_BATCH, 0, NULL, nonce,
                      (const uint8_t *)record__batch_ad,
                      sizeof record__batch_ad, b->key, sizeof b->key);
    }
    return rv != 0 ? rv
                   : buf_append(out, b->public_keys, (size_t)b->count * 32);
}

int record_decode_ship_batch(const uint8_t *p, size_t len,
                             struct record_ship_batch *b)
{
    struct cursor c;
    uint8_t type;
    if (record_entry_type(p, len, &type) != 0 ||
        (type != RECORD_ENTRY_SHIP_BATCH && type != RECORD_ENTRY_SHIP_SEEDS) ||
        record__open(p, len, type, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    b->program = record__get_str(&c, &b->program_len);
    b->name = record__get_str(&c, &b->name_len);
    b->flags = cursor_u8(&c);
    b->created_ns = cursor_u64(&c);
    b->idle_timeout_ms = cursor_u64(&c);
    b->freeze_timeout_ms = cursor_u64(&c);
    b->acks = GATE_ACKS_DEFAULT;
    if (b->flags & RECORD_BATCH_ACKS) {
        b->acks = cursor_u8(&c);
        if (b->acks > GATE_ACKS_MAX && b->acks != GATE_ACKS_QUORUM &&
            b->acks != GATE_ACKS_ALL && b->acks != GATE_ACKS_DEFAULT) {
            return BERTH_EMALFORMED;
        }
    }
    b->account = 0;
    if (b->flags & RECORD_BATCH_ACCOUNT) {
        b->account = cursor_u64(&c);
    }
    b->parent = b->lifetime_ms = 0;
    b->lifetime = 0;
    b->tag = 0;
    if (b->flags & RECORD_BATCH_PARENT) {
        b->parent = cursor_u64(&c);
        b->lifetime = cursor_u8(&c);
        b->lifetime_ms = cursor_u64(&c);
        b->tag = cursor_u32(&c);
        if (c.err == 0 && b->parent == 0) {
            return BERTH_EMALFORMED;
        }
    }
    b->access = NULL;
    b->access_len = 0;
    if (b->flags & RECORD_BATCH_ACCESS) {
        b->access_len = cursor_u32(&c);
        b->access = (const char *)cursor_bytes(&c, b->access_len);
        if (c.err == 0 && strlist_count(b->access, b->access_len) < 0) {
            return BERTH_EMALFORMED;
        }
    }
    b->sandbox = NULL;
    b->sandbox_len = 0;
    if (b->flags & RECORD_BATCH_SANDBOX) {
        struct sandbox sb;
        b->sandbox_len = cursor_u32(&c);
        b->sandbox = cursor_bytes(&c, b->sandbox_len);
        if (c.err == 0 && sandbox_decode(b->sandbox, b->sandbox_len, &sb)) {
            return BERTH_EMALFORMED;
        }
    }
    b->args = b->env = NULL;
    b->args_len = b->env_len = 0;
    if (b->flags & RECORD_BATCH_ARGS) {
        b->args_len = cursor_u32(&c);
        b->args = (const char *)cursor_bytes(&c, b->args_len);
        b->env_len = cursor_u32(&c);
        b->env = (const char *)cursor_bytes(&c, b->env_len);
        if (c.err == 0 && (strlist_count(b->args, b->args_len) < 0 ||
                           strlist_count(b->env, b->env_len) < 0)) {
            return BERTH_EMALFORMED;
        }
    }
    b->first = cursor_u32(&c);
    b->count = cursor_u32(&c);
    memset(b->key, 0, sizeof b->key);
    b->key_seal = NULL;
    b->key_seal_len = 0;
    b->seeds = b->seed_seals = b->parent_own = NULL;
    b->seed_seal_len = 0;
    b->in_parent = false;
    if (type == RECORD_ENTRY_SHIP_SEEDS) {
        uint8_t under = cursor_u8(&c);
        if (under > 1 || (under == 1 && b->parent == 0)) {
            return BERTH_EMALFORMED;
        }
        b->in_parent = under == 1;
        /* count seals of one size, which follows from the first's key id
         * (one encoder made them all, under one key). */
        const uint8_t *id =
            c.err == 0 && cursor_left(&c) >= 4 ? c.p + c.off : NULL;
        if (id == NULL || b->count == 0 || !(b->flags & RECORD_BATCH_SEALED)) {
            return BERTH_EMALFORMED;
        }
        size_t n =
            (get_le32(id) == 0 ? SEAL_PLAIN_OVERHEAD : SEAL_OVERHEAD) + 32;
        if (cursor_left(&c) / n < b->count) {
            return BERTH_EMALFORMED;
        }
        b->seed_seals = cursor_bytes(&c, n * b->count);
        b->seed_seal_len = n;
        for (uint32_t i = 0; c.err == 0 && i < b->count; i++) {
            if (get_le32(b->seed_seals + n * i) != get_le32(id)) {
                return BERTH_EMALFORMED;
            }
        }
    } else if (b->flags & RECORD_BATCH_SEALED) {
        /* The seal's size follows from its key id. */
        const uint8_t *id =
            c.err == 0 && cursor_left(&c) >= 4 ? c.p + c.off : NULL;
        size_t n = id == NULL          ? 0
                   : get_le32(id) == 0 ? SEAL_PLAIN_OVERHEAD + sizeof b->key
                                       : SEAL_OVERHEAD + sizeof b->key;
        b->key_seal = cursor_bytes(&c, n);
        b->key_seal_len = n;
        if (id == NULL) {
            return BERTH_EMALFORMED;
        }
    } else {
        const uint8_t *key = cursor_bytes(&c, sizeof b->key);
        if (c.err == 0) {
            memcpy(b->key, key, sizeof b->key);
        }
    }
    if (c.err != 0 || cursor_left(&c) != (size_t)b->count * 32) {
        return BERTH_EMALFORMED;
    }
    b->public_keys = cursor_bytes(&c, (size_t)b->count * 32);
    return 0;
}

size_t record_ship_batch_secret(const struct record_ship_batch *b, uint32_t i,
                                uint8_t *out)
{
    if (b->seed_seals != NULL) {
        put_le32(out, b->in_parent ? RECORD_SECRET_PARENT : RECORD_SECRET_OWN);
        memcpy(out + 4, b->seed_seals + b->seed_seal_len * i, b->seed_seal_len);
        return 4 + b->seed_seal_len;
    }
    if (b->key_seal == NULL) {
        /* libsodium's secret key is the seed followed by the public key. */
        record_ship_seed(b->key, b->first + i, out);
        memcpy(out + 32, b->public_keys + (size_t)i * 32, 32);
        return 64;
    }
    put_le32(out, b->first + i);
    memcpy(out + 4, b->key_seal, b->key_seal_len);
    return 4 + b->key_seal_len;
}

size_t record_ship_own_secret(const struct seal_keys *keys, const uint8_t *seed,
                              const uint8_t *public_key, const uint8_t *nonce,
                              uint8_t *out)
{
    uint8_t ad[RECORD__SEED_AD];
    struct buf b;
    buf_init(&b);
    record__seed_ad(public_key, ad);
    size_t n = 0;
    if (seal_put(&b, keys, SEAL_USE_BATCH, 0, NULL, nonce, ad, sizeof ad, seed,
                 32) == 0 &&
        4 + b.len <= RECORD_SECRET_MAX) {
        put_le32(out, RECORD_SECRET_OWN);
        memcpy(out + 4, b.data, b.len);
        n = 4 + b.len;
    }
    buf_free(&b);
    return n;
}

bool record_ship_secret_in_parent(const uint8_t *secret, size_t len)
{
    return len >= 4 && len != 64 && get_le32(secret) == RECORD_SECRET_PARENT;
}

int record_ship_open(const struct seal_keys *keys, const uint8_t *secret,
                     size_t len, const uint8_t *public_key, uint64_t parent,
                     const uint8_t *parent_own, uint8_t *sk, uint8_t *own,
                     bool *has_own)
{
    uint8_t seed[32], pk[32], tmp[64];
    struct buf key;
    int rv;
    *has_own = false;
    if (len == 64) {
        if (sk == NULL) {
            return 0;
        }
        memcpy(sk, secret, 64);
        return memcmp(sk + 32, public_key, 32) == 0 ? 0 : BERTH_ECORRUPT;
    }
    if (len < 4 + SEAL_PLAIN_OVERHEAD) {
        return BERTH_EMALFORMED;
    }
    uint32_t index = get_le32(secret);
    bool in_parent = index == RECORD_SECRET_PARENT;
    bool seeded = in_parent || index == RECORD_SECRET_OWN;
    if (in_parent && parent_own == NULL) {
        return BERTH_EINVAL;
    }
    uint8_t ad[RECORD__SEED_AD];
    record__seed_ad(public_key, ad);
    buf_init(&key);
    if (in_parent) {
        rv = seal_open(&key, keys, SEAL_USE_SHIP, parent, parent_own, ad,
                       sizeof ad, secret + 4, len - 4);
    } else if (seeded) {
        rv = seal_open(&key, keys, SEAL_USE_BATCH, 0, NULL, ad, sizeof ad,
                       secret + 4, len - 4);
    } else {
        rv = seal_open(&key, keys, SEAL_USE_BATCH, 0, NULL,
                       (const uint8_t *)record__batch_ad,
                       sizeof record__batch_ad, secret + 4, len - 4);
    }
    if (rv == 0 && key.len != 32) {
        rv = BERTH_EMALFORMED;
    }
    if (rv == 0) {
        if (seeded) {
            memcpy(seed, key.data, sizeof seed);
            seal_own_key(seed, own);
            *has_own = true;
        } else {
            record_ship_seed(key.data, index, seed);
        }
    }
    /* A seed's seal names the public key, so a seal that opens is this
     * ship's; a batch key's does not, and its key pair must be made and
     * compared. Making one costs a scalar multiplication: only when the
     * signing key is wanted or nothing else vouches for it. */
    if (rv == 0 && (sk != NULL || !seeded)) {
        uint8_t *out = sk != NULL ? sk : tmp;
        crypto_sign_seed_keypair(pk, out, seed);
        if (memcmp(pk, public_key, 32) != 0) {
            sodium_memzero(out, 64);
            *has_own = false;
            rv = BERTH_ECORRUPT;
        }
        sodium_memzero(tmp, sizeof tmp);
    }
    sodium_memzero(seed, sizeof seed);
    if (key.data != NULL) {
        sodium_memzero(key.data, key.len);
    }
    buf_free(&key);
    return rv;
}

int record_ship_secret(const struct seal_keys *keys, const uint8_t *secret,
                       size_t len, const uint8_t *public_key, uint8_t *sk)
{
    uint8_t own[SEAL_OWN_KEY_SIZE];
    bool has_own;
    int rv = record_ship_open(keys, secret, len, public_key, 0, NULL, sk, own,
                              &has_own);
    sodium_memzero(own, sizeof own);
    return rv;
}

int record_ship_own_key(const struct seal_keys *keys, const uint8_t *secret,
                        size_t len, const uint8_t *public_key, uint8_t *own)
{
    if (len < 4 || len == 64 ||
        (get_le32(secret) != RECORD_SECRET_OWN &&
         get_le32(secret) != RECORD_SECRET_PARENT)) {
        return BERTH_ENOTFOUND; /* made from a batch key: none */
    }
    bool has_own;
    return record_ship_open(keys, secret, len, public_key, 0, NULL, NULL, own,
                            &has_own);
}

void record_ship_seed(const uint8_t *key, uint32_t index, uint8_t *seed)
{
    /* BLAKE2b keyed with the batch key: one seed per index, none of which
     * reveals the key or another seed. */
    crypto_kdf_derive_from_key(seed, 32, index, "berthshp", key);
}

int record_ship_batch_name(const struct record_ship_batch *b, uint32_t i,
                           char *out, size_t size)
{
    int n;
    if (b->name_len == 0) {
        n = snprintf(out, size, "%s", "");
    } else if (b->flags & RECORD_BATCH_PREFIX) {
        n = snprintf(out, size, "%.*s-%u", (int)b->name_len, b->name,
                     (unsigned)(b->first + i));
    } else {
        n = snprintf(out, size, "%.*s", (int)b->name_len, b->name);
    }
    return n < 0 || (size_t)n >= size ? BERTH_ETOOBIG : 0;
}

int record_decode_ship_new(const uint8_t *p, size_t len,
                           struct record_ship_new *s)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_SHIP_NEW, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    s->id = record__get_str(&c, &s->id_len);
    s->name = record__get_str(&c, &s->name_len);
    s->program = record__get_str(&c, &s->program_len);
    s->created_ns = cursor_u64(&c);
    s->idle_timeout_ms = cursor_u64(&c);
    const uint8_t *pk = cursor_bytes(&c, sizeof s->public_key);
    const uint8_t *sk = cursor_bytes(&c, sizeof s->secret_key);
    if (c.err != 0 || cursor_left(&c) != 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(s->public_key, pk, sizeof s->public_key);
    memcpy(s->secret_key, sk, sizeof s->secret_key);
    return 0;
}

int record_decode_snapshot(const uint8_t *p, size_t len,
                           struct record_snapshot *s)
{
    struct cursor c;
    uint8_t type;
    if (record_entry_type(p, len, &type) != 0 ||
        (type != RECORD_ENTRY_SNAPSHOT &&
         type != RECORD_ENTRY_SNAPSHOT_SEALED)) {
        return BERTH_EMALFORMED;
    }
    cursor_init(&c, p + 2, len - 2);
    s->sid = cursor_u64(&c);
    s->number = cursor_u64(&c);
    const uint8_t *epoch = cursor_bytes(&c, sizeof s->epoch);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(s->epoch, epoch, sizeof s->epoch);
    s->len = cursor_left(&c);
    s->data = cursor_bytes(&c, s->len);
    s->sealed = type == RECORD_ENTRY_SNAPSHOT_SEALED;
    if (s->sealed && seal_key_id(s->data, s->len) < 0) {
        return BERTH_EMALFORMED;
    }
    return 0;
}

int record_decode_ship_remove(const uint8_t *p, size_t len, uint64_t *sid)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_SHIP_REMOVE, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    *sid = cursor_u64(&c);
    return c.err != 0 || cursor_left(&c) != 0 ? BERTH_EMALFORMED : 0;
}

int record_events_next(const uint8_t *p, size_t len, size_t *off,
                       const uint8_t **rec, size_t *rec_len)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_EVENTS, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    if (*off == 0) {
        *off = 4; /* skip the count */
    }
    if (*off > c.len) {
        return BERTH_EMALFORMED;
    }
    c.off = *off;
    if (cursor_left(&c) == 0) {
        return 1;
    }
    uint32_t n = cursor_u32(&c);
    *rec = cursor_bytes(&c, n);
    *rec_len = n;
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    *off = c.off;
    return 0;
}

int record_encode_token(struct buf *out, const struct record_token *t)
{
    int rv;
    if ((t->op != RECORD_TOKEN_ADD && t->op != RECORD_TOKEN_REVOKE) ||
        t->name_len > UINT16_MAX) {
        return BERTH_EINVAL;
    }
    if ((rv = record__begin(out, RECORD_ENTRY_TOKEN)) != 0 ||
        (rv = buf_put_u8(out, t->op)) != 0) {
        return rv;
    }
    if (t->op == RECORD_TOKEN_ADD &&
        ((rv = buf_put_u8(out, t->scope)) != 0 ||
         (rv = buf_put_u64(out, t->account)) != 0 ||
         (rv = buf_put_u64(out, t->created_ns)) != 0 ||
         (rv = buf_append(out, t->hash, sizeof t->hash)) != 0)) {
        return rv;
    }
    if ((rv = buf_put_u16(out, (uint16_t)t->name_len)) != 0 ||
        (rv = buf_append(out, t->name, t->name_len)) != 0) {
        return rv;
    }
    return 0;
}

int record_decode_token(const uint8_t *p, size_t len, struct record_token *t)
{
    struct cursor c;
    memset(t, 0, sizeof *t);
    if (record__open(p, len, RECORD_ENTRY_TOKEN, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    t->op = cursor_u8(&c);
    if (t->op == RECORD_TOKEN_ADD) {
        t->scope = cursor_u8(&c);
        t->account = cursor_u64(&c);
        t->created_ns = cursor_u64(&c);
        const uint8_t *hash = cursor_bytes(&c, sizeof t->hash);
        if (hash != NULL) {
            memcpy(t->hash, hash, sizeof t->hash);
        }
    } else if (t->op != RECORD_TOKEN_REVOKE) {
        return BERTH_EMALFORMED;
    }
    uint16_t n = cursor_u16(&c);
    t->name = (const char *)cursor_bytes(&c, n);
    t->name_len = n;
    return c.err != 0 || cursor_left(&c) != 0 ? BERTH_EMALFORMED : 0;
}

int record_encode_key_rotate(struct buf *out, const struct record_key_rotate *r)
{
    int rv;
    if (r->count == 0 || r->count > SEAL_KEYS_MAX) {
        return BERTH_EINVAL;
    }
    if ((rv = record__begin(out, RECORD_ENTRY_KEY_ROTATE)) != 0 ||
        (rv = buf_append(out, r->old_id, RECORD_KEY_ID_SIZE)) != 0 ||
        (rv = buf_append(out, r->master, KEYWRAP_SIZE)) != 0 ||
        (rv = buf_put_u32(out, r->count)) != 0 ||
        (rv = buf_append(out, r->keys, (size_t)r->count * KEYWRAP_SIZE)) != 0) {
        return rv;
    }
    return 0;
}

int record_decode_key_rotate(const uint8_t *p, size_t len,
                             struct record_key_rotate *r)
{
    struct cursor c;
    memset(r, 0, sizeof *r);
    if (record__open(p, len, RECORD_ENTRY_KEY_ROTATE, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    const uint8_t *id = cursor_bytes(&c, RECORD_KEY_ID_SIZE);
    if (id != NULL) {
        memcpy(r->old_id, id, RECORD_KEY_ID_SIZE);
    }
    r->master = cursor_bytes(&c, KEYWRAP_SIZE);
    r->count = cursor_u32(&c);
    if (c.err != 0 || r->count == 0 || r->count > SEAL_KEYS_MAX) {
        return BERTH_EMALFORMED;
    }
    r->keys = cursor_bytes(&c, (size_t)r->count * KEYWRAP_SIZE);
    return c.err != 0 || cursor_left(&c) != 0 ? BERTH_EMALFORMED : 0;
}

int record_encode_account(struct buf *out, const struct record_account *a)
{
    int rv;
    if (a->op < ACCOUNT_OP_NEW || a->op > ACCOUNT_OP_LIMIT ||
        a->name_len > UINT16_MAX ||
        (a->caps_which & ~RECORD_ACCOUNT_CAPS_ALL) != 0) {
        return BERTH_EINVAL;
    }
    if ((rv = record__begin(out, RECORD_ENTRY_ACCOUNT)) != 0 ||
        (rv = buf_put_u8(out, a->op)) != 0 ||
        (rv = buf_put_u64(out, a->account)) != 0 ||
        (rv = buf_put_u8(out, a->value)) != 0 ||
        (rv = buf_put_u64(out, a->created_ns)) != 0 ||
        (rv = buf_append(out, a->hash, sizeof a->hash)) != 0 ||
        (rv = buf_put_u16(out, (uint16_t)a->name_len)) != 0 ||
        (rv = buf_append(out, a->name, a->name_len)) != 0) {
        return rv;
    }
    if (a->op != ACCOUNT_OP_LIMIT) {
        return 0;
    }
    for (int i = 0; i < QUOTA__COUNT; i++) {
        if ((rv = buf_put_u64(out, a->limits[i])) != 0) {
            return rv;
        }
    }
    if (a->caps_which == 0) {
        return 0; /* as a LIMIT was before caps: older hosts read it */
    }
    if ((rv = buf_put_u8(out, a->caps_which)) != 0 ||
        (rv = buf_put_u64(out, a->caps.memory_bytes)) != 0 ||
        (rv = buf_put_u32(out, a->caps.cpu_millis)) != 0 ||
        (rv = buf_put_u32(out, a->caps.pids)) != 0) {
        return rv;
    }
    return 0;
}

int record_decode_account(const uint8_t *p, size_t len,
                          struct record_account *a)
{
    struct cursor c;
    memset(a, 0, sizeof *a);
    if (record__open(p, len, RECORD_ENTRY_ACCOUNT, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    a->op = cursor_u8(&c);
    a->account = cursor_u64(&c);
    a->value = cursor_u8(&c);
    a->created_ns = cursor_u64(&c);
    const uint8_t *hash = cursor_bytes(&c, sizeof a->hash);
    if (hash != NULL) {
        memcpy(a->hash, hash, sizeof a->hash);
    }
    a->name = record__get_str(&c, &a->name_len);
    for (int i = 0; a->op == ACCOUNT_OP_LIMIT && i < QUOTA__COUNT; i++) {
        a->limits[i] = cursor_u64(&c);
    }
    /* The caps part, which only a LIMIT that sets caps has. */
    if (a->op == ACCOUNT_OP_LIMIT && c.err == 0 && cursor_left(&c) > 0) {
        a->caps_which = cursor_u8(&c);
        a->caps.memory_bytes = cursor_u64(&c);
        a->caps.cpu_millis = cursor_u32(&c);
        a->caps.pids = cursor_u32(&c);
        if (a->caps_which == 0 ||
            (a->caps_which & ~RECORD_ACCOUNT_CAPS_ALL) != 0) {
            return BERTH_EMALFORMED;
        }
    }
    if (c.err != 0 || cursor_left(&c) != 0 || a->op < ACCOUNT_OP_NEW ||
        a->op > ACCOUNT_OP_LIMIT) {
        return BERTH_EMALFORMED;
    }
    return 0;
}

int record_encode_usage(struct buf *out, const struct record_usage_item *items,
                        size_t n)
{
    if (n == 0 || n > RECORD_USAGE_MAX) {
        return BERTH_EINVAL;
    }
    int rv = buf_reserve(out, 2 + 4 + n * RECORD_USAGE_ITEM_SIZE);
    if (rv != 0 || (rv = record__begin(out, RECORD_ENTRY_USAGE)) != 0 ||
        (rv = buf_put_u32(out, (uint32_t)n)) != 0) {
        return rv;
    }
    for (size_t i = 0; i < n && rv == 0; i++) {
        const struct record_usage_item *it = &items[i];
        if ((rv = buf_put_u64(out, it->sid)) != 0 ||
            (rv = buf_put_u64(out, it->cpu_us)) != 0 ||
            (rv = buf_put_u64(out, it->memory_peak_bytes)) != 0 ||
            (rv = buf_put_u64(out, it->memory_byte_seconds)) != 0 ||
            (rv = buf_put_u32(out, it->wakes)) != 0) {
            break;
        }
        rv = buf_put_u32(out, it->requests);
    }
    return rv;
}

int record_decode_usage(const uint8_t *p, size_t len, size_t *n)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_USAGE, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    uint32_t count = cursor_u32(&c);
    if (c.err != 0 || count == 0 || count > RECORD_USAGE_MAX ||
        cursor_left(&c) != (size_t)count * RECORD_USAGE_ITEM_SIZE) {
        return BERTH_EMALFORMED;
    }
    *n = count;
    return 0;
}

void record_usage_item(const uint8_t *p, size_t i,
                       struct record_usage_item *out)
{
    const uint8_t *q = p + 2 + 4 + i * RECORD_USAGE_ITEM_SIZE;
    out->sid = get_le64(q);
    out->cpu_us = get_le64(q + 8);
    out->memory_peak_bytes = get_le64(q + 16);
    out->memory_byte_seconds = get_le64(q + 24);
    out->wakes = get_le32(q + 32);
    out->requests = get_le32(q + 36);
}

int record_encode_effects(struct buf *out, const struct record_effects *fx)
{
    size_t mark = out->len;
    if (buf_put_u8(out, RECORD_EFFECTS_MARK) != 0 ||
        buf_put_u64(out, fx->sid) != 0 || buf_put_u64(out, fx->number) != 0 ||
        buf_put_u64(out, fx->mail_taken) != 0 ||
        buf_append(out, fx->entries, fx->entries_len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int record_effects_add(struct buf *out, const uint8_t *entry, size_t len)
{
    if (len > UINT32_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u32(out, (uint32_t)len) != 0 ||
        buf_append(out, entry, len) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int record_decode_effects(const uint8_t *p, size_t len,
                          struct record_effects *fx)
{
    struct cursor c;
    cursor_init(&c, p, len);
    if (cursor_u8(&c) != RECORD_EFFECTS_MARK) {
        return BERTH_EMALFORMED;
    }
    fx->sid = cursor_u64(&c);
    fx->number = cursor_u64(&c);
    fx->mail_taken = cursor_u64(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    fx->entries_len = cursor_left(&c);
    fx->entries = cursor_bytes(&c, fx->entries_len);
    size_t off = 0;
    const uint8_t *e;
    size_t n;
    int rv;
    while ((rv = record_effects_next(fx, &off, &e, &n)) == 0) {
    }
    return rv == 1 ? 0 : BERTH_EMALFORMED;
}

int record_effects_next(const struct record_effects *fx, size_t *off,
                        const uint8_t **entry, size_t *len)
{
    if (*off == fx->entries_len) {
        return 1;
    }
    struct cursor c;
    cursor_init(&c, fx->entries + *off, fx->entries_len - *off);
    *len = cursor_u32(&c);
    *entry = cursor_bytes(&c, *len);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    *off = fx->entries_len - cursor_left(&c);
    return 0;
}

int record_encode_destroy(struct buf *out, const struct record_destroy *d)
{
    size_t mark = out->len;
    int rv = record__begin(out, RECORD_ENTRY_SHIP_DESTROY);
    if (rv != 0 || (rv = buf_put_u64(out, d->sid)) != 0 ||
        (rv = buf_put_u8(out, d->by)) != 0 ||
        (rv = buf_append(out, d->signature, sizeof d->signature)) != 0) {
        out->len = mark;
        return rv;
    }
    return 0;
}

int record_decode_destroy(const uint8_t *p, size_t len,
                          struct record_destroy *d)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_SHIP_DESTROY, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    d->sid = cursor_u64(&c);
    d->by = cursor_u8(&c);
    const uint8_t *sig = cursor_bytes(&c, sizeof d->signature);
    if (c.err != 0 || cursor_left(&c) != 0 || d->by < RECORD_DESTROY_SELF ||
        d->by > RECORD_DESTROY_RELEASED) {
        return BERTH_EMALFORMED;
    }
    memcpy(d->signature, sig, sizeof d->signature);
    return 0;
}

size_t record_destroy_message(const char *id, uint8_t *out)
{
    int n = snprintf((char *)out, RECORD_DESTROY_MESSAGE_MAX,
                     "berth destroy %s", id);
    return n < 0 ? 0
           : (size_t)n >= RECORD_DESTROY_MESSAGE_MAX
               ? RECORD_DESTROY_MESSAGE_MAX - 1
               : (size_t)n;
}

int record_encode_mail(struct buf *out, const struct record_mail *m)
{
    size_t mark = out->len;
    int rv = record__begin(out, RECORD_ENTRY_MAIL);
    if (rv != 0 || (rv = buf_put_u64(out, m->target)) != 0 ||
        (rv = buf_put_u8(out, m->kind)) != 0 ||
        (rv = buf_append(out, m->body, m->len)) != 0) {
        out->len = mark;
        return rv;
    }
    return 0;
}

int record_decode_mail(const uint8_t *p, size_t len, struct record_mail *m)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_MAIL, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    m->target = cursor_u64(&c);
    m->kind = cursor_u8(&c);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    m->len = cursor_left(&c);
    m->body = cursor_bytes(&c, m->len);
    return 0;
}

bool record_events_have_effects(const uint8_t *p, size_t len)
{
    size_t off = 0;
    const uint8_t *rec;
    size_t n;
    while (record_events_next(p, len, &off, &rec, &n) == 0) {
        if (n > 0 && rec[0] == RECORD_EFFECTS_MARK) {
            return true;
        }
    }
    return false;
}

/* The associated data of a mail body's seal. */
static size_t record__mail_ad(uint8_t kind, uint8_t *ad)
{
    static const char label[] = "berth mail";
    memcpy(ad, label, sizeof label);
    ad[sizeof label] = kind;
    return sizeof label + 1;
}

int record_seal_mail(struct buf *out, const struct seal_keys *keys,
                     const uint8_t *own, uint64_t target, uint8_t kind,
                     const uint8_t *nonce, const uint8_t *p, size_t len)
{
    uint8_t ad[16];
    size_t n = record__mail_ad(kind, ad);
    return seal_put(out, keys, SEAL_USE_SHIP, target, own, nonce, ad, n, p,
                    len);
}

int record_open_mail(struct buf *out, const struct seal_keys *keys,
                     const uint8_t *own, uint64_t target, uint8_t kind,
                     const uint8_t *p, size_t len)
{
    uint8_t ad[16];
    size_t n = record__mail_ad(kind, ad);
    return seal_open(out, keys, SEAL_USE_SHIP, target, own, ad, n, p, len);
}

int record_encode_ship_reset(struct buf *out, uint64_t sid, uint64_t last_event)
{
    size_t mark = out->len;
    int rv = record__begin(out, RECORD_ENTRY_SHIP_RESET);
    if (rv != 0 || (rv = buf_put_u64(out, sid)) != 0 ||
        (rv = buf_put_u64(out, last_event)) != 0) {
        out->len = mark;
        return rv;
    }
    return 0;
}

int record_encode_ship_block(struct buf *out, uint64_t sid, bool blocked)
{
    size_t mark = out->len;
    int rv = record__begin(out, RECORD_ENTRY_SHIP_BLOCK);
    if (rv != 0 || (rv = buf_put_u64(out, sid)) != 0 ||
        (rv = buf_put_u8(out, blocked ? 1 : 0)) != 0) {
        out->len = mark;
        return rv;
    }
    return 0;
}

int record_decode_ship_block(const uint8_t *p, size_t len, uint64_t *sid,
                             bool *blocked)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_SHIP_BLOCK, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    *sid = cursor_u64(&c);
    uint8_t b = cursor_u8(&c);
    *blocked = b == 1;
    return c.err != 0 || cursor_left(&c) != 0 || b > 1 ? BERTH_EMALFORMED : 0;
}

int record_decode_ship_reset(const uint8_t *p, size_t len, uint64_t *sid,
                             uint64_t *last_event)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_SHIP_RESET, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    *sid = cursor_u64(&c);
    *last_event = cursor_u64(&c);
    return c.err != 0 || cursor_left(&c) != 0 ? BERTH_EMALFORMED : 0;
}

int record_encode_ship_resize(struct buf *out, const struct record_resize *r)
{
    size_t mark = out->len;
    int rv = record__begin(out, RECORD_ENTRY_SHIP_RESIZE);
    if (rv != 0 || (rv = buf_put_u64(out, r->sid)) != 0 ||
        (rv = buf_put_u8(out, r->which)) != 0 ||
        (rv = buf_put_u64(out, r->memory_bytes)) != 0 ||
        (rv = buf_put_u32(out, r->cpu_millis)) != 0 ||
        (rv = buf_put_u32(out, r->pids)) != 0 ||
        (rv = buf_put_u64(out, r->storage_bytes)) != 0) {
        out->len = mark;
        return rv;
    }
    return 0;
}

int record_decode_ship_resize(const uint8_t *p, size_t len,
                              struct record_resize *r)
{
    struct cursor c;
    memset(r, 0, sizeof *r);
    if (record__open(p, len, RECORD_ENTRY_SHIP_RESIZE, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    r->sid = cursor_u64(&c);
    r->which = cursor_u8(&c);
    r->memory_bytes = cursor_u64(&c);
    r->cpu_millis = cursor_u32(&c);
    r->pids = cursor_u32(&c);
    r->storage_bytes = cursor_u64(&c);
    if (c.err != 0 || cursor_left(&c) != 0 ||
        (r->which & ~RECORD_RESIZE_ALL) != 0) {
        memset(r, 0, sizeof *r);
        return BERTH_EMALFORMED;
    }
    return 0;
}
