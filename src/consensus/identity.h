/* The identity file, DIR/cluster: which cluster a host is in, its raft id
 * there and the peer address it was last started with, as text:
 *
 *   cluster 0123...ef (32 hex digits)
 *   id 1
 *   peer 10.0.0.1:7001 (or "local")
 *
 * The log reads it at every start and writes it when the host bootstraps
 * or joins; this module turns it into fields and back, apart from the
 * file. */
#ifndef BERTH_CONSENSUS_IDENTITY_H
#define BERTH_CONSENSUS_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "consensus/transport.h"

/* The longest peer address the file keeps. */
#define IDENTITY_PEER_MAX 255

/* Room for the file's whole text and its NUL. */
#define IDENTITY_TEXT_SIZE 512

/* Who a host is in its cluster. */
struct identity {
    uint8_t cluster[TRANSPORT_CLUSTER_SIZE];
    uint64_t id;                      /* never 0 once parsed */
    char peer[IDENTITY_PEER_MAX + 1]; /* NUL-terminated, no whitespace */
};

/* Parse the NUL-terminated text of an identity file into *out. Returns 0,
 * or BERTH_ECORRUPT when it is not one (a field missing, a cluster id that
 * is not 32 hex digits, an id of 0). */
int identity_parse(const char *text, struct identity *out);

/* Write the text of the identity file for who into out (size bytes,
 * IDENTITY_TEXT_SIZE is enough) and return its length, as snprintf()
 * does. */
int identity_format(const struct identity *who, char *out, size_t size);

#endif
