/* Replies given again: reads answered without waking the program.
 *
 * A ship's state changes only through events, so a reply computed from the
 * state and the request alone stays right until the next event that changes
 * the state. A program says so of a reply with the DONE flag REUSE
 * (docs/protocol.md); the host then keeps the reply beside the request that
 * produced it, and answers the same request (the same encoded HTTP event
 * payload: method, target, every header and the body) with it, without
 * sending it to the program.
 *
 * An entry is kept only once its reply has left the output gate, so
 * everything it reveals is durable; every change of the ship's state, and
 * every end of its program, clears the ship's entries and starts a new
 * epoch. A reply computed in an older epoch is not kept: the state moved on
 * while it waited in the gate. There is no timeout and no guess: an entry
 * is right or gone.
 *
 * Memory: a ship keeps at most REUSE_PER_SHIP entries of at most
 * REUSE_ENTRY_MAX bytes each (request and reply), and a host at most its
 * pool's max_bytes in all; past that, replies are simply not kept. */
#ifndef BERTH_CORE_REUSE_H
#define BERTH_CORE_REUSE_H

#include <stddef.h>
#include <stdint.h>

#define REUSE_PER_SHIP 4
#define REUSE_ENTRY_MAX (16u << 10)

/* One kept reply and the request it answers; allocated in one piece. */
struct reuse_entry {
    struct reuse_entry *next;
    size_t size;              /* bytes of the allocation, as counted */
    int status;               /* HTTP status, 100 to 599 */
    const char *content_type; /* inside data, or NULL for none */
    const uint8_t *body;      /* inside data */
    size_t body_len;
    size_t key_len;
    uint8_t data[]; /* the key, the content type and its NUL, the body */
};

/* What every ship's entries of one host share: a bound and the counts. */
struct reuse_pool {
    uint64_t bytes;     /* held by entries now */
    uint64_t max_bytes; /* no entry is kept past this */
    uint64_t hits;      /* requests answered from an entry */
};

/* A ship's kept replies, most recently used first. */
struct reuse {
    struct reuse_entry *head;
    unsigned n;
    uint64_t epoch; /* advanced by every reuse_clear */
};

/* Initialize an empty pool that holds at most max_bytes. */
void reuse_pool_init(struct reuse_pool *p, uint64_t max_bytes);

/* Initialize r with no entries, at epoch 0. */
void reuse_init(struct reuse *r);

/* Free every entry of r, giving their bytes back to p, and advance r's
 * epoch, so that a reply computed before this call is no longer kept. */
void reuse_clear(struct reuse *r, struct reuse_pool *p);

/* Return the entry whose key is the key_len bytes at key, moved to the
 * front, or NULL. The entry belongs to r and stays valid until the next
 * reuse_put or reuse_clear on r; the caller counts the hit. */
const struct reuse_entry *reuse_find(struct reuse *r, const void *key,
                                     size_t key_len);

/* Keep a reply for the request key when it was computed in r's current
 * epoch (epoch), it fits REUSE_ENTRY_MAX and p has room; the least recently
 * used entry makes way when r is full, and an entry with the same key is
 * replaced. content_type may be NULL. Everything is copied; the caller
 * keeps what it passed. Returns 0 when kept, BERTH_EINVAL for a reply of an
 * earlier epoch, BERTH_ETOOBIG when it does not fit, or BERTH_ENOMEM. */
int reuse_put(struct reuse *r, struct reuse_pool *p, uint64_t epoch,
              const void *key, size_t key_len, int status,
              const char *content_type, const void *body, size_t body_len);

#endif
