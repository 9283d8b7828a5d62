#include "consensus/identity.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/err.h"

int identity_parse(const char *text, struct identity *out)
{
    char hex[64];
    unsigned long long id;
    memset(out, 0, sizeof *out);
    if (sscanf(text, "cluster %63s id %llu peer %255s", hex, &id, out->peer) !=
            3 ||
        strlen(hex) != 2 * TRANSPORT_CLUSTER_SIZE || id == 0) {
        return BERTH_ECORRUPT;
    }
    for (int i = 0; i < TRANSPORT_CLUSTER_SIZE; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return BERTH_ECORRUPT;
        }
        out->cluster[i] = (uint8_t)v;
    }
    out->id = id;
    return 0;
}

int identity_format(const struct identity *who, char *out, size_t size)
{
    char hex[2 * TRANSPORT_CLUSTER_SIZE + 1];
    for (int i = 0; i < TRANSPORT_CLUSTER_SIZE; i++) {
        snprintf(hex + 2 * i, 3, "%02x", who->cluster[i]);
    }
    return snprintf(out, size, "cluster %s\nid %llu\npeer %s\n", hex,
                    (unsigned long long)who->id, who->peer);
}

int identity_rejoin_parse(const char *text, struct identity_rejoin *out)
{
    memset(out, 0, sizeof *out);
    while (*text != '\0') {
        const char *end = strchr(text, '\n');
        size_t len = end != NULL ? (size_t)(end - text) : strlen(text);
        char line[IDENTITY_PEER_MAX + 32], word[16],
            value[IDENTITY_PEER_MAX + 2];
        if (len >= sizeof line) {
            return BERTH_ECORRUPT;
        }
        memcpy(line, text, len);
        line[len] = '\0';
        text += len + (end != NULL);
        if (len == 0) {
            continue;
        }
        int used = 0;
        if (sscanf(line, "%15s %256s%n", word, value, &used) != 2 ||
            line[used] != '\0' || strlen(value) > IDENTITY_PEER_MAX) {
            return BERTH_ECORRUPT;
        }
        if (strcmp(word, "replaces") == 0) {
            char *rest;
            errno = 0;
            unsigned long long id = strtoull(value, &rest, 10);
            if (*rest != '\0' || id == 0 || value[0] == '-' || errno != 0) {
                return BERTH_ECORRUPT;
            }
            out->replaces = id;
        } else if (strcmp(word, "peer") == 0) {
            memcpy(out->peer, value, strlen(value) + 1);
        } else if (strcmp(word, "member") == 0) {
            if (out->n < IDENTITY_MEMBERS_MAX) {
                memcpy(out->members[out->n++], value, strlen(value) + 1);
            }
        } else {
            return BERTH_ECORRUPT;
        }
    }
    return 0;
}

int identity_rejoin_format(const struct identity_rejoin *r, char *out,
                           size_t size)
{
    size_t n = 0;
    int k;
    if (r->replaces != 0) {
        k = snprintf(out, size, "replaces %llu\n",
                     (unsigned long long)r->replaces);
        n += k > 0 ? (size_t)k : 0;
    }
    if (r->peer[0] != '\0') {
        k = snprintf(out + (n < size ? n : size), n < size ? size - n : 0,
                     "peer %s\n", r->peer);
        n += k > 0 ? (size_t)k : 0;
    }
    for (unsigned i = 0; i < r->n && i < IDENTITY_MEMBERS_MAX; i++) {
        k = snprintf(out + (n < size ? n : size), n < size ? size - n : 0,
                     "member %s\n", r->members[i]);
        n += k > 0 ? (size_t)k : 0;
    }
    if (n == 0 && size > 0) {
        out[0] = '\0';
    }
    return (int)n;
}
