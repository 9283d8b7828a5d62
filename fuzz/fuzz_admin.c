/* libFuzzer target for the admin API's JSON request bodies: arbitrary bytes
 * are read as the body of POST /v1/ships, POST /v1/cluster/join and POST
 * /v1/fsck, as
 * a host does before it looks at anything of its own. Whatever is accepted
 * must be within the limits the host relies on: a valid name, a count from
 * 1 to a million, well-formed string lists of bounded size. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ship.h"
#include "daemon/body.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "lib/strlist.h"
#include "proto/frame.h"
#include "proc/proc.h"

/* Walk a string list; it must be well formed and hold at most max
 * strings. */
static void check_list(const struct buf *list, long max)
{
    long n = strlist_count((const char *)list->data, list->len);
    if (n < 0 || n > max) {
        abort();
    }
    size_t off = 0;
    long seen = 0;
    while (strlist_next((const char *)list->data, list->len, &off) != NULL) {
        seen++;
    }
    if (seen != n) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[BODY_ERRMSG_SIZE];
    struct body_create c;
    int rv = body_parse_create(data, size, &c, msg);
    if (rv == 0) {
        if (c.program == NULL || c.count < 1 || c.count > 1000000 ||
            (c.single && c.count != 1) ||
            (c.name[0] != '\0' && !ship_name_valid(c.name)) ||
            c.args.len + c.env.len > PROC_ARGS_BYTES_MAX) {
            abort();
        }
        /* A child is one ship with a lifetime; a ship without a parent has
         * none. */
        if (c.parent[0] != '\0' ? !ship_name_valid(c.parent) || c.count != 1 ||
                                      ship_lifetime_name(c.lifetime) == NULL
                                : c.lifetime != 0) {
            abort();
        }
        /* Only a resetting or leased child has a time, of at least the
         * least. */
        if ((c.lifetime >= FRAME_LIFETIME_RESETTING) != (c.lifetime_ms != 0) ||
            (c.lifetime_ms != 0 && c.lifetime_ms < FRAME_LIFETIME_MIN_MS)) {
            abort();
        }
        check_list(&c.args, PROC_ARGS_MAX);
        check_list(&c.env, PROC_ARGS_MAX);
        body_create_free(&c);
    } else if (rv == BERTH_EINVAL) {
        /* The message is a C string that fits. */
        if (memchr(msg, '\0', sizeof msg) == NULL) {
            abort();
        }
    } else if (rv != BERTH_ENOMEM) {
        abort();
    }
    struct buf names;
    bool replay, repair;
    buf_init(&names);
    rv = body_parse_fsck(data, size, &names, &replay, &repair, msg);
    if (rv == 0) {
        check_list(&names, BODY_FSCK_SHIPS_MAX);
    } else if (rv != BERTH_EINVAL && rv != BERTH_ENOMEM) {
        abort();
    }
    buf_free(&names);
    char *peer;
    uint8_t secret[BODY_SECRET_SIZE];
    bool has_secret;
    rv = body_parse_join(data, size, &peer, secret, &has_secret, msg);
    if (rv == 0) {
        mem_free(peer);
    } else if (has_secret) {
        abort(); /* a refused body gives no secret */
    }
    return 0;
}
