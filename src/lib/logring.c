#include "lib/logring.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/mem.h"

static const char logring__magic[8] = {'b', 'e', 'r', 't', 'h', 'l', 'r', '1'};

/* Read the header of fd: 0 with *cap, *end and *start, 1 when the file
 * is empty or shorter than a header (a ring not written yet),
 * BERTH_ECORRUPT for another file, BERTH_EIO. */
static int logring__head(int fd, uint64_t *cap, uint64_t *end, uint64_t *start)
{
    uint8_t h[LOGRING_HEADER];
    ssize_t r;
    do {
        r = pread(fd, h, sizeof h, 0);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        return BERTH_EIO;
    }
    if ((size_t)r < sizeof h) {
        return 1;
    }
    if (memcmp(h, logring__magic, sizeof logring__magic) != 0) {
        return BERTH_ECORRUPT;
    }
    *cap = get_le64(h + 8);
    *end = get_le64(h + 16);
    *start = get_le64(h + 24);
    if (*cap == 0 || *cap > (1ULL << 40) || *start > *end) {
        return BERTH_ECORRUPT;
    }
    return 0;
}

static int logring__pwrite(int fd, const void *p, size_t n, uint64_t off)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = pwrite(fd, b, n, (off_t)off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return BERTH_EIO;
        }
        b += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static int logring__pread(int fd, void *p, size_t n, uint64_t off)
{
    uint8_t *b = p;
    while (n > 0) {
        ssize_t r = pread(fd, b, n, (off_t)off);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            return BERTH_EIO;
        }
        if (r == 0) {
            /* A hole at the end that was never written: zeros. */
            memset(b, 0, n);
            return 0;
        }
        b += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

/* Read the stream's bytes [from, from + n) of a ring of cap into p. */
static int logring__get(int fd, uint64_t cap, uint64_t from, uint8_t *p,
                        size_t n)
{
    uint64_t pos = from % cap;
    size_t first = n < cap - pos ? n : (size_t)(cap - pos);
    int rv = logring__pread(fd, p, first, LOGRING_HEADER + pos);
    if (rv == 0 && n > first) {
        rv = logring__pread(fd, p + first, n - first, LOGRING_HEADER);
    }
    return rv;
}

/* Write the stream's bytes [at, at + n) (n <= cap) into a ring of cap. */
static int logring__put(int fd, uint64_t cap, uint64_t at, const uint8_t *p,
                        size_t n)
{
    uint64_t pos = at % cap;
    size_t first = n < cap - pos ? n : (size_t)(cap - pos);
    int rv = logring__pwrite(fd, p, first, LOGRING_HEADER + pos);
    if (rv == 0 && n > first) {
        rv = logring__pwrite(fd, p + first, n - first, LOGRING_HEADER);
    }
    return rv;
}

static int logring__set_head(int fd, uint64_t cap, uint64_t end, uint64_t start)
{
    uint8_t h[LOGRING_HEADER] = {0};
    memcpy(h, logring__magic, sizeof logring__magic);
    put_le64(h + 8, cap);
    put_le64(h + 16, end);
    /* What the ring holds starts no earlier than cap bytes before its
     * end. */
    uint64_t floor = end > cap ? end - cap : 0;
    put_le64(h + 24, start > floor ? start : floor);
    return logring__pwrite(fd, h, sizeof h, 0);
}

/* Make the ring of fd, of capacity old holding the stream from start to
 * end, one of capacity cap holding its most recent bytes that fit; sets
 * *start to the first of them. */
static int logring__resize(int fd, uint64_t old, uint64_t cap, uint64_t end,
                           uint64_t *start)
{
    uint64_t held = end - *start < old ? end - *start : old;
    size_t keep = held < cap ? (size_t)held : (size_t)cap;
    uint8_t *tmp = keep > 0 ? mem_alloc(keep) : NULL;
    if (keep > 0 && tmp == NULL) {
        return BERTH_ENOMEM;
    }
    int rv = keep > 0 ? logring__get(fd, old, end - keep, tmp, keep) : 0;
    if (rv == 0 && ftruncate(fd, LOGRING_HEADER) != 0) {
        rv = BERTH_EIO;
    }
    if (rv == 0 && keep > 0) {
        rv = logring__put(fd, cap, end - keep, tmp, keep);
    }
    *start = end - keep;
    if (rv == 0) {
        rv = logring__set_head(fd, cap, end, *start);
    }
    mem_free(tmp);
    return rv;
}

int logring_append(const char *path, uint64_t cap, const void *data, size_t n)
{
    if (cap == 0) {
        return BERTH_EINVAL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        return BERTH_EIO;
    }
    uint64_t old = cap, end = 0, start = 0;
    int rv = logring__head(fd, &old, &end, &start);
    if (rv == BERTH_ECORRUPT || rv == 1) {
        /* Not a ring (or not yet one): it starts anew. */
        old = cap;
        end = start = 0;
        rv = ftruncate(fd, 0) == 0 ? 0 : BERTH_EIO;
    }
    if (rv == 0 && old != cap) {
        rv = logring__resize(fd, old, cap, end, &start);
    }
    if (rv != 0) {
        goto err_after_open;
    }
    const uint8_t *p = data;
    if (n > cap) {
        /* Only the last cap bytes would survive: write only those. */
        end += n - cap;
        p += n - cap;
        n = (size_t)cap;
    }
    rv = logring__put(fd, cap, end, p, n);
    if (rv == 0) {
        rv = logring__set_head(fd, cap, end + n, start);
    }
err_after_open:
    close(fd);
    return rv;
}

int logring_read(const char *path, uint64_t from, size_t max, struct buf *out,
                 uint64_t *start, uint64_t *end)
{
    *start = *end = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 0 : BERTH_EIO;
    }
    uint64_t cap = 0, e = 0, oldest = 0;
    int rv = logring__head(fd, &cap, &e, &oldest);
    if (rv == 1) {
        rv = 0; /* made, not yet written */
        goto err_after_open;
    }
    if (rv != 0) {
        goto err_after_open;
    }
    if (e - oldest > cap) {
        oldest = e - cap;
    }
    if (from == UINT64_MAX) {
        from = e - oldest > max ? e - max : oldest;
    } else if (from > e) {
        from = oldest;
    } else if (from < oldest) {
        from = oldest;
    }
    size_t n = e - from < max ? (size_t)(e - from) : max;
    *start = from;
    *end = e;
    if (n == 0) {
        goto err_after_open;
    }
    rv = buf_reserve(out, n);
    if (rv != 0) {
        goto err_after_open;
    }
    rv = logring__get(fd, cap, from, out->data + out->len, n);
    if (rv == 0) {
        out->len += n;
    }
err_after_open:
    close(fd);
    return rv;
}
