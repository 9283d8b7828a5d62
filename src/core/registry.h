/* The registry: what a host keeps in memory for every ship it hosts.
 *
 * A host may hold a million ships, nearly all of them asleep. An asleep ship
 * must cost memory in bytes, not kilobytes, so the registry keeps one fixed
 * 48-byte entry per ship in one array (a "slot"), plus two open-addressing
 * indexes of 4-byte slot numbers: one by id, one by name. Everything else a
 * ship has (its log, snapshot, keys, limits) stays in the store until the ship
 * is touched; a ship that is awake, or has work in flight, also has a "live"
 * object of the daemon's, which the entry points to.
 *
 * A ship id is the lower-case base32 of the first REGISTRY_KEY_SIZE bytes of
 * its public key (16 characters), so the entry keeps those 10 bytes rather
 * than the text. Names live in one arena of NUL-terminated strings, and
 * program paths are interned: thousands of ships share a handful of programs.
 *
 * Slots are appended in sid order and never move, so a slot number stays valid
 * for the life of the registry and the array is sorted by sid (which makes a
 * sid a cheap listing cursor). A removed ship's slot stays behind as a hole,
 * marked REGISTRY_REMOVED; a restart rebuilds the registry without holes.
 *
 * Pure: no I/O, no libuv. Memory comes from lib/mem.h. */
#ifndef BERTH_CORE_REGISTRY_H
#define BERTH_CORE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of the public key that make a ship's id. */
#define REGISTRY_KEY_SIZE 10

/* Characters in a ship id (base32 of REGISTRY_KEY_SIZE bytes). */
#define REGISTRY_ID_LEN 16

/* A slot number that names no ship. */
#define REGISTRY_NONE UINT32_MAX

/* Flags of an entry. */
#define REGISTRY_REMOVED 0x01
/* The ship's stored data failed its checks; it is not woken. */
#define REGISTRY_CORRUPT 0x02
/* Its sandbox keeps the ship from the front door (core/sandbox.h). */
#define REGISTRY_HIDDEN 0x04
/* The operator cut it off (a SHIP_BLOCK entry): the front door answers it
 * 403, and no message reaches it or leaves it. */
#define REGISTRY_BLOCKED 0x08
/* The operator killed its program (fleet_ship_kill); cleared by its next
 * wake. Kept in this host's memory only. */
#define REGISTRY_KILLED 0x10

/* One ship's entry; 48 bytes. */
struct registry_ship {
    uint64_t sid;            /* the store's number for the ship */
    void *live;              /* the daemon's live object, or NULL */
    uint64_t last_active_ns; /* wall clock of its last event; 0: none yet */
    uint8_t key[REGISTRY_KEY_SIZE];
    uint8_t flags;
    uint8_t spare;
    uint32_t program;    /* index into the interned programs */
    uint32_t name;       /* offset + 1 into the names arena; 0: unnamed */
    uint32_t wake_count; /* wakes since the host started */
};

struct registry {
    struct registry_ship *ships;
    uint32_t n_slots, cap_slots;
    uint32_t n_live_entries; /* slots not removed */
    uint32_t *by_key;        /* slot + 1, 0 empty, UINT32_MAX deleted */
    uint32_t *by_name;
    uint32_t index_cap;           /* a power of two */
    uint32_t key_used, name_used; /* filled slots, tombstones included */
    char *names;
    size_t names_len, names_cap;
    char **programs;
    uint32_t n_programs, cap_programs;
};

/* Initialize an empty registry. */
void registry_init(struct registry *r);

/* Free everything the registry holds (not the live objects). */
void registry_free(struct registry *r);

/* Add a ship and set *slot. id must be a valid ship id (see
 * registry_id_decode), name may be NULL or "" for none; both are copied, and
 * so is program. sid must be greater than every sid added before. Returns 0,
 * BERTH_EEXIST if the id or the name is taken, BERTH_EINVAL for a malformed
 * id or a sid out of order, or BERTH_ENOMEM. */
int registry_add(struct registry *r, uint64_t sid, const char *id,
                 const char *name, const char *program, uint32_t *slot);

/* Mark a ship removed: it can no longer be found, and its name is free. */
void registry_remove(struct registry *r, uint32_t slot);

/* Return the slot of the ship with this id or name, or REGISTRY_NONE. */
uint32_t registry_find(const struct registry *r, const char *id_or_name);

/* Return the entry in a slot; the pointer stays valid until the next
 * registry_add, which may move the array. */
struct registry_ship *registry_get(const struct registry *r, uint32_t slot);

/* Write the ship's id, NUL-terminated, to out (REGISTRY_ID_LEN + 1 bytes). */
void registry_id(const struct registry *r, uint32_t slot, char *out);

/* Return the ship's name, or "" when it has none; valid until the next
 * registry_add. */
const char *registry_name(const struct registry *r, uint32_t slot);

/* Return the ship's program path; valid as long as the registry. */
const char *registry_program(const struct registry *r, uint32_t slot);

/* Return the first slot after the ships with sid <= after_sid (removed ones
 * included), or r->n_slots when there is none. */
uint32_t registry_seek(const struct registry *r, uint64_t after_sid);

/* Return the number of ships not removed. */
uint32_t registry_count(const struct registry *r);

/* Return the largest sid added, or 0. */
uint64_t registry_max_sid(const struct registry *r);

/* Return the bytes of memory the registry holds. */
size_t registry_memory(const struct registry *r);

/* Encode key bytes as a ship id: lower-case RFC 4648 base32, no padding;
 * out gets n * 8 / 5 rounded up characters and a NUL. */
void registry_id_encode(const uint8_t *key, size_t n, char *out);

/* Decode a ship id into REGISTRY_KEY_SIZE bytes; returns 0, or BERTH_EINVAL
 * when id is not REGISTRY_ID_LEN characters of the base32 alphabet. */
int registry_id_decode(const char *id, uint8_t *key);

#endif
