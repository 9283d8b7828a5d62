/* A ship in one file: what `berth ship export` writes and `berth ship
 * import` restores, and the log entry that restores it on every host.
 *
 * An export carries a ship whole: its identity (sid, id, public key and
 * its sealed secret), name, program with its arguments and environment,
 * timeouts and ack level, account (by name), access list and sandbox, and
 * its stored data as a copy between hosts carries it (store/shipcopy.h:
 * head, latest and prior snapshot, every event kept), sealed as it lies.
 * Its encoding is the SHIP_IMPORT entry's:
 *
 *     u8 version (1) | u8 type (SHIP_IMPORT) | u64 sid | u64 account |
 *     u16 len | account name | u16 len | id | u16 len | name |
 *     u16 len | program | u32 len | args | u32 len | env | u64 created_ns |
 *     u64 idle_timeout_ms | u64 freeze_timeout_ms | u8 acks |
 *     u32 len | access | u32 len | sandbox | u8 public_key[32] |
 *     u16 len | secret | u32 len | copy
 *
 * (integers little-endian). The file is that entry sealed whole:
 *
 *     "BERTHSHP" | u8 version (1) | u64 sid | seal of the entry
 *
 * under the ship's key (crypto/seal.h, SEAL_USE_SHIP), the 17 bytes before
 * the seal as associated data. So a file truncated or changed anywhere does
 * not open, and one opens only in a cluster with the data key it was sealed
 * under: the cluster it came from (the same master key; its data keys
 * survive key rotations).
 *
 * The file names the sid the ship had, which every seal in it is bound
 * to. An import gives the ship the next sid of the cluster it enters
 * (sids are never given twice), its data opened and sealed again for it
 * (store/shipcopy.h, shipcopy_reseal) and checked as fsck checks a ship,
 * so the entry carries that sid and the account's id there; the ship keeps
 * its id and keys. An entry whose sid was given meanwhile, or whose id,
 * name or account does not fit, changes nothing. The imported ship is a
 * root ship (the operator's), whatever its lineage was.
 *
 * Pure: no I/O; entropy comes from the caller. */
#ifndef BERTH_CORE_EXPORT_H
#define BERTH_CORE_EXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto/seal.h"
#include "lib/buf.h"

/* The file's readable head: magic, version and sid. */
#define EXPORT_HEAD_SIZE (8 + 1 + 8)

/* The most bytes an export may have: what one log entry and one forwarded
 * admin request carry (consensus/log.h's LOG_FORWARD_MAX), less room for
 * the rest of the request. */
#define EXPORT_MAX (16u * 1024 * 1024 - 64 * 1024)

/* A ship as an export carries it; the decoder points every string and blob
 * into the entry (unterminated). */
struct export_ship {
    uint64_t sid;
    uint64_t account; /* its id in the cluster whose entry this is */
    const char *account_name;
    size_t account_name_len;
    const char *id;
    size_t id_len;
    const char *name; /* "" for none */
    size_t name_len;
    const char *program;
    size_t program_len;
    const char *args; /* string lists (lib/strlist.h), or NULL */
    size_t args_len;
    const char *env;
    size_t env_len;
    uint64_t created_ns;
    uint64_t idle_timeout_ms;
    uint64_t freeze_timeout_ms;
    uint8_t acks;
    const char *access; /* string list, or NULL */
    size_t access_len;
    const uint8_t *sandbox; /* core/sandbox.h's blob, or NULL */
    size_t sandbox_len;
    uint8_t public_key[32];
    const uint8_t *secret; /* as the store keeps it (record_ship_secret) */
    size_t secret_len;
    const uint8_t *copy; /* store/shipcopy.h */
    size_t copy_len;
};

/* Append the SHIP_IMPORT entry of x to out. Returns 0, BERTH_ENOMEM, or
 * BERTH_ETOOBIG for a field over its length's width. The caller keeps x. */
int export_encode_entry(struct buf *out, const struct export_ship *x);

/* Decode a SHIP_IMPORT entry (len bytes at p, kept by the caller) into x.
 * Returns 0 or BERTH_EMALFORMED. */
int export_decode_entry(const uint8_t *p, size_t len, struct export_ship *x);

/* Append to out the export file of an entry (len bytes at entry) of ship
 * sid, sealed under keys with nonce (SEAL_NONCE_SIZE random bytes). 0 or
 * BERTH_ENOMEM. The caller keeps every pointer. */
int export_seal_file(struct buf *out, const struct seal_keys *keys,
                     uint64_t sid, const uint8_t *nonce, const uint8_t *entry,
                     size_t len);

/* Open an export file (len bytes at p) with keys into entry (emptied
 * first; the caller's), and set *sid. Returns 0, BERTH_EMALFORMED for
 * bytes that are not an export (no magic, another version, too short), or
 * BERTH_ECORRUPT when its seal does not open: the file was cut short or
 * changed, or this cluster lacks the key it was sealed under. */
int export_open_file(const uint8_t *p, size_t len, const struct seal_keys *keys,
                     struct buf *entry, uint64_t *sid);

#endif
