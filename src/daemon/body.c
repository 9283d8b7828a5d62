#include "daemon/body.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/gate.h"
#include "core/ship.h"
#include "lib/err.h"
#include "lib/mem.h"
#include "proc/proc.h"
#include "proto/frame.h"

/* Ships one `ship new --count` may create. */
#define BODY__COUNT_MAX 1000000

/* Write why into errmsg (BODY_ERRMSG_SIZE bytes) and return
 * BERTH_EINVAL. */
static int body__refuse(char *errmsg, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int body__refuse(char *errmsg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, BODY_ERRMSG_SIZE, fmt, ap);
    va_end(ap);
    return BERTH_EINVAL;
}

/* Whether key can name an environment variable: a letter or '_', then
 * letters, digits and '_'. */
static bool body__env_key_ok(const char *key)
{
    size_t n = strlen(key);
    if (n == 0 || n > 255 || (key[0] >= '0' && key[0] <= '9')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = key[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              (ch >= '0' && ch <= '9') || ch == '_')) {
            return false;
        }
    }
    return true;
}

/* Append key, or "key=value" when value is not NULL, and its NUL to a
 * string list; 0 or BERTH_ENOMEM. */
static int body__list_add(struct buf *list, const char *key, const char *value)
{
    int rv = buf_append(list, key, strlen(key));
    if (rv == 0 && value != NULL) {
        rv = buf_append(list, "=", 1);
        if (rv == 0) {
            rv = buf_append(list, value, strlen(value));
        }
    }
    return rv != 0 ? rv : buf_append(list, "", 1);
}

/* Turn the optional "args" (an array of strings) and "env" (an object of
 * strings) of a creation into string lists; on failure writes why to
 * errmsg and returns BERTH_EINVAL (or BERTH_ENOMEM). */
static int body__lists(json_t *args, json_t *env, struct buf *a, struct buf *e,
                       char *errmsg)
{
    size_t i;
    json_t *v;
    const char *key;
    int rv;
    if (args != NULL &&
        (!json_is_array(args) || json_array_size(args) > PROC_ARGS_MAX)) {
        return body__refuse(errmsg,
                            "args must be an array of at most %d strings",
                            PROC_ARGS_MAX);
    }
    json_array_foreach(args, i, v)
    {
        if (!json_is_string(v)) {
            return body__refuse(errmsg, "args[%zu] is not a string", i);
        }
        if ((rv = body__list_add(a, json_string_value(v), NULL)) != 0) {
            return rv;
        }
    }
    if (env != NULL &&
        (!json_is_object(env) || json_object_size(env) > PROC_ARGS_MAX)) {
        return body__refuse(errmsg,
                            "env must be an object of at most %d variables, "
                            "such as {\"KEY\": \"value\"}",
                            PROC_ARGS_MAX);
    }
    json_object_foreach(env, key, v)
    {
        if (!body__env_key_ok(key) || strcmp(key, "BERTH_SHIP") == 0 ||
            strcmp(key, "BERTH_HOST") == 0) {
            return body__refuse(
                errmsg,
                "env: \"%.64s\" cannot name a variable: use letters, digits "
                "and '_', not starting with a digit (BERTH_SHIP and "
                "BERTH_HOST are the host's)",
                key);
        }
        if (!json_is_string(v)) {
            return body__refuse(errmsg, "env: the value of %s is not a string",
                                key);
        }
        if ((rv = body__list_add(e, key, json_string_value(v))) != 0) {
            return rv;
        }
    }
    if (a->len + e->len > PROC_ARGS_BYTES_MAX) {
        return body__refuse(errmsg,
                            "args and env take %zu bytes; at most %d are "
                            "allowed",
                            a->len + e->len, PROC_ARGS_BYTES_MAX);
    }
    return 0;
}

/* Read the optional timeout field key of spec into *out: absent or null is
 * 0 (the host's default); for the freeze timeout (zero_is_never) a given 0
 * is STORE_TIMEOUT_NEVER. Returns 0 or BERTH_EINVAL with why in errmsg. */
static int body__timeout(json_t *spec, const char *key, bool zero_is_never,
                         uint64_t *out, char *errmsg)
{
    json_t *v = json_object_get(spec, key);
    const long long year = 365LL * 24 * 3600 * 1000;
    *out = 0;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > year) {
        return body__refuse(errmsg,
                            "%s must be a number of milliseconds from 0 to a "
                            "year (%lld)",
                            key, year);
    }
    *out = (uint64_t)json_integer_value(v);
    if (*out == 0 && zero_is_never) {
        *out = STORE_TIMEOUT_NEVER;
    }
    return 0;
}

/* Check a creation's "parent" and "lifetime" (each NULL when absent) into
 * out: a lifetime only with a parent (linked when left out), and a parent
 * only for one ship. Whether the parent exists is the caller's to check.
 * Returns 0 or BERTH_EINVAL with why in errmsg. */
static int body__lineage(json_t *spec, const char *parent, const char *lifetime,
                         struct body_create *out, char *errmsg)
{
    if (parent == NULL) {
        if (lifetime != NULL || json_object_get(spec, "lifetime_ms") != NULL) {
            return body__refuse(errmsg,
                                "lifetime goes with parent: only a child "
                                "(a ship with a parent) has a lifetime");
        }
        return 0;
    }
    /* Ids and names are both of a-z, 0-9 and '-'. */
    if (strlen(parent) > STORE_NAME_MAX || !ship_name_valid(parent)) {
        return body__refuse(errmsg,
                            "parent must be a ship's id or name, not "
                            "\"%.64s\"",
                            parent);
    }
    json_t *count = json_object_get(spec, "count");
    if (count != NULL && json_integer_value(count) != 1) {
        return body__refuse(errmsg,
                            "a ship with a parent is made alone: count must "
                            "be 1 or left out");
    }
    snprintf(out->parent, sizeof out->parent, "%s", parent);
    out->lifetime = FRAME_LIFETIME_LINKED;
    if (lifetime != NULL && ship_lifetime_parse(lifetime, &out->lifetime)) {
        return body__refuse(errmsg,
                            "lifetime must be \"root\", \"linked\", "
                            "\"ephemeral\", \"resetting\" or \"leased\", "
                            "not \"%.64s\"",
                            lifetime);
    }
    /* Only a resetting or leased child takes a time, and must. */
    bool timed = out->lifetime >= FRAME_LIFETIME_RESETTING;
    json_t *ms = json_object_get(spec, "lifetime_ms");
    if (ms != NULL && !timed) {
        return body__refuse(errmsg,
                            "lifetime_ms goes with lifetime \"resetting\" "
                            "or \"leased\" only");
    }
    int rv =
        body__timeout(spec, "lifetime_ms", false, &out->lifetime_ms, errmsg);
    if (rv == 0 && timed && out->lifetime_ms < FRAME_LIFETIME_MIN_MS) {
        rv = body__refuse(errmsg,
                          "a resetting or leased child needs lifetime_ms: "
                          "the milliseconds without an event after which "
                          "its state empties, or of its lease, at least %d",
                          FRAME_LIFETIME_MIN_MS);
    }
    return rv;
}

/* Read a cap given as a string or a number into text (size bytes); false
 * for any other JSON value. */
static bool body__cap_text(json_t *v, char *text, size_t size)
{
    if (json_is_string(v)) {
        snprintf(text, size, "%s", json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(text, size, "%lld", (long long)json_integer_value(v));
    } else if (json_is_real(v)) {
        snprintf(text, size, "%.3f", json_real_value(v));
        /* "0.500" reads as "0.5"; trailing zeros are not precision. */
        char *end = text + strlen(text);
        while (end > text && end[-1] == '0') {
            *--end = '\0';
        }
        if (end > text && end[-1] == '.') {
            *--end = '\0';
        }
    } else {
        return false;
    }
    return true;
}

int body_parse_caps(json_t *memory, json_t *cpu, json_t *pids, struct caps *out,
                    char *errmsg)
{
    char text[64];
    memset(out, 0, sizeof *out);
    if (memory != NULL && (!body__cap_text(memory, text, sizeof text) ||
                           caps_parse_memory(text, &out->memory_bytes) != 0)) {
        return body__refuse(errmsg,
                            "memory must be a size of at least 4M, such as "
                            "\"64M\", \"1G\" or a number of bytes, or "
                            "\"none\"");
    }
    if (cpu != NULL && (!body__cap_text(cpu, text, sizeof text) ||
                        caps_parse_cpu(text, &out->cpu_millis) != 0)) {
        return body__refuse(errmsg,
                            "cpu must be a number of cores from 0.01 to "
                            "1024, such as 0.5, or \"none\"");
    }
    if (pids != NULL && (!body__cap_text(pids, text, sizeof text) ||
                         caps_parse_pids(text, &out->pids) != 0)) {
        return body__refuse(errmsg,
                            "pids must be a whole number of at least 2, or "
                            "\"none\"");
    }
    return 0;
}

/* Check the fields of a creation's JSON object spec into *out, whose lists
 * are initialized and program NULL. */
static int body__create(json_t *spec, struct body_create *out, char *errmsg)
{
    const char *program = NULL;
    const char *name = "";
    json_int_t count = 0;
    json_t *idle_j = NULL, *freeze_j = NULL, *args = NULL, *env = NULL;
    json_t *acks_j = NULL, *lifetime_ms = NULL; /* read by body__lineage */
    json_t *memory = NULL, *cpu = NULL, *pids = NULL;
    const char *account = "", *parent = NULL, *lifetime = NULL;
    int network = 0;
    json_error_t jerr;
    if (json_unpack_ex(spec, &jerr, JSON_STRICT,
                       "{s:s, s?:s, s?:I, s?:o, s?:o, s?:o, s?:o, s?:o, s?:s, "
                       "s?:s, s?:s, s?:o, s?:b, s?:o, s?:o, s?:o}",
                       "program", &program, "name", &name, "count", &count,
                       "idle_timeout_ms", &idle_j, "freeze_timeout_ms",
                       &freeze_j, "args", &args, "env", &env, "acks", &acks_j,
                       "account", &account, "parent", &parent, "lifetime",
                       &lifetime, "lifetime_ms", &lifetime_ms, "network",
                       &network, "memory", &memory, "cpu", &cpu, "pids",
                       &pids) != 0) {
        return body__refuse(errmsg,
                            "expected {\"program\": PATH, \"name\"?: NAME, "
                            "\"count\"?: N, \"idle_timeout_ms\"?: MS, "
                            "\"freeze_timeout_ms\"?: MS, \"args\"?: [ARG, "
                            "...], \"env\"?: {KEY: VALUE, ...}, \"acks\"?: "
                            "LEVEL, \"account\"?: NAME, \"parent\"?: SHIP, "
                            "\"lifetime\"?: LIFETIME, \"lifetime_ms\"?: MS, "
                            "\"network\"?: BOOL, \"memory\"?: SIZE, "
                            "\"cpu\"?: CORES, \"pids\"?: N}: %s",
                            jerr.text);
    }
    out->network = network != 0;
    int crv = body_parse_caps(memory, cpu, pids, &out->caps, errmsg);
    if (crv != 0) {
        return crv;
    }
    if (strlen(account) > STORE_NAME_MAX) {
        return body__refuse(errmsg, "no account named %.64s...", account);
    }
    snprintf(out->account, sizeof out->account, "%s", account);
    int rv = body__lineage(spec, parent, lifetime, out, errmsg);
    if (rv != 0) {
        return rv;
    }
    out->acks = GATE_ACKS_DEFAULT;
    if (acks_j != NULL) {
        char text[32] = "";
        if (json_is_integer(acks_j)) {
            snprintf(text, sizeof text, "%lld",
                     (long long)json_integer_value(acks_j));
        } else if (json_is_string(acks_j)) {
            snprintf(text, sizeof text, "%s", json_string_value(acks_j));
        }
        if (gate_acks_parse(text, &out->acks) != 0) {
            return body__refuse(errmsg,
                                "acks must be a number of hosts from 0 to %d, "
                                "\"quorum\" or \"all\"",
                                GATE_ACKS_MAX);
        }
    }
    if ((rv = body__timeout(spec, "idle_timeout_ms", false, &out->idle_ms,
                            errmsg)) != 0 ||
        (rv = body__timeout(spec, "freeze_timeout_ms", true, &out->freeze_ms,
                            errmsg)) != 0) {
        return rv;
    }
    out->single = json_object_get(spec, "count") == NULL;
    if (out->single) {
        count = 1;
    }
    if (count < 1 || count > BODY__COUNT_MAX) {
        return body__refuse(errmsg, "count must be from 1 to %d, not %lld",
                            BODY__COUNT_MAX, (long long)count);
    }
    out->count = (uint32_t)count;
    if (json_object_get(spec, "name") != NULL && name[0] == '\0') {
        return body__refuse(errmsg,
                            "name must not be empty: leave it out for an "
                            "unnamed ship");
    }
    /* With a count, NAME is a prefix: the ships are NAME-1 ... NAME-N. */
    char longest[STORE_NAME_MAX + 16];
    snprintf(longest, sizeof longest, out->single ? "%s" : "%s-%lld", name,
             (long long)count);
    if (name[0] != '\0' &&
        (strlen(longest) > STORE_NAME_MAX || !ship_name_valid(longest))) {
        return body__refuse(errmsg,
                            "ship name \"%s\" is not valid: use 1 to 63 of "
                            "a-z, 0-9 and '-', not starting with '-'",
                            longest);
    }
    snprintf(out->name, sizeof out->name, "%s", name);
    rv = body__lists(args, env, &out->args, &out->env, errmsg);
    if (rv != 0) {
        return rv;
    }
    out->program = mem_strdup(program);
    return out->program != NULL ? 0 : BERTH_ENOMEM;
}

int body_parse_create(const uint8_t *data, size_t len, struct body_create *out,
                      char *errmsg)
{
    json_error_t jerr;
    memset(out, 0, sizeof *out);
    buf_init(&out->args);
    buf_init(&out->env);
    json_t *spec = json_loadb((const char *)data, len, 0, &jerr);
    if (spec == NULL) {
        return body__refuse(errmsg, "body is not JSON: %s", jerr.text);
    }
    int rv = body__create(spec, out, errmsg);
    json_decref(spec);
    if (rv != 0) {
        body_create_free(out);
    }
    return rv;
}

void body_create_free(struct body_create *c)
{
    mem_free(c->program);
    c->program = NULL;
    buf_free(&c->args);
    buf_free(&c->env);
}

int body_parse_join(const uint8_t *data, size_t len, char **peer,
                    uint8_t *secret, bool *has_secret, char *errmsg)
{
    json_error_t jerr;
    const char *p = NULL, *hex = NULL;
    size_t got = 0;
    *peer = NULL;
    *has_secret = false;
    json_t *spec = json_loadb((const char *)data, len, 0, &jerr);
    if (spec == NULL || json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:s, s?:s}",
                                       "peer", &p, "secret", &hex) != 0) {
        json_decref(spec);
        return body__refuse(errmsg,
                            "expected {\"peer\": IP:PORT, \"secret\": HEX}: "
                            "%s",
                            jerr.text);
    }
    if (hex != NULL && (strlen(hex) != 2 * BODY_SECRET_SIZE ||
                        sodium_hex2bin(secret, BODY_SECRET_SIZE, hex,
                                       strlen(hex), NULL, &got, NULL) != 0 ||
                        got != BODY_SECRET_SIZE)) {
        sodium_memzero(secret, BODY_SECRET_SIZE);
        json_decref(spec);
        return body__refuse(errmsg, "the cluster secret is 64 hex digits");
    }
    *has_secret = hex != NULL;
    *peer = mem_strdup(p);
    json_decref(spec);
    if (*peer == NULL) {
        sodium_memzero(secret, BODY_SECRET_SIZE);
        *has_secret = false;
        return BERTH_ENOMEM;
    }
    return 0;
}

int body_parse_fsck(const uint8_t *data, size_t len, struct buf *names,
                    bool *replay, bool *repair, char *errmsg)
{
    json_error_t jerr;
    json_t *spec, *ships = NULL;
    int r = 0, fix = 0;
    *replay = *repair = false;
    if (len == 0) {
        return 0;
    }
    spec = json_loadb((const char *)data, len, 0, &jerr);
    if (spec == NULL ||
        json_unpack_ex(spec, &jerr, JSON_STRICT, "{s?:o, s?:b, s?:b}", "ships",
                       &ships, "replay", &r, "repair", &fix) != 0 ||
        (ships != NULL && (!json_is_array(ships) ||
                           json_array_size(ships) > BODY_FSCK_SHIPS_MAX))) {
        json_decref(spec);
        return body__refuse(errmsg,
                            "expected {\"ships\": [ID or NAME, ...] (at most "
                            "%d), \"replay\": BOOL, \"repair\": BOOL}",
                            BODY_FSCK_SHIPS_MAX);
    }
    size_t i;
    json_t *v;
    int rv = 0;
    json_array_foreach(ships, i, v)
    {
        const char *who = json_string_value(v);
        size_t n = who != NULL ? strlen(who) : 0;
        if (n == 0 || n > STORE_ID_MAX + STORE_NAME_MAX ||
            memchr(who, '\0', json_string_length(v)) != NULL) {
            rv = body__refuse(errmsg, "ships[%zu] is not a ship's id or name",
                              i);
            break;
        }
        if ((rv = buf_append(names, who, n + 1)) != 0) {
            break;
        }
    }
    *replay = rv == 0 && r != 0;
    *repair = rv == 0 && fix != 0;
    json_decref(spec);
    return rv;
}
