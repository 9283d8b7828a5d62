/* The admin API's JSON request bodies, parsed and checked apart from a
 * host: what can be said of a request from its bytes alone. What needs the
 * host (a name taken, a program that cannot run, a full disk, the cluster's
 * state) is checked by the caller after.
 *
 *   POST /v1/ships          {"program", "name"?, "count"?,
 *                            "idle_timeout_ms"?, "freeze_timeout_ms"?,
 *                            "args"?, "env"?, "acks"?, "account"?,
 *                            "parent"?, "lifetime"?, "lifetime_ms"?,
 *                            "memory"?, "cpu"?, "pids"?}
 *   POST /v1/cluster/join   {"peer", "secret"?}
 *   POST /v1/fsck           {"ships"?, "replay"?, "repair"?} */
#ifndef BERTH_DAEMON_BODY_H
#define BERTH_DAEMON_BODY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/caps.h"
#include "lib/buf.h"
#include "store/store.h"

/* Room for a message about a refused body: it quotes the expected shape
 * and the JSON parser's complaint. */
#define BODY_ERRMSG_SIZE 512

/* A ship creation, as its body asks for it. */
struct body_create {
    char *program;                 /* as given; freed by body_create_free */
    char name[STORE_NAME_MAX + 1]; /* the name, the prefix with a count, "" */
    bool single;                   /* no count given: one ship, named name */
    uint32_t count;                /* ships to create, 1 when single */
    uint64_t idle_ms;              /* 0: the host's default */
    uint64_t freeze_ms;            /* 0: default; STORE_TIMEOUT_NEVER: never */
    uint8_t acks;                  /* GATE_ACKS_DEFAULT when not given */
    struct buf args;               /* a string list (lib/strlist.h) */
    struct buf env;                /* a string list of KEY=VALUE */
    /* The account's name, "" when not given: the caller's account. */
    char account[STORE_NAME_MAX + 1];
    /* The parent's id or name, "" for none: a child, made alone. */
    char parent[STORE_NAME_MAX + 1];
    uint8_t lifetime;     /* with a parent: FRAME_LIFETIME_*; else 0 */
    uint64_t lifetime_ms; /* a resetting or leased child's time; else 0 */
    bool network; /* its program may use the network (SANDBOX_NETWORK) */
    /* The ship's own caps ("memory": "64M" or bytes, "cpu": "0.5" or
     * cores, "pids": N; core/caps.h); 0: none of its own. */
    struct caps caps;
};

/* Parse the len bytes at data as the body of POST /v1/ships into *out.
 * Returns 0 with *out filled, to be freed with body_create_free();
 * BERTH_EINVAL with why in errmsg (BODY_ERRMSG_SIZE bytes), meant for a 400
 * answer; or BERTH_ENOMEM. On failure *out holds nothing to free. */
int body_parse_create(const uint8_t *data, size_t len, struct body_create *out,
                      char *errmsg);

/* Parse caps given as JSON values (each NULL when absent) into *out:
 * "memory" a size ("64M") or bytes, "cpu" cores ("0.5" or 0.5), "pids" a
 * number, each also "none". Returns 0 or BERTH_EINVAL with why in errmsg
 * (BODY_ERRMSG_SIZE bytes). */
int body_parse_caps(json_t *memory, json_t *cpu, json_t *pids, struct caps *out,
                    char *errmsg);

/* Free what body_parse_create() put in c (not c itself). */
void body_create_free(struct body_create *c);

/* The size of a cluster secret, given in a join's body as 64 hex digits. */
#define BODY_SECRET_SIZE 32

/* Parse the len bytes at data as the body of POST /v1/cluster/join,
 * {"peer": ADDRESS, "secret": HEX} with the secret optional. Returns 0 with
 * *peer the address given, a NUL-terminated copy the caller frees with
 * mem_free() (not checked to be an address: log_address_valid() does
 * that), and *has_secret saying whether secret (BODY_SECRET_SIZE bytes,
 * the caller's, to wipe) was filled; BERTH_EINVAL with why in errmsg
 * (BODY_ERRMSG_SIZE bytes); or BERTH_ENOMEM. */
int body_parse_join(const uint8_t *data, size_t len, char **peer,
                    uint8_t *secret, bool *has_secret, char *errmsg);

/* The most ships one POST /v1/fsck names. */
#define BODY_FSCK_SHIPS_MAX 100000

/* Parse the len bytes at data (none: an empty body) as the body of POST
 * /v1/fsck, {"ships"?: [ID or NAME, ...], "replay"?: bool, "repair"?:
 * bool}. Returns 0 with the ships named appended to names (the caller's) as
 * a string list (lib/strlist.h; empty: every ship) and *replay and *repair
 * set; BERTH_EINVAL with why in errmsg (BODY_ERRMSG_SIZE bytes); or
 * BERTH_ENOMEM. */
int body_parse_fsck(const uint8_t *data, size_t len, struct buf *names,
                    bool *replay, bool *repair, char *errmsg);

#endif
