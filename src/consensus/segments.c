#include "consensus/segments.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/mem.h"

#define SEGMENTS__FORMAT 1
#define SEGMENTS__PREAMBLE 16 /* two checksums and the entry count */
#define SEGMENTS__ENTRY_HEADER 16
#define SEGMENTS__MAX_OPEN 64
#define SEGMENTS__TYPE_MAX 3 /* command, barrier, configuration change */

uint32_t segments_crc32(const void *data, size_t len, uint32_t crc)
{
    static uint32_t table[256];
    static bool ready;
    if (!ready) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i << 24;
            for (int k = 0; k < 8; k++) {
                c = (c & 0x80000000u) ? (c << 1) ^ 0x04C11DB7u : c << 1;
            }
            table[i] = c;
        }
        ready = true;
    }
    const uint8_t *p = data;
    while (len-- > 0) {
        crc = (crc << 8) ^ table[((crc >> 24) ^ *p++) & 0xff];
    }
    return crc;
}

/* One open segment as libraft will read it. */
struct segments__open {
    char name[64];
    uint64_t counter;
    struct segments_scan scan; /* what its bytes hold */
};

static bool segments__zeros(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

/* Read a whole file into out (which the caller frees with buf_free). */
static int segments__read(const char *path, struct buf *out, char *errmsg)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        err_printf(errmsg, "cannot read %s: %s", path, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return BERTH_EIO;
    }
    int rv = buf_reserve(out, (size_t)st.st_size);
    if (rv != 0) {
        close(fd);
        err_printf(errmsg, "out of memory reading %s", path);
        return rv;
    }
    while (out->len < (size_t)st.st_size) {
        ssize_t n =
            read(fd, out->data + out->len, (size_t)st.st_size - out->len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            err_printf(errmsg, "cannot read %s: %s", path,
                       n < 0 ? strerror(errno) : "file shrank");
            close(fd);
            return BERTH_EIO;
        }
        out->len += (size_t)n;
    }
    close(fd);
    return 0;
}

/* Walk the batches of one open segment's bytes, as libraft does, and note
 * where and how the first bad one fails. */
static void segments__walk(struct segments_scan *o, const uint8_t *p,
                           size_t len)
{
    size_t off = 8;
    for (;;) {
        if (len - off < SEGMENTS__PREAMBLE) {
            /* libraft reads a preamble here: a partial one is a file cut
             * short unless it is only the zero padding of the last block. */
            if (!segments__zeros(p + off, len - off)) {
                o->cut = true;
                o->damage_at = off;
                snprintf(o->why, sizeof o->why, "cut short in a batch");
            }
            return;
        }
        uint64_t n = get_le64(p + off + 8);
        if (n == 0) {
            /* The zeros after the last batch; anything else here is a
             * batch whose count was damaged. */
            if (!segments__zeros(p + off, len - off)) {
                o->damaged = true;
                o->damage_at = off;
                snprintf(o->why, sizeof o->why, "a batch with no entries");
                o->data_after = true;
            }
            return;
        }
        size_t header = 8 + (size_t)SEGMENTS__ENTRY_HEADER * n;
        if (n > (len - off) / SEGMENTS__ENTRY_HEADER ||
            header > len - off - 8) {
            o->damaged = true;
            o->cut = n <= (len - off) / SEGMENTS__ENTRY_HEADER;
            o->damage_at = off;
            snprintf(o->why, sizeof o->why, "batch header runs past the end");
            return;
        }
        const uint8_t *hp = p + off + 8;
        if (segments_crc32(hp, header, 0) != get_le32(p + off)) {
            o->damaged = true;
            o->damage_at = off;
            snprintf(o->why, sizeof o->why, "batch header checksum mismatch");
            /* The lengths cannot be trusted, so neither can the batch's
             * end: what follows is judged by the applied index alone. */
            return;
        }
        uint64_t data = 0;
        bool bad_type = false;
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *e = hp + 8 + SEGMENTS__ENTRY_HEADER * i;
            data += get_le32(e + 12);
            bad_type |= e[8] == 0 || e[8] > SEGMENTS__TYPE_MAX;
        }
        size_t start = off + 8 + header;
        if (data > len - start) {
            o->damaged = o->cut = true;
            o->damage_at = off;
            snprintf(o->why, sizeof o->why, "cut short in a batch");
            return;
        }
        size_t end = start + (size_t)data;
        if (bad_type || segments_crc32(p + start, (size_t)data, 0) !=
                            get_le32(p + off + 4)) {
            o->damaged = true;
            o->damage_at = off;
            snprintf(o->why, sizeof o->why, "%s",
                     bad_type ? "an entry of an unknown type"
                              : "batch data checksum mismatch");
            o->data_after = !segments__zeros(p + end, len - end);
            return;
        }
        o->entries += n;
        off = end;
    }
}

/* Check one open segment's file. */
static int segments__check_open(const char *dir, struct segments__open *o,
                                char *errmsg)
{
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s", dir, o->name) >=
        (int)sizeof path) {
        err_printf(errmsg, "the raft directory's path is too long: %s", dir);
        return BERTH_EINVAL;
    }
    struct buf b;
    buf_init(&b);
    int rv = segments__read(path, &b, errmsg);
    if (rv != 0) {
        buf_free(&b);
        return rv;
    }
    segments_scan_open(b.data, b.len, &o->scan);
    buf_free(&b);
    return 0;
}

void segments_scan_open(const uint8_t *p, size_t len,
                        struct segments_scan *scan)
{
    memset(scan, 0, sizeof *scan);
    if (len == 0) {
        return; /* never written: libraft removes it */
    }
    uint64_t format = len >= 8 ? get_le64(p) : UINT64_MAX;
    if (format == 0 && segments__zeros(p, len)) {
        return;
    }
    if (format != SEGMENTS__FORMAT) {
        scan->damaged = true;
        scan->data_after = true;
        snprintf(scan->why, sizeof scan->why,
                 "format version %" PRIu64 " where 1 was expected", format);
        return;
    }
    segments__walk(scan, p, len);
}

static int segments__by_counter(const void *a, const void *b)
{
    const struct segments__open *x = a, *y = b;
    return x->counter < y->counter ? -1 : x->counter > y->counter;
}

int segments_check_meta(const uint8_t *p, size_t len, char *why)
{
    if (len < 32 || get_le64(p) != SEGMENTS__FORMAT) {
        snprintf(why, 64, "%s", len < 32 ? "too short" : "unknown format");
        return BERTH_ECORRUPT;
    }
    if (segments_crc32(p + 16, len - 16, 0) != get_le64(p + 8)) {
        snprintf(why, 64, "checksum mismatch");
        return BERTH_ECORRUPT;
    }
    if (get_le64(p + 24) != len - 32) {
        snprintf(why, 64, "configuration length mismatch");
        return BERTH_ECORRUPT;
    }
    return 0;
}

/* Check the metadata of the snapshot named (its data file's name). */
static int segments__check_snapshot(const char *dir, const char *name,
                                    char *errmsg)
{
    char path[4300], why[64];
    struct buf b;
    buf_init(&b);
    snprintf(path, sizeof path, "%s/%s.meta", dir, name);
    int rv = segments__read(path, &b, errmsg);
    if (rv == 0 && segments_check_meta(b.data, b.len, why) != 0) {
        err_printf(errmsg, "raft snapshot %s is damaged (%s)", path, why);
        rv = BERTH_ECORRUPT;
    }
    buf_free(&b);
    return rv;
}

/* One closed segment, "<first>-<last>". */
struct segments__closed {
    uint64_t first, last;
};

static int segments__by_first(const void *a, const void *b)
{
    const struct segments__closed *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

/* Check one closed segment whole: libraft stops at the first that fails to
 * load, but only once raft has taken over the directory, when nothing can
 * be done about it but exit. Read here first, damage can be answered
 * (docs/design.md, "A damaged log"). */
static int segments__check_closed(const char *dir,
                                  const struct segments__closed *c,
                                  char *errmsg)
{
    char path[4200];
    struct buf b;
    struct segments_scan scan;
    buf_init(&b);
    snprintf(path, sizeof path, "%s/%016" PRIu64 "-%016" PRIu64, dir, c->first,
             c->last);
    int rv = segments__read(path, &b, errmsg);
    if (rv != 0) {
        buf_free(&b);
        return rv;
    }
    segments_scan_open(b.data, b.len, &scan);
    buf_free(&b);
    uint64_t want = c->last - c->first + 1;
    if (scan.damaged || scan.cut) {
        err_printf(errmsg,
                   "raft segment %s is %s at byte %" PRIu64 " (%s): entries "
                   "%" PRIu64 " to %" PRIu64 " cannot be read",
                   path, scan.cut ? "cut short" : "damaged", scan.damage_at,
                   scan.why, c->first + scan.entries, c->last);
        return BERTH_ECORRUPT;
    }
    if (scan.entries != want) {
        err_printf(errmsg,
                   "raft segment %s holds %" PRIu64 " entries where its name "
                   "says %" PRIu64 ": entries are missing",
                   path, scan.entries, want);
        return BERTH_ECORRUPT;
    }
    return 0;
}

/* Check every closed segment, and that together they hold every entry from
 * the snapshot on without a gap. */
static int segments__check_all_closed(const char *dir,
                                      struct segments__closed *closed, size_t n,
                                      uint64_t snapshot, char *errmsg)
{
    if (n == 0) {
        return 0;
    }
    qsort(closed, n, sizeof closed[0], segments__by_first);
    for (size_t i = 0; i < n; i++) {
        const struct segments__closed *c = &closed[i];
        uint64_t expect = i > 0 ? closed[i - 1].last + 1 : 0;
        if (c->last < c->first || (i > 0 && c->first != expect)) {
            err_printf(errmsg,
                       "raft segments in %s do not follow each other: "
                       "%016" PRIu64 "-%016" PRIu64
                       " after one ending at entry %" PRIu64
                       ": entries are missing",
                       dir, c->first, c->last, i > 0 ? closed[i - 1].last : 0);
            return BERTH_ECORRUPT;
        }
        if (i == 0 && c->first > snapshot + 1) {
            err_printf(errmsg,
                       "raft segments in %s start at entry %" PRIu64
                       " but the snapshot ends at %" PRIu64
                       ": entries are missing",
                       dir, c->first, snapshot);
            return BERTH_ECORRUPT;
        }
        int rv = segments__check_closed(dir, c, errmsg);
        if (rv != 0) {
            return rv;
        }
    }
    return 0;
}

int segments_check(const char *dir, uint64_t applied,
                   struct segments_report *report, char *errmsg)
{
    struct segments__open open_segs[SEGMENTS__MAX_OPEN];
    unsigned n_open = 0;
    uint64_t closed_last = 0, snapshot = 0, snapshot_time = 0;
    struct segments__closed *closed = NULL;
    size_t n_closed = 0, cap_closed = 0;
    struct dirent *de;
    int rv = 0;

    memset(report, 0, sizeof *report);
    DIR *d = opendir(dir);
    if (d == NULL) {
        if (errno == ENOENT) {
            return 0;
        }
        err_printf(errmsg, "cannot list %s: %s", dir, strerror(errno));
        return BERTH_EIO;
    }
    while ((de = readdir(d)) != NULL) {
        unsigned long long a, b, c;
        int used = 0;
        if (sscanf(de->d_name, "%16llu-%16llu%n", &a, &b, &used) == 2 &&
            de->d_name[used] == '\0' && used == 33) {
            closed_last = b > closed_last ? b : closed_last;
            if (n_closed == cap_closed) {
                size_t cap = cap_closed ? 2 * cap_closed : 64;
                void *p = mem_realloc(closed, cap * sizeof *closed);
                if (p == NULL) {
                    err_printf(errmsg, "out of memory listing %s", dir);
                    rv = BERTH_ENOMEM;
                    break;
                }
                closed = p;
                cap_closed = cap;
            }
            closed[n_closed].first = a;
            closed[n_closed].last = b;
            n_closed++;
        } else if (sscanf(de->d_name, "open-%llu%n", &a, &used) == 1 &&
                   de->d_name[used] == '\0') {
            if (n_open == SEGMENTS__MAX_OPEN) {
                err_printf(errmsg, "more than %d open segments in %s",
                           SEGMENTS__MAX_OPEN, dir);
                rv = BERTH_ECORRUPT;
                break;
            }
            struct segments__open *o = &open_segs[n_open++];
            memset(o, 0, sizeof *o);
            snprintf(o->name, sizeof o->name, "%.63s", de->d_name);
            o->counter = a;
        } else if (sscanf(de->d_name, "snapshot-%llu-%llu-%llu.meta%n", &a, &b,
                          &c, &used) == 3 &&
                   de->d_name[used] == '\0') {
            /* libraft loads the one of the highest index, the latest made
             * of those. */
            if (b > snapshot || (b == snapshot && c >= snapshot_time)) {
                snapshot_time = c;
                snprintf(report->snapshot_file, sizeof report->snapshot_file,
                         "%.*s", used - 5, de->d_name);
            }
            snapshot = b > snapshot ? b : snapshot;
        }
    }
    closedir(d);
    if (rv == 0 && report->snapshot_file[0] != '\0') {
        rv = segments__check_snapshot(dir, report->snapshot_file, errmsg);
    }
    if (rv == 0) {
        rv =
            segments__check_all_closed(dir, closed, n_closed, snapshot, errmsg);
    }
    mem_free(closed);
    if (rv != 0) {
        return rv;
    }
    qsort(open_segs, n_open, sizeof open_segs[0], segments__by_counter);

    /* Open segments follow the last closed one, or the snapshot when every
     * closed segment is gone. */
    uint64_t next = closed_last > 0 ? closed_last + 1 : snapshot + 1;
    uint64_t last = closed_last > snapshot ? closed_last : snapshot;
    for (unsigned i = 0; i < n_open; i++) {
        struct segments__open *o = &open_segs[i];
        rv = segments__check_open(dir, o, errmsg);
        if (rv != 0) {
            return rv;
        }
        uint64_t damaged_index = next + o->scan.entries;
        next += o->scan.entries;
        if (!o->scan.damaged && !o->scan.cut) {
            continue;
        }
        /* Everything from the bad batch on would be dropped. */
        bool later = false;
        for (unsigned j = i + 1; j < n_open && !later; j++) {
            rv = segments__check_open(dir, &open_segs[j], errmsg);
            if (rv != 0) {
                return rv;
            }
            later = open_segs[j].scan.entries > 0 || open_segs[j].scan.damaged;
        }
        if (o->scan.cut) {
            err_printf(errmsg,
                       "raft segment %s/%s is cut short at byte "
                       "%" PRIu64 " (entry %" PRIu64 ")",
                       dir, o->name, o->scan.damage_at, damaged_index);
            return BERTH_ECORRUPT;
        }
        if (damaged_index <= applied) {
            err_printf(errmsg,
                       "raft segment %s/%s is damaged at byte "
                       "%" PRIu64 " (%s): entry %" PRIu64 " and all after "
                       "it would be lost, and entries up to %" PRIu64
                       " were applied",
                       dir, o->name, o->scan.damage_at, o->scan.why,
                       damaged_index, applied);
            return BERTH_ECORRUPT;
        }
        if (o->scan.data_after || later) {
            err_printf(errmsg,
                       "raft segment %s/%s is damaged at byte "
                       "%" PRIu64 " (%s) with entries after it",
                       dir, o->name, o->scan.damage_at, o->scan.why);
            return BERTH_ECORRUPT;
        }
        /* A torn last write, never applied, so never acknowledged:
         * libraft truncates it. */
        report->torn_index = damaged_index;
        report->torn_offset = o->scan.damage_at;
        snprintf(report->torn_file, sizeof report->torn_file, "%.63s", o->name);
        break;
    }
    report->last_index = next - 1 > last ? next - 1 : last;
    return 0;
}
