/* Replies given again (see reuse.h). */
#include "core/reuse.h"

#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

void reuse_pool_init(struct reuse_pool *p, uint64_t max_bytes)
{
    memset(p, 0, sizeof *p);
    p->max_bytes = max_bytes;
}

void reuse_init(struct reuse *r)
{
    memset(r, 0, sizeof *r);
}

static void reuse__free(struct reuse_pool *p, struct reuse_entry *e)
{
    p->bytes -= e->size;
    mem_free(e);
}

void reuse_clear(struct reuse *r, struct reuse_pool *p)
{
    struct reuse_entry *e = r->head;
    while (e != NULL) {
        struct reuse_entry *next = e->next;
        reuse__free(p, e);
        e = next;
    }
    r->head = NULL;
    r->n = 0;
    r->epoch++;
}

/* Unlink and return the entry after prev (the head when prev is NULL). */
static struct reuse_entry *reuse__unlink(struct reuse *r,
                                         struct reuse_entry *prev)
{
    struct reuse_entry *e = prev != NULL ? prev->next : r->head;
    if (prev != NULL) {
        prev->next = e->next;
    } else {
        r->head = e->next;
    }
    r->n--;
    return e;
}

const struct reuse_entry *reuse_find(struct reuse *r, const void *key,
                                     size_t key_len)
{
    struct reuse_entry *prev = NULL;
    for (struct reuse_entry *e = r->head; e != NULL; prev = e, e = e->next) {
        if (e->key_len == key_len && memcmp(e->data, key, key_len) == 0) {
            if (prev != NULL) {
                reuse__unlink(r, prev);
                e->next = r->head;
                r->head = e;
                r->n++;
            }
            return e;
        }
    }
    return NULL;
}

int reuse_put(struct reuse *r, struct reuse_pool *p, uint64_t epoch,
              const void *key, size_t key_len, int status,
              const char *content_type, const void *body, size_t body_len)
{
    if (epoch != r->epoch) {
        return BERTH_EINVAL;
    }
    size_t type_len = content_type != NULL ? strlen(content_type) + 1 : 0;
    if (key_len > REUSE_ENTRY_MAX || body_len > REUSE_ENTRY_MAX ||
        key_len + type_len + body_len > REUSE_ENTRY_MAX) {
        return BERTH_ETOOBIG;
    }
    size_t size = sizeof(struct reuse_entry) + key_len + type_len + body_len;
    /* The same request again (two clients asked before either was
     * answered): the newer reply replaces the older, which reuse_find has
     * moved to the front. */
    if (reuse_find(r, key, key_len) != NULL) {
        reuse__free(p, reuse__unlink(r, NULL));
    }
    if (r->n >= REUSE_PER_SHIP) {
        struct reuse_entry *prev = NULL;
        struct reuse_entry *e = r->head;
        while (e->next != NULL) {
            prev = e;
            e = e->next;
        }
        reuse__free(p, reuse__unlink(r, prev));
    }
    if (p->bytes + size > p->max_bytes) {
        return BERTH_ETOOBIG;
    }
    struct reuse_entry *e = mem_alloc(size);
    if (e == NULL) {
        return BERTH_ENOMEM;
    }
    e->size = size;
    e->status = status;
    e->key_len = key_len;
    memcpy(e->data, key, key_len);
    uint8_t *at = e->data + key_len;
    e->content_type = NULL;
    if (type_len > 0) {
        memcpy(at, content_type, type_len);
        e->content_type = (const char *)at;
        at += type_len;
    }
    if (body_len > 0) {
        memcpy(at, body, body_len);
    }
    e->body = at;
    e->body_len = body_len;
    e->next = r->head;
    r->head = e;
    r->n++;
    p->bytes += size;
    return 0;
}
