#include "consensus/identity.h"

#include <stdio.h>
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
