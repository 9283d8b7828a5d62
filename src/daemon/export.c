/* Export and import of one ship (core/export.h): GET /v1/ships/SHIP/export
 * answers with the ship in one sealed file, and POST /v1/imports makes the
 * ship in such a file again, through the log, on every host.
 *
 * An import is checked before anything is proposed: the file must open
 * with this cluster's keys (so a file cut short or changed anywhere is
 * refused), its id must be its public key's, its account must exist here,
 * and its id and name must be free. Its data is then sealed again for the
 * sid it will have (store/shipcopy.h) and checked as fsck checks a stored
 * ship, in a scratch store in memory: a copy that fails changes nothing. */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "core/account.h"
#include "core/export.h"
#include "core/registry.h"
#include "daemon/host.h"
#include "lib/err.h"
#include "core/record.h"
#include "lib/mem.h"
#include "store/fsck.h"
#include "store/shipcopy.h"
#include "store/shipkey.h"

/* Times an import is proposed again after a ship made meanwhile took the
 * sid it was sealed for. */
#define HOST__IMPORT_TRIES 8

void host_ship_export(struct host *h, struct http_request *req, uint32_t slot)
{
    uint64_t sid = registry_get(&h->reg, slot)->sid;
    struct store_ship ship;
    struct store_account account;
    struct fsck_result check;
    struct buf copy, entry, file;
    buf_init(&copy);
    buf_init(&entry);
    buf_init(&file);
    int rv = store_ship_get_sid(h->store, sid, &ship);
    if (rv != 0) {
        host_reply_error(req, rv == BERTH_ENOTFOUND ? 404 : 500,
                         rv == BERTH_ENOTFOUND ? "not_found" : "internal",
                         "cannot read the ship: %s", store_errmsg(h->store));
        return;
    }
    rv = store_account_get_id(h->store, ship.account, &account);
    if (rv != 0) {
        host_reply_error(req, 500, "internal",
                         "cannot read the ship's account: %s",
                         store_errmsg(h->store));
        goto out;
    }
    /* What is written out is what an import will check: a damaged copy
     * is refused here, where fsck --repair can still mend it. */
    rv = fsck_ship(h->store, &h->keys, sid, &check);
    if (rv == 0 && !check.ok) {
        host_reply_error(req, 502, "corrupt",
                         "ship %s's stored data fails its check, so it is not "
                         "exported: %s (berth fsck --repair may mend it)",
                         ship.id, check.problem);
        goto out;
    }
    if (rv == 0) {
        rv = shipcopy_encode(h->store, sid, &copy);
    }
    /* An imported ship is a root ship: a child's seed, sealed under its
     * parent's key (store/shipkey.h), is sealed again as a root's is. */
    if (rv == 0 && record_ship_secret_in_parent(ship.secret, ship.secret_len)) {
        uint8_t sk[64], own[SEAL_OWN_KEY_SIZE], nonce[SEAL_NONCE_SIZE];
        bool has_own;
        randombytes_buf(nonce, sizeof nonce);
        rv = shipkey_open(h->store, &h->keys, &ship, sk, own, &has_own);
        if (rv == 0) {
            size_t n = record_ship_own_secret(&h->keys, sk, ship.public_key,
                                              nonce, ship.secret);
            rv = n == 0 ? BERTH_ENOMEM : 0;
            ship.secret_len = n;
        }
        sodium_memzero(sk, sizeof sk);
        sodium_memzero(own, sizeof own);
    }
    struct export_ship x = {
        .sid = sid,
        .account = ship.account,
        .account_name = account.name,
        .account_name_len = strlen(account.name),
        .id = ship.id,
        .id_len = strlen(ship.id),
        .name = ship.name,
        .name_len = strlen(ship.name),
        .program = ship.program,
        .program_len = strlen(ship.program),
        .args = ship.args,
        .args_len = ship.args_len,
        .env = ship.env,
        .env_len = ship.env_len,
        .created_ns = ship.created_ns,
        .idle_timeout_ms = ship.idle_timeout_ms,
        .freeze_timeout_ms = ship.freeze_timeout_ms,
        .acks = ship.acks,
        .access = ship.access,
        .access_len = ship.access_len,
        .sandbox = ship.sandbox,
        .sandbox_len = ship.sandbox_len,
        .secret = ship.secret,
        .secret_len = ship.secret_len,
        .copy = copy.data,
        .copy_len = copy.len,
    };
    memcpy(x.public_key, ship.public_key, sizeof x.public_key);
    uint8_t nonce[SEAL_NONCE_SIZE];
    randombytes_buf(nonce, sizeof nonce);
    if (rv == 0 && (rv = export_encode_entry(&entry, &x)) == 0) {
        rv = export_seal_file(&file, &h->keys, sid, nonce, entry.data,
                              entry.len);
    }
    if (rv == 0 && file.len > EXPORT_MAX) {
        host_reply_error(req, 413, "too_big",
                         "ship %s's export would be %zu bytes; the most an "
                         "export may have is %u",
                         ship.id, file.len, EXPORT_MAX);
        goto out;
    }
    if (rv != 0) {
        host_reply_error(req, rv == BERTH_ENOMEM ? 503 : 500,
                         rv == BERTH_ENOMEM ? "unavailable" : "internal",
                         "cannot export ship %s: %s", ship.id,
                         rv == BERTH_ENOMEM ? err_str(rv)
                                            : store_errmsg(h->store));
        goto out;
    }
    char size[32], events[32];
    snprintf(size, sizeof size, "%zu", file.len);
    snprintf(events, sizeof events, "%llu", (unsigned long long)check.events);
    host_log("info", "ship exported", "ship", ship.id, "bytes", size, "events",
             events, NULL);
    char disposition[128];
    snprintf(disposition, sizeof disposition,
             "Content-Disposition: attachment; filename=\"%s.berth\"\r\n",
             ship.id);
    http_reply(req, 200, "application/octet-stream", file.data, file.len,
               disposition);
out:
    sodium_memzero(ship.secret, sizeof ship.secret);
    store_ship_clear(&ship);
    buf_free(&copy);
    buf_free(&entry);
    buf_free(&file);
}

/* An import under way: the file's entry, opened, and what it becomes. */
struct host__import {
    struct host *host;
    struct http_request *req;
    struct buf plain;     /* the file's entry, opened */
    struct export_ship x; /* points into plain */
    uint64_t account;     /* its account here */
    unsigned tries;
};

static void host__import_free(struct host__import *im)
{
    sodium_memzero(im->plain.data, im->plain.len);
    buf_free(&im->plain);
    mem_free(im);
}

static void host__import_propose(struct host__import *im);

static void host__import_done(void *arg, int status, int result)
{
    struct host__import *im = arg;
    struct host *h = im->host;
    char id[STORE_ID_MAX + 1];
    snprintf(id, sizeof id, "%.*s", (int)im->x.id_len, im->x.id);
    if (status != 0) {
        host_reply_error(im->req, 503, "unavailable",
                         "the import was not committed: %s", err_str(status));
    } else if (result == BERTH_EBUSY && ++im->tries < HOST__IMPORT_TRIES) {
        host__import_propose(im);
        return;
    } else if (result == BERTH_EBUSY) {
        host_reply_error(im->req, 503, "unavailable",
                         "ships were made faster than the import could take "
                         "a place; try again");
    } else if (result == BERTH_EEXIST) {
        host_reply_error(im->req, 409, "conflict",
                         "a ship with id %s or its name exists", id);
    } else if (result == BERTH_ENOTFOUND) {
        host_reply_error(im->req, 404, "not_found",
                         "the ship's account was removed meanwhile");
    } else if (result != 0) {
        host_reply_error(im->req, 500, "internal", "import failed: %s",
                         err_str(result));
    } else {
        uint32_t slot = registry_find(&h->reg, id);
        if (slot == REGISTRY_NONE) {
            host_reply_error(im->req, 500, "internal",
                             "imported ship not found");
        } else {
            char sid[24];
            snprintf(sid, sizeof sid, "%llu",
                     (unsigned long long)registry_get(&h->reg, slot)->sid);
            host_log("info", "ship imported", "ship", id, "sid", sid, NULL);
            host_reply_json(im->req, 201, host_ship_json(h, slot));
        }
    }
    host__import_free(im);
}

/* Check a copy sealed for sid as fsck checks a stored ship, in a scratch
 * store of its own; 0, or BERTH_ECORRUPT with why in errmsg. */
static int host__import_check(struct host *h, const struct export_ship *x,
                              uint64_t sid, const struct buf *copy,
                              char *errmsg)
{
    struct store *scratch;
    struct fsck_result r;
    int rv = store_open(&scratch, ":memory:", errmsg);
    if (rv != 0) {
        return rv;
    }
    struct store_ship ship;
    memset(&ship, 0, sizeof ship);
    ship.sid = sid;
    memcpy(ship.id, x->id, x->id_len);
    memcpy(ship.name, x->name, x->name_len);
    ship.program = mem_strndup(x->program, x->program_len);
    ship.first_event = 1;
    ship.acks = x->acks;
    memcpy(ship.public_key, x->public_key, sizeof ship.public_key);
    memcpy(ship.secret, x->secret, x->secret_len);
    ship.secret_len = x->secret_len;
    rv = ship.program == NULL ? BERTH_ENOMEM : store_ship_put(scratch, &ship);
    sodium_memzero(ship.secret, sizeof ship.secret);
    store_ship_clear(&ship);
    if (rv == 0) {
        rv = shipcopy_put(scratch, sid, copy->data, copy->len);
    }
    if (rv == 0) {
        rv = fsck_ship(scratch, &h->keys, sid, &r);
    }
    if (rv == BERTH_EMALFORMED || (rv == 0 && !r.ok)) {
        err_printf(errmsg, "%s",
                   rv == 0 ? r.problem : "its stored data does not decode");
        rv = BERTH_ECORRUPT;
    } else if (rv != 0) {
        err_printf(errmsg, "%s", store_errmsg(scratch));
    }
    store_close(scratch);
    return rv;
}

/* Seal the ship's data for the next sid, check it and propose it. */
static void host__import_propose(struct host__import *im)
{
    struct host *h = im->host;
    char errmsg[ERRMSG_SIZE] = "";
    uint64_t next;
    struct buf copy, entry;
    buf_init(&copy);
    buf_init(&entry);
    int rv = store_meta_get(h->store, "next_sid", &next);
    /* The ship keeps its seed, so its own key too: what is sealed again
     * for the new sid is sealed under the same own key. */
    uint8_t own_key[SEAL_OWN_KEY_SIZE];
    const uint8_t *own = NULL;
    if (rv == 0) {
        int orv = record_ship_own_key(&h->keys, im->x.secret, im->x.secret_len,
                                      im->x.public_key, own_key);
        if (orv == 0) {
            own = own_key;
        } else if (orv != BERTH_ENOTFOUND) {
            err_printf(errmsg, "its secret key does not open");
            rv = BERTH_ECORRUPT;
        }
    }
    if (rv == 0) {
        rv = shipcopy_reseal(im->x.copy, im->x.copy_len, &h->keys, own,
                             im->x.sid, next + 1, &copy, errmsg);
    }
    sodium_memzero(own_key, sizeof own_key);
    if (rv == 0) {
        rv = host__import_check(h, &im->x, next + 1, &copy, errmsg);
    }
    if (rv == 0) {
        struct export_ship y = im->x;
        y.sid = next + 1;
        y.account = im->account;
        y.copy = copy.data;
        y.copy_len = copy.len;
        rv = export_encode_entry(&entry, &y);
    }
    if (rv == 0) {
        rv = host_propose_entry(h, &entry, host__import_done, im);
        if (rv != 0) {
            err_printf(errmsg, "cannot log the import: %s", err_str(rv));
        }
    }
    buf_free(&copy);
    if (rv == 0) {
        return;
    }
    buf_free(&entry);
    if (rv == BERTH_ECORRUPT || rv == BERTH_EMALFORMED) {
        host_reply_error(im->req, 400, "corrupt",
                         "the export is damaged: %s; nothing was changed",
                         errmsg[0] ? errmsg : "its copy does not decode");
    } else {
        host_reply_error(im->req, 503, "unavailable", "cannot import: %s",
                         errmsg[0] ? errmsg : err_str(rv));
    }
    host__import_free(im);
}

void host_ship_import(struct host *h, struct http_request *req)
{
    struct host__import *im = mem_calloc(1, sizeof *im);
    if (im == NULL) {
        host_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    im->host = h;
    im->req = req;
    buf_init(&im->plain);
    uint64_t sid = 0;
    int rv = export_open_file(req->body.data, req->body.len, &h->keys,
                              &im->plain, &sid);
    if (rv == BERTH_EMALFORMED) {
        host_reply_error(req, 400, "bad_request",
                         "the body is not a berth ship export (%zu bytes)",
                         req->body.len);
        goto err_after_alloc;
    }
    if (rv == BERTH_ECORRUPT) {
        host_reply_error(req, 400, "corrupt",
                         "the export does not open: it was cut short or "
                         "changed, or this cluster lacks the key it was "
                         "sealed under (an export opens only with the master "
                         "key of the cluster that wrote it); nothing was "
                         "changed");
        goto err_after_alloc;
    }
    if (rv != 0) {
        host_reply_error(req, 503, "unavailable", "cannot open the export: %s",
                         err_str(rv));
        goto err_after_alloc;
    }
    struct export_ship *x = &im->x;
    char id[REGISTRY_ID_LEN + 1], name[STORE_NAME_MAX + 1];
    char account[STORE_NAME_MAX + 1];
    if (export_decode_entry(im->plain.data, im->plain.len, x) != 0 ||
        x->sid != sid || x->id_len != REGISTRY_ID_LEN ||
        x->name_len > STORE_NAME_MAX || x->secret_len > STORE_SECRET_MAX ||
        x->account_name_len == 0 || x->account_name_len > STORE_NAME_MAX) {
        host_reply_error(req, 400, "corrupt",
                         "the export opens but its contents do not decode; "
                         "nothing was changed");
        goto err_after_alloc;
    }
    registry_id_encode(x->public_key, REGISTRY_KEY_SIZE, id);
    if (memcmp(id, x->id, REGISTRY_ID_LEN) != 0) {
        host_reply_error(req, 400, "corrupt",
                         "the export's ship id is not its public key's; "
                         "nothing was changed");
        goto err_after_alloc;
    }
    snprintf(name, sizeof name, "%.*s", (int)x->name_len, x->name);
    snprintf(account, sizeof account, "%.*s", (int)x->account_name_len,
             x->account_name);
    struct store_account a;
    rv = store_account_get(h->store, account, &a);
    if (rv == BERTH_ENOTFOUND) {
        host_reply_error(req, 404, "not_found",
                         "the ship's account %s does not exist here: make it "
                         "first (berth account new %s)",
                         account, account);
        goto err_after_alloc;
    }
    if (rv != 0) {
        host_reply_error(req, 500, "internal", "cannot read accounts: %s",
                         store_errmsg(h->store));
        goto err_after_alloc;
    }
    im->account = a.id;
    if (registry_find(&h->reg, id) != REGISTRY_NONE) {
        host_reply_error(req, 409, "conflict",
                         "ship %s exists: remove it first to restore it from "
                         "the export",
                         id);
        goto err_after_alloc;
    }
    if (name[0] != '\0' && registry_find(&h->reg, name) != REGISTRY_NONE) {
        host_reply_error(req, 409, "conflict",
                         "another ship is named %s: remove or rename it first",
                         name);
        goto err_after_alloc;
    }
    host__import_propose(im);
    return;

err_after_alloc:
    host__import_free(im);
}
