/* A heartbeat's bytes: what one host tells the others of its liveness and
 * load (daemon/beats.c sends and keeps them; docs/cluster.md,
 * "Heartbeats"). They come from peers, so this module alone turns them
 * into fields and back, apart from any connection or host.
 *
 * The message, all integers little-endian (BEAT_SIZE bytes; longer ones
 * are read as far as this version knows, so a later version may add fields
 * at the end):
 *
 *   version u8 (1) | flags u8 (1: leading) | front-door port u16
 *   | load average x1000 u32 | wall clock ns u64 | resident bytes u64
 *   | programs u64 | live ships u64 | descriptors u64 | processors u32
 *
 * Flag bits other than leading are written as zero and ignored when read.
 * The front-door port (that of `berth serve --listen`; 0: unknown, as
 * earlier versions wrote these bytes) lets a host that does not lead pass
 * a WebSocket on to the leader's front door. */
#ifndef BERTH_CORE_BEAT_H
#define BERTH_CORE_BEAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BEAT_VERSION 1
#define BEAT_SIZE 52

/* What a heartbeat says of the host that sent it. */
struct beat {
    uint64_t sent_ns;    /* the sender's wall clock when it sent it */
    uint64_t rss_bytes;  /* the host process's resident memory */
    uint64_t programs;   /* programs running */
    uint64_t live;       /* ships with a live object */
    uint64_t fds;        /* descriptors open in the host process */
    uint32_t load_milli; /* the machine's 1-minute load average, x1000 */
    uint32_t cpus;       /* processors online */
    bool leading;
    uint16_t front_port; /* the front door's TCP port; 0: unknown */
};

/* Write the message for b into out (BEAT_SIZE bytes). */
void beat_encode(const struct beat *b, uint8_t out[BEAT_SIZE]);

/* Read the message p[0..len) into *b. Returns 0, or BERTH_EMALFORMED when
 * it is shorter than BEAT_SIZE or of a version this host cannot read (*b is
 * then left as it was). */
int beat_decode(const uint8_t *p, size_t len, struct beat *b);

#endif
