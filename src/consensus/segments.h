/* A read-only check of libraft's segment files, made before libraft opens
 * them.
 *
 * libraft's uv backend keeps the log in segment files. Closed segments
 * ("<first>-<last>") are checked by libraft itself: a damaged one fails to
 * load with a clear error. Open segments ("open-<n>", the ones being
 * written, preallocated and zero-filled) are not: libraft truncates an open
 * segment at its first batch that fails its checksum, whatever follows it,
 * keeps loading later open segments as if nothing were missing, and crashes
 * (a double free in 0.22.1) on a segment cut short in the middle of a batch.
 * A flipped byte in the middle of the log would thus drop every entry after
 * it without a word, and the host would go on to number new entries as if
 * they were the lost ones.
 *
 * Closed segments are read whole here too, although libraft checks them
 * when it loads them: it does so only once raft has taken the directory
 * over, when a host can do nothing about damage but exit; found here, a
 * host in a cluster can set its copy aside and join again
 * (docs/design.md, "A damaged log").
 *
 * A torn write at the end of an open segment is the one kind of damage
 * that libraft's truncation is right for: it can only hit the last write,
 * which was never acknowledged. That is true only if the entry was never
 * applied: every entry is applied before anything it commits is released,
 * so an entry at or below the state machine's applied index may have been
 * acknowledged, and must not be dropped. This check reads the open
 * segments the way libraft will, and refuses (so that libraft never
 * touches the files) when libraft would drop such an entry, when damage
 * sits in front of valid entries, or when a segment is cut short. Only a
 * torn tail beyond the applied index is left for libraft to truncate.
 *
 * The format read here is libraft's disk format 1: a u64 format version,
 * then batches of u32 header checksum | u32 data checksum | u64 n |
 * n * (u64 term | u8 type | 3 unused | u32 length) | entry data, all
 * little-endian, the checksums being CRC-32 (polynomial 0x04C11DB7,
 * most significant bit first, no reflection, initial value 0). */
#ifndef BERTH_CONSENSUS_SEGMENTS_H
#define BERTH_CONSENSUS_SEGMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a check of a raft directory found. */
struct segments_report {
    uint64_t last_index; /* the last entry libraft will load; 0: none */
    uint64_t torn_index; /* first entry of a torn tail to drop; 0: none */
    char torn_file[64];  /* the open segment holding it */
    /* The snapshot libraft will load, its metadata checked: the data
     * file's name ("snapshot-<term>-<index>-<time>"); "": none. Its
     * contents are the state machine's to check. */
    char snapshot_file[96];
    uint64_t torn_offset; /* where libraft will truncate it */
};

/* Check the segment files in dir against applied, the index of the last
 * entry the state machine has applied. Returns 0 with *report filled when
 * libraft can load the directory without losing an applied entry (a torn
 * tail beyond applied is reported, not refused); BERTH_ECORRUPT with a
 * message naming the file, the byte offset and the entry when it cannot
 * (any damage to a closed segment, closed segments that do not follow each
 * other or the snapshot, damage to an open one that would drop an entry,
 * the latest snapshot's metadata damaged);
 * BERTH_EIO or BERTH_ENOMEM when the files cannot be read. A directory that
 * does not exist holds nothing and checks clean. Reads only. */
int segments_check(const char *dir, uint64_t applied,
                   struct segments_report *report, char *errmsg);

/* Read the len bytes at p as a snapshot's metadata file, the way libraft
 * will: a u64 format of 1, a u64 CRC-32 of every byte after it, then the
 * configuration's index, length and bytes. Returns 0, or BERTH_ECORRUPT
 * with what is wrong in why (64 bytes). Reads only p[0..len). */
int segments_check_meta(const uint8_t *p, size_t len, char *why);

/* What reading one open segment's bytes as libraft will found. */
struct segments_scan {
    uint64_t entries;   /* entries in the batches that check */
    bool damaged;       /* a batch fails its checks */
    bool cut;           /* the bytes end inside a batch */
    uint64_t damage_at; /* byte offset of the first bad batch */
    char why[64];       /* what is wrong, when damaged or cut */
    bool data_after;    /* non-zero bytes after the bad batch's end */
};

/* Read the len bytes at p as the contents of an open segment, the way
 * libraft will, into *scan: the entries of the batches that check, and
 * where and how the first bad one fails. Bytes never written (none, or
 * only zeros) hold no entries and no damage. Reads only p[0..len). */
void segments_scan_open(const uint8_t *p, size_t len,
                        struct segments_scan *scan);

/* Return the CRC-32 that libraft's segment format uses, continuing from
 * crc (0 to start). */
uint32_t segments_crc32(const void *data, size_t len, uint32_t crc);

#endif
