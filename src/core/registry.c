#include "core/registry.h"

#include <string.h>

#include "lib/err.h"
#include "lib/mem.h"

#define REGISTRY__EMPTY 0u
#define REGISTRY__TOMB UINT32_MAX

static const char registry__alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

void registry_id_encode(const uint8_t *key, size_t n, char *out)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | key[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = registry__alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0) {
        out[o++] = registry__alphabet[(acc << (5 - bits)) & 31];
    }
    out[o] = '\0';
}

int registry_id_decode(const char *id, uint8_t *key)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    size_t i;
    for (i = 0; id[i] != '\0'; i++) {
        if (i >= REGISTRY_ID_LEN) {
            return BERTH_EINVAL;
        }
        char c = id[i];
        uint32_t v;
        if (c >= 'a' && c <= 'z') {
            v = (uint32_t)(c - 'a');
        } else if (c >= '2' && c <= '7') {
            v = (uint32_t)(c - '2') + 26;
        } else {
            return BERTH_EINVAL;
        }
        acc = (acc << 5) | v;
        bits += 5;
        if (bits >= 8) {
            key[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    /* 16 characters are exactly 80 bits: nothing is left over. */
    return i == REGISTRY_ID_LEN ? 0 : BERTH_EINVAL;
}

static uint64_t registry__hash_key(const uint8_t *key)
{
    /* Keys are public-key bytes, uniformly random already. */
    uint64_t h;
    memcpy(&h, key, sizeof h);
    return h;
}

static uint64_t registry__hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++) {
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

void registry_init(struct registry *r)
{
    memset(r, 0, sizeof *r);
}

void registry_free(struct registry *r)
{
    for (uint32_t i = 0; i < r->n_programs; i++) {
        mem_free(r->programs[i]);
    }
    mem_free(r->programs);
    mem_free(r->ships);
    mem_free(r->by_key);
    mem_free(r->by_name);
    mem_free(r->names);
    registry_init(r);
}

struct registry_ship *registry_get(const struct registry *r, uint32_t slot)
{
    return &r->ships[slot];
}

const char *registry_name(const struct registry *r, uint32_t slot)
{
    uint32_t n = r->ships[slot].name;
    return n == 0 ? "" : r->names + (n - 1);
}

const char *registry_program(const struct registry *r, uint32_t slot)
{
    return r->programs[r->ships[slot].program];
}

void registry_id(const struct registry *r, uint32_t slot, char *out)
{
    registry_id_encode(r->ships[slot].key, REGISTRY_KEY_SIZE, out);
}

uint32_t registry_count(const struct registry *r)
{
    return r->n_live_entries;
}

uint64_t registry_max_sid(const struct registry *r)
{
    return r->n_slots ? r->ships[r->n_slots - 1].sid : 0;
}

size_t registry_memory(const struct registry *r)
{
    size_t n = (size_t)r->cap_slots * sizeof *r->ships +
               2 * (size_t)r->index_cap * sizeof(uint32_t) + r->names_cap +
               (size_t)r->cap_programs * sizeof(char *);
    for (uint32_t i = 0; i < r->n_programs; i++) {
        n += strlen(r->programs[i]) + 1;
    }
    return n;
}

/* Find the position of an index holding the slot that matches, or the
 * first free position when none does; *found says which. Both indexes
 * share this probe: by key (name NULL) or by name. */
static uint32_t registry__probe(const struct registry *r, const uint32_t *index,
                                const uint8_t *key, const char *name,
                                bool *found)
{
    uint32_t mask = r->index_cap - 1;
    uint32_t free_at = UINT32_MAX;
    uint64_t h = name ? registry__hash_name(name) : registry__hash_key(key);
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        uint32_t v = index[i];
        if (v == REGISTRY__EMPTY) {
            *found = false;
            return free_at != UINT32_MAX ? free_at : i;
        }
        if (v == REGISTRY__TOMB) {
            if (free_at == UINT32_MAX) {
                free_at = i;
            }
            continue;
        }
        if (name ? strcmp(registry_name(r, v - 1), name) == 0
                 : memcmp(r->ships[v - 1].key, key, REGISTRY_KEY_SIZE) == 0) {
            *found = true;
            return i;
        }
    }
}

static uint32_t registry__probe_key(const struct registry *r,
                                    const uint8_t *key, bool *found)
{
    return registry__probe(r, r->by_key, key, NULL, found);
}

static uint32_t registry__probe_name(const struct registry *r, const char *name,
                                     bool *found)
{
    return registry__probe(r, r->by_name, NULL, name, found);
}

/* Rebuild both indexes with room for at least `need` entries at a load of at
 * most one half, dropping tombstones. */
static int registry__reindex(struct registry *r, uint32_t need)
{
    uint32_t cap = 64;
    while (cap < need * 2) {
        cap *= 2;
    }
    uint32_t *by_key = mem_calloc(cap, sizeof *by_key);
    uint32_t *by_name = mem_calloc(cap, sizeof *by_name);
    if (by_key == NULL || by_name == NULL) {
        mem_free(by_key);
        mem_free(by_name);
        return BERTH_ENOMEM;
    }
    mem_free(r->by_key);
    mem_free(r->by_name);
    r->by_key = by_key;
    r->by_name = by_name;
    r->index_cap = cap;
    r->key_used = r->name_used = 0;
    for (uint32_t s = 0; s < r->n_slots; s++) {
        const struct registry_ship *e = &r->ships[s];
        if (e->flags & REGISTRY_REMOVED) {
            continue;
        }
        bool found;
        r->by_key[registry__probe_key(r, e->key, &found)] = s + 1;
        r->key_used++;
        if (e->name != 0) {
            r->by_name[registry__probe_name(r, registry_name(r, s), &found)] =
                s + 1;
            r->name_used++;
        }
    }
    return 0;
}

static int registry__intern(struct registry *r, const char *program,
                            uint32_t *index)
{
    /* Few programs serve many ships; the most recent is the likeliest. */
    for (uint32_t i = r->n_programs; i-- > 0;) {
        if (strcmp(r->programs[i], program) == 0) {
            *index = i;
            return 0;
        }
    }
    if (r->n_programs == r->cap_programs) {
        uint32_t cap = r->cap_programs ? r->cap_programs * 2 : 8;
        char **p = mem_realloc(r->programs, cap * sizeof *p);
        if (p == NULL) {
            return BERTH_ENOMEM;
        }
        r->programs = p;
        r->cap_programs = cap;
    }
    char *copy = mem_strdup(program);
    if (copy == NULL) {
        return BERTH_ENOMEM;
    }
    r->programs[r->n_programs] = copy;
    *index = r->n_programs++;
    return 0;
}

int registry_add(struct registry *r, uint64_t sid, const char *id,
                 const char *name, const char *program, uint32_t *slot)
{
    uint8_t key[REGISTRY_KEY_SIZE];
    bool found;
    int rv;
    if (registry_id_decode(id, key) != 0 ||
        (r->n_slots > 0 && sid <= registry_max_sid(r)) ||
        r->n_slots == REGISTRY_NONE - 1) {
        return BERTH_EINVAL;
    }
    if (name == NULL) {
        name = "";
    }
    /* Make room first, so that nothing below can fail half-way. */
    uint32_t used = (r->key_used > r->name_used ? r->key_used : r->name_used);
    if ((used + 1) * 2 > r->index_cap) {
        rv = registry__reindex(r, r->n_live_entries + 1);
        if (rv != 0) {
            return rv;
        }
    }
    if (registry__probe_key(r, key, &found), found) {
        return BERTH_EEXIST;
    }
    if (name[0] != '\0' && (registry__probe_name(r, name, &found), found)) {
        return BERTH_EEXIST;
    }
    if (r->n_slots == r->cap_slots) {
        uint32_t cap = r->cap_slots ? r->cap_slots + r->cap_slots / 2 : 1024;
        struct registry_ship *s = mem_realloc(r->ships, cap * sizeof *s);
        if (s == NULL) {
            return BERTH_ENOMEM;
        }
        r->ships = s;
        r->cap_slots = cap;
    }
    size_t name_len = strlen(name);
    if (name_len > 0 && r->names_len + name_len + 1 > r->names_cap) {
        size_t cap = r->names_cap ? r->names_cap * 2 : 4096;
        while (cap < r->names_len + name_len + 1) {
            cap *= 2;
        }
        char *n = mem_realloc(r->names, cap);
        if (n == NULL) {
            return BERTH_ENOMEM;
        }
        r->names = n;
        r->names_cap = cap;
    }
    uint32_t program_index;
    rv = registry__intern(r, program, &program_index);
    if (rv != 0) {
        return rv;
    }

    uint32_t s = r->n_slots++;
    struct registry_ship *e = &r->ships[s];
    memset(e, 0, sizeof *e);
    e->sid = sid;
    memcpy(e->key, key, sizeof e->key);
    e->program = program_index;
    if (name_len > 0) {
        memcpy(r->names + r->names_len, name, name_len + 1);
        e->name = (uint32_t)r->names_len + 1;
        r->names_len += name_len + 1;
        r->by_name[registry__probe_name(r, name, &found)] = s + 1;
        r->name_used++;
    }
    r->by_key[registry__probe_key(r, key, &found)] = s + 1;
    r->key_used++;
    r->n_live_entries++;
    *slot = s;
    return 0;
}

void registry_remove(struct registry *r, uint32_t slot)
{
    struct registry_ship *e = &r->ships[slot];
    bool found;
    if (e->flags & REGISTRY_REMOVED) {
        return;
    }
    uint32_t i = registry__probe_key(r, e->key, &found);
    if (found) {
        r->by_key[i] = REGISTRY__TOMB;
    }
    if (e->name != 0) {
        i = registry__probe_name(r, registry_name(r, slot), &found);
        if (found) {
            r->by_name[i] = REGISTRY__TOMB;
        }
    }
    e->flags |= REGISTRY_REMOVED;
    r->n_live_entries--;
}

uint32_t registry_find(const struct registry *r, const char *id_or_name)
{
    uint8_t key[REGISTRY_KEY_SIZE];
    bool found;
    if (r->index_cap == 0) {
        return REGISTRY_NONE;
    }
    if (registry_id_decode(id_or_name, key) == 0) {
        uint32_t i = registry__probe_key(r, key, &found);
        if (found) {
            return r->by_key[i] - 1;
        }
    }
    uint32_t i = registry__probe_name(r, id_or_name, &found);
    return found ? r->by_name[i] - 1 : REGISTRY_NONE;
}

uint32_t registry_seek(const struct registry *r, uint64_t after_sid)
{
    uint32_t lo = 0, hi = r->n_slots;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (r->ships[mid].sid <= after_sid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}
