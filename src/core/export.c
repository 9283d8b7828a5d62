#include "core/export.h"

#include <string.h>

#include "core/record.h"
#include "lib/err.h"

static const char export__magic[8] = {'B', 'E', 'R', 'T', 'H', 'S', 'H', 'P'};

#define EXPORT__VERSION 1
#define EXPORT__ENTRY_VERSION 1

static int export__put16(struct buf *out, const void *p, size_t len)
{
    if (len > UINT16_MAX) {
        return BERTH_ETOOBIG;
    }
    int rv = buf_put_u16(out, (uint16_t)len);
    return rv != 0 ? rv : buf_append(out, p, len);
}

static int export__put32(struct buf *out, const void *p, size_t len)
{
    if (len > UINT32_MAX) {
        return BERTH_ETOOBIG;
    }
    int rv = buf_put_u32(out, (uint32_t)len);
    return rv != 0 || len == 0 ? rv : buf_append(out, p, len);
}

int export_encode_entry(struct buf *out, const struct export_ship *x)
{
    int rv;
    if ((rv = buf_put_u8(out, EXPORT__ENTRY_VERSION)) != 0 ||
        (rv = buf_put_u8(out, RECORD_ENTRY_SHIP_IMPORT)) != 0 ||
        (rv = buf_put_u64(out, x->sid)) != 0 ||
        (rv = buf_put_u64(out, x->account)) != 0 ||
        (rv = export__put16(out, x->account_name, x->account_name_len)) != 0 ||
        (rv = export__put16(out, x->id, x->id_len)) != 0 ||
        (rv = export__put16(out, x->name, x->name_len)) != 0 ||
        (rv = export__put16(out, x->program, x->program_len)) != 0 ||
        (rv = export__put32(out, x->args, x->args_len)) != 0 ||
        (rv = export__put32(out, x->env, x->env_len)) != 0 ||
        (rv = buf_put_u64(out, x->created_ns)) != 0 ||
        (rv = buf_put_u64(out, x->idle_timeout_ms)) != 0 ||
        (rv = buf_put_u64(out, x->freeze_timeout_ms)) != 0 ||
        (rv = buf_put_u8(out, x->acks)) != 0 ||
        (rv = export__put32(out, x->access, x->access_len)) != 0 ||
        (rv = export__put32(out, x->sandbox, x->sandbox_len)) != 0 ||
        (rv = buf_append(out, x->public_key, sizeof x->public_key)) != 0 ||
        (rv = export__put16(out, x->secret, x->secret_len)) != 0 ||
        (rv = export__put32(out, x->copy, x->copy_len)) != 0) {
        return rv;
    }
    return 0;
}

static const void *export__get16(struct cursor *c, size_t *len)
{
    *len = cursor_u16(c);
    return cursor_bytes(c, *len);
}

static const void *export__get32(struct cursor *c, size_t *len)
{
    *len = cursor_u32(c);
    return *len == 0 ? NULL : cursor_bytes(c, *len);
}

int export_decode_entry(const uint8_t *p, size_t len, struct export_ship *x)
{
    struct cursor c;
    uint8_t type;
    memset(x, 0, sizeof *x);
    if (record_entry_type(p, len, &type) != 0 ||
        type != RECORD_ENTRY_SHIP_IMPORT) {
        return BERTH_EMALFORMED;
    }
    cursor_init(&c, p + 2, len - 2);
    x->sid = cursor_u64(&c);
    x->account = cursor_u64(&c);
    x->account_name = export__get16(&c, &x->account_name_len);
    x->id = export__get16(&c, &x->id_len);
    x->name = export__get16(&c, &x->name_len);
    x->program = export__get16(&c, &x->program_len);
    x->args = export__get32(&c, &x->args_len);
    x->env = export__get32(&c, &x->env_len);
    x->created_ns = cursor_u64(&c);
    x->idle_timeout_ms = cursor_u64(&c);
    x->freeze_timeout_ms = cursor_u64(&c);
    x->acks = cursor_u8(&c);
    x->access = export__get32(&c, &x->access_len);
    x->sandbox = export__get32(&c, &x->sandbox_len);
    const uint8_t *pk = cursor_bytes(&c, sizeof x->public_key);
    x->secret = export__get16(&c, &x->secret_len);
    x->copy = export__get32(&c, &x->copy_len);
    if (c.err != 0 || cursor_left(&c) != 0 || x->sid == 0 || x->id_len == 0 ||
        x->program_len == 0 || x->copy_len == 0) {
        return BERTH_EMALFORMED;
    }
    memcpy(x->public_key, pk, sizeof x->public_key);
    return 0;
}

static void export__head(uint64_t sid, uint8_t *head)
{
    memcpy(head, export__magic, sizeof export__magic);
    head[8] = EXPORT__VERSION;
    put_le64(head + 9, sid);
}

int export_seal_file(struct buf *out, const struct seal_keys *keys,
                     uint64_t sid, const uint8_t *nonce, const uint8_t *entry,
                     size_t len)
{
    uint8_t head[EXPORT_HEAD_SIZE];
    export__head(sid, head);
    int rv = buf_append(out, head, sizeof head);
    return rv != 0 ? rv
                   : seal_put(out, keys, SEAL_USE_SHIP, sid, NULL, nonce, head,
                              sizeof head, entry, len);
}

int export_open_file(const uint8_t *p, size_t len, const struct seal_keys *keys,
                     struct buf *entry, uint64_t *sid)
{
    entry->len = 0;
    if (len < EXPORT_HEAD_SIZE ||
        memcmp(p, export__magic, sizeof export__magic) != 0 ||
        p[8] != EXPORT__VERSION) {
        return BERTH_EMALFORMED;
    }
    *sid = get_le64(p + 9);
    /* A host that seals takes no unsealed export: four changed bytes of a
     * key id must not turn a seal into plain text to read. */
    if (keys != NULL && keys->current != 0 &&
        seal_key_id(p + EXPORT_HEAD_SIZE, len - EXPORT_HEAD_SIZE) == 0) {
        return BERTH_ECORRUPT;
    }
    int rv =
        seal_open(entry, keys, SEAL_USE_SHIP, *sid, NULL, p, EXPORT_HEAD_SIZE,
                  p + EXPORT_HEAD_SIZE, len - EXPORT_HEAD_SIZE);
    if (rv == BERTH_EMALFORMED) {
        rv = BERTH_ECORRUPT; /* a cut seal is a damaged file */
    }
    return rv;
}
