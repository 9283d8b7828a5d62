/* A log ring: the last bytes of an endless stream, kept in one file.
 *
 * A program's stderr has no end, but what is worth keeping of it is the
 * most recent part. A ring file holds the last `cap` bytes written to it:
 * a header, then `cap` bytes of data in which the stream's byte at offset
 * x (counted from the ring's first byte ever) sits at x % cap. The header
 * says the capacity, the stream's end (the offset one past its last
 * byte) and its start (the oldest byte held, when the capacity shrank or
 * a hole was never written), so a reader asks for what came after an offset it
 * saw, and a follower never misses or repeats a byte the ring still holds:
 *
 *   magic "berthlr1" | capacity u64 | end u64 | start u64
 *
 * little-endian, LOGRING_HEADER bytes, the data right behind. A file takes
 * on disk no more than what was written to it, up to the header and cap.
 * Each call opens the file, does its few reads or writes and closes it:
 * a ring costs no descriptor and no memory between calls. Writes are not
 * synced, and the header is written after the data, so a crash of the
 * machine may leave the oldest bytes replaced by newer ones: it is a log
 * for a human to read, not a record. */
#ifndef BERTH_LIB_LOGRING_H
#define BERTH_LIB_LOGRING_H

#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"

#define LOGRING_HEADER 32

/* Append n bytes at data to the ring in path, made (mode 0600) if it is
 * not there, keeping its last cap bytes (cap > 0). A ring made with
 * another capacity keeps its most recent bytes that fit the new one.
 * Returns 0, BERTH_EINVAL for a cap of 0, or BERTH_EIO (errno says why). */
int logring_append(const char *path, uint64_t cap, const void *data, size_t n);

/* Read from the ring in path the bytes from offset from on, at most max
 * of them, appended to out (the caller's; it frees it); from UINT64_MAX
 * asks for the last max bytes. *start is set to the offset of the first
 * byte read and *end to the stream's end: bytes before from that the ring
 * no longer holds are skipped (*start > from), and a from past the end
 * (another ring, or one made anew) reads from the oldest byte held. A
 * ring not there reads as empty (*start = *end = 0). Returns 0,
 * BERTH_ECORRUPT for a file that is not a ring, BERTH_ENOMEM or
 * BERTH_EIO. */
int logring_read(const char *path, uint64_t from, size_t max, struct buf *out,
                 uint64_t *start, uint64_t *end);

#endif
