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

/* The most other members a rejoin file names; more are left out, as any
 * one that answers names the leader. */
#define IDENTITY_MEMBERS_MAX 16

/* Room for a rejoin file's whole text and its NUL. */
#define IDENTITY_REJOIN_TEXT_SIZE                                              \
    (IDENTITY_TEXT_SIZE + IDENTITY_MEMBERS_MAX * (IDENTITY_PEER_MAX + 8))

/* What a host whose raft log is damaged needs to join its cluster again
 * (docs/design.md, "A damaged log"), as text:
 *
 *   replaces 1234 (the id the host had)
 *   peer 10.0.0.1:7001 (its peer address)
 *   member 10.0.0.2:7001 (each other member it last knew, one a line)
 *
 * The log keeps the member lines alone, in raft's directory, whenever the
 * configuration changes ("members"); the host writes the whole file
 * (DATA/rejoin) before it sets its copy aside, and removes it once it has
 * joined again. */
struct identity_rejoin {
    uint64_t replaces;                /* 0: none given */
    char peer[IDENTITY_PEER_MAX + 1]; /* "": none given */
    unsigned n;                       /* members named */
    char members[IDENTITY_MEMBERS_MAX][IDENTITY_PEER_MAX + 1];
};

/* Parse the NUL-terminated text of a rejoin or members file into *out.
 * Lines may come in any order and each is optional; member lines past
 * IDENTITY_MEMBERS_MAX are left out. Returns 0, or BERTH_ECORRUPT for a
 * line that is none of the three or a field that does not fit. */
int identity_rejoin_parse(const char *text, struct identity_rejoin *out);

/* Write the text of r into out (size bytes, IDENTITY_REJOIN_TEXT_SIZE is
 * enough): the replaces and peer lines when given, then the members. Return
 * its length, as snprintf() does. */
int identity_rejoin_format(const struct identity_rejoin *r, char *out,
                           size_t size);

#endif
