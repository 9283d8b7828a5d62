#include "core/record.h"

#include "core/gate.h"

#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lib/err.h"
#include "lib/strlist.h"

#define RECORD__ENTRY_VERSION 1

int record_encode_event(struct buf *out, const struct record_event *rec)
{
    int rv = buf_reserve(out, RECORD_HEADER_SIZE + rec->payload_len);
    if (rv != 0) {
        return rv;
    }
    /* Reserved above, so the appends below cannot fail. */
    buf_put_u8(out, RECORD_VERSION);
    buf_put_u64(out, rec->sid);
    buf_put_u64(out, rec->number);
    buf_put_u64(out, rec->time_ns);
    buf_append(out, rec->entropy, sizeof rec->entropy);
    buf_put_u8(out, rec->kind);
    buf_append(out, rec->prev_hash, sizeof rec->prev_hash);
    buf_put_u64(out, rec->alarm_ns);
    buf_put_u32(out, (uint32_t)rec->payload_len);
    buf_append(out, rec->payload, rec->payload_len);
    return 0;
}

int record_decode_event(const uint8_t *p, size_t len, struct record_event *rec)
{
    struct cursor c;
    cursor_init(&c, p, len);
    uint8_t version = cursor_u8(&c);
    if (version != 1 && version != RECORD_VERSION) {
        return BERTH_EMALFORMED;
    }
    rec->sid = cursor_u64(&c);
    rec->number = cursor_u64(&c);
    rec->time_ns = cursor_u64(&c);
    const uint8_t *entropy = cursor_bytes(&c, sizeof rec->entropy);
    rec->kind = cursor_u8(&c);
    const uint8_t *prev = cursor_bytes(&c, sizeof rec->prev_hash);
    /* Version 1 records predate alarms: no ship had one. */
    rec->alarm_ns = version == 1 ? 0 : cursor_u64(&c);
    uint32_t n = cursor_u32(&c);
    rec->payload = cursor_bytes(&c, n);
    rec->payload_len = n;
    if (c.err != 0 || cursor_left(&c) != 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(rec->entropy, entropy, sizeof rec->entropy);
    memcpy(rec->prev_hash, prev, sizeof rec->prev_hash);
    return 0;
}

void record_hash(const uint8_t *p, size_t len, uint8_t *out)
{
    crypto_generichash(out, RECORD_HASH_SIZE, p, len, NULL, 0);
}

void record_snapshot_sum(uint64_t sid, uint64_t number, const uint8_t *epoch,
                         const uint8_t *chain, const uint8_t *data, size_t len,
                         uint8_t *out)
{
    /* A label, then the fixed-size identity, then the bytes: no two
     * different inputs make the same hashed string. */
    static const char label[] = "berth snapshot 1";
    uint8_t head[8 + 8 + 2 * RECORD_HASH_SIZE];
    crypto_generichash_state st;
    put_le64(head, sid);
    put_le64(head + 8, number);
    memcpy(head + 16, epoch, RECORD_HASH_SIZE);
    memcpy(head + 16 + RECORD_HASH_SIZE, chain, RECORD_HASH_SIZE);
    crypto_generichash_init(&st, NULL, 0, RECORD_HASH_SIZE);
    crypto_generichash_update(&st, (const uint8_t *)label, sizeof label);
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

int record_encode_snapshot(struct buf *out, const struct record_snapshot *s)
{
    int rv;
    if ((rv = record__begin(out, RECORD_ENTRY_SNAPSHOT)) != 0 ||
        (rv = buf_put_u64(out, s->sid)) != 0 ||
        (rv = buf_put_u64(out, s->number)) != 0 ||
        (rv = buf_append(out, s->epoch, sizeof s->epoch)) != 0 ||
        (rv = buf_append(out, s->data, s->len)) != 0) {
        return rv;
    }
    return 0;
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

int record_encode_ship_batch(struct buf *out, const struct record_ship_batch *b)
{
    int rv;
    if (b->program_len > UINT16_MAX || b->name_len > UINT16_MAX ||
        b->args_len > RECORD_LIST_MAX || b->env_len > RECORD_LIST_MAX) {
        return BERTH_ETOOBIG;
    }
    bool lists = b->args_len > 0 || b->env_len > 0;
    uint8_t flags = (uint8_t)((b->flags & ~RECORD_BATCH_ARGS) |
                              (lists ? RECORD_BATCH_ARGS : 0));
    if ((rv = record__begin(out, RECORD_ENTRY_SHIP_BATCH)) != 0 ||
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
    if (lists && ((rv = buf_put_u32(out, (uint32_t)b->args_len)) != 0 ||
                  (rv = buf_append(out, b->args, b->args_len)) != 0 ||
                  (rv = buf_put_u32(out, (uint32_t)b->env_len)) != 0 ||
                  (rv = buf_append(out, b->env, b->env_len)) != 0)) {
        return rv;
    }
    if ((rv = buf_put_u32(out, b->first)) != 0 ||
        (rv = buf_put_u32(out, b->count)) != 0 ||
        (rv = buf_append(out, b->key, sizeof b->key)) != 0 ||
        (rv = buf_append(out, b->public_keys, (size_t)b->count * 32)) != 0) {
        return rv;
    }
    return 0;
}

int record_decode_ship_batch(const uint8_t *p, size_t len,
                             struct record_ship_batch *b)
{
    struct cursor c;
    if (record__open(p, len, RECORD_ENTRY_SHIP_BATCH, &c) != 0) {
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
    const uint8_t *key = cursor_bytes(&c, sizeof b->key);
    if (c.err != 0 || cursor_left(&c) != (size_t)b->count * 32) {
        return BERTH_EMALFORMED;
    }
    memcpy(b->key, key, sizeof b->key);
    b->public_keys = cursor_bytes(&c, (size_t)b->count * 32);
    return 0;
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
    if (record__open(p, len, RECORD_ENTRY_SNAPSHOT, &c) != 0) {
        return BERTH_EMALFORMED;
    }
    s->sid = cursor_u64(&c);
    s->number = cursor_u64(&c);
    const uint8_t *epoch = cursor_bytes(&c, sizeof s->epoch);
    if (c.err != 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(s->epoch, epoch, sizeof s->epoch);
    s->len = cursor_left(&c);
    s->data = cursor_bytes(&c, s->len);
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
