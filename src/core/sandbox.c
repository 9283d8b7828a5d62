#include "core/sandbox.h"

#include <string.h>

#include "lib/err.h"
#include "lib/strlist.h"

/* Version 2 added the pids cap at the end; version 1 still decodes. */
#define SANDBOX__VERSION 2

int sandbox_encode(struct buf *out, const struct sandbox *sb)
{
    if (sb->send_len > SANDBOX_SEND_MAX * 64) {
        return BERTH_ETOOBIG;
    }
    size_t mark = out->len;
    if (buf_put_u8(out, SANDBOX__VERSION) != 0 ||
        buf_put_u8(out, sb->flags) != 0 ||
        buf_put_u64(out, sb->memory_bytes) != 0 ||
        buf_put_u32(out, sb->cpu_millis) != 0 ||
        buf_put_u32(out, sb->events_per_s) != 0 ||
        buf_put_u64(out, sb->budget_ships) != 0 ||
        buf_put_u64(out, sb->budget_bytes) != 0 ||
        buf_put_u64(out, sb->budget_cpu_ms) != 0 ||
        buf_put_u32(out, (uint32_t)sb->send_len) != 0 ||
        buf_append(out, sb->send, sb->send_len) != 0 ||
        buf_put_u32(out, sb->pids) != 0) {
        out->len = mark;
        return BERTH_ENOMEM;
    }
    return 0;
}

int sandbox_decode(const uint8_t *p, size_t len, struct sandbox *sb)
{
    memset(sb, 0, sizeof *sb);
    if (len == 0) {
        return 0;
    }
    struct cursor c;
    cursor_init(&c, p, len);
    uint8_t version = cursor_u8(&c);
    sb->flags = cursor_u8(&c);
    sb->memory_bytes = cursor_u64(&c);
    sb->cpu_millis = cursor_u32(&c);
    sb->events_per_s = cursor_u32(&c);
    sb->budget_ships = cursor_u64(&c);
    sb->budget_bytes = cursor_u64(&c);
    sb->budget_cpu_ms = cursor_u64(&c);
    sb->send_len = cursor_u32(&c);
    sb->send = (const char *)cursor_bytes(&c, sb->send_len);
    if (version == SANDBOX__VERSION) {
        sb->pids = cursor_u32(&c);
    }
    if (c.err != 0 || cursor_left(&c) != 0 || version == 0 ||
        version > SANDBOX__VERSION || (sb->flags & ~SANDBOX_FLAGS) != 0 ||
        strlist_count(sb->send, sb->send_len) < 0) {
        memset(sb, 0, sizeof *sb);
        return BERTH_EMALFORMED;
    }
    return 0;
}

bool sandbox_empty(const struct sandbox *sb)
{
    return sb->flags == 0 && sb->memory_bytes == 0 && sb->cpu_millis == 0 &&
           sb->events_per_s == 0 && sb->pids == 0 && sb->budget_ships == 0 &&
           sb->budget_bytes == 0 && sb->budget_cpu_ms == 0 && sb->send_len == 0;
}

/* The smaller of two limits where 0 is none. */
static uint64_t sandbox__min(uint64_t a, uint64_t b)
{
    return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

bool sandbox_may_send(const struct sandbox *sb, const char *id)
{
    if (!(sb->flags & SANDBOX_SEND_LIST)) {
        return true;
    }
    size_t off = 0;
    const char *s;
    while ((s = strlist_next(sb->send, sb->send_len, &off)) != NULL) {
        if (strcmp(s, id) == 0) {
            return true;
        }
    }
    return false;
}

int sandbox_inherit(const struct sandbox *parent, const struct sandbox *want,
                    struct sandbox *child, const char **why)
{
    memset(child, 0, sizeof *child);
    /* Restrictions add up; the network is granted only where the parent
     * has it to give. */
    child->flags =
        (uint8_t)(((parent->flags | want->flags) & ~SANDBOX_NETWORK) |
                  (parent->flags & want->flags & SANDBOX_NETWORK));
    child->memory_bytes =
        sandbox__min(parent->memory_bytes, want->memory_bytes);
    child->cpu_millis =
        (uint32_t)sandbox__min(parent->cpu_millis, want->cpu_millis);
    child->events_per_s =
        (uint32_t)sandbox__min(parent->events_per_s, want->events_per_s);
    child->pids = (uint32_t)sandbox__min(parent->pids, want->pids);
    child->budget_ships =
        sandbox__min(parent->budget_ships, want->budget_ships);
    child->budget_bytes =
        sandbox__min(parent->budget_bytes, want->budget_bytes);
    child->budget_cpu_ms =
        sandbox__min(parent->budget_cpu_ms, want->budget_cpu_ms);
    if (want->flags & SANDBOX_SEND_LIST) {
        /* Only ships the parent may reach itself. */
        size_t off = 0;
        const char *s;
        while ((s = strlist_next(want->send, want->send_len, &off)) != NULL) {
            if (!sandbox_may_send(parent, s)) {
                *why = "a child may send only where its parent may";
                return BERTH_EINVAL;
            }
        }
        child->send = want->send;
        child->send_len = want->send_len;
    } else if (parent->flags & SANDBOX_SEND_LIST) {
        child->send = parent->send;
        child->send_len = parent->send_len;
    }
    return 0;
}
