"""A damaged raft log never costs an acknowledged write: each kind of damage
to an open or a closed segment gives a clear refusal to start, with the
files left as they were, or (for a torn write that was never applied) a
correct recovery. After a refusal, putting the original bytes back brings
every acknowledged write back."""
import glob
import os
import struct
import subprocess

import pytest

from conftest import BERTH, KV

WRITES = 20


def batches(data):
    """The batches of a segment file in libraft's format 1: (offset, entries,
    data offset, data length) for each batch that is there."""
    out = []
    off = 8
    while off + 16 <= len(data):
        n = struct.unpack_from("<Q", data, off + 8)[0]
        if n == 0:
            break
        hdr = off + 16
        lens = [struct.unpack_from("<QB3xI", data, hdr + i * 16)[2] for i in range(n)]
        start = hdr + 16 * n
        out.append((off, n, start, sum(lens)))
        off = start + sum(lens)
    return out


def write_keys(h, first, last):
    for i in range(first, last + 1):
        status, _, _ = h.http("PUT", "/s/a/k/k%d" % i, b"v%d" % i)
        assert status == 201


def check_keys(h, last):
    for i in range(1, last + 1):
        status, _, body = h.http("GET", "/s/a/k/k%d" % i)
        assert (status, body) == (200, b"v%d" % i), "k%d lost" % i


def serve_once(h):
    """Start a host that is expected to refuse; return (exit code, output)."""
    r = subprocess.run([BERTH, "serve", "--data", h.data, "--listen", "127.0.0.1:%d" % h.port],
                       capture_output=True, text=True, timeout=30)
    return r.returncode, r.stderr + r.stdout


def raft_dir(h):
    return os.path.join(h.data, "raft")


def open_segment(h):
    return os.path.join(raft_dir(h), "open-1")


def last_closed_segment(h):
    return sorted(glob.glob(os.path.join(raft_dir(h), "0" * 15 + "*-*")))[-1]


@pytest.fixture
def written(host_factory):
    """A host with ship a and WRITES acknowledged writes, killed with -9."""
    h = host_factory().start()
    h.new_ship(KV, "a")
    write_keys(h, 1, WRITES)
    h.kill9()
    return h


@pytest.fixture
def closed(written):
    """As written, with those entries moved to a closed segment by a restart,
    and three more writes in the next open segment."""
    written.start()
    check_keys(written, WRITES)
    write_keys(written, WRITES + 1, WRITES + 3)
    written.kill9()
    return written


def damage(path, mutate):
    with open(path, "rb") as f:
        original = f.read()
    data = bytearray(original)
    mutate(data, batches(original))
    with open(path, "wb") as f:
        f.write(data)
    return original


def refuses(h, path, original, *words):
    damaged = open(path, "rb").read()
    code, out = serve_once(h)
    assert code != 0, out
    assert "refusing to start" in out, out
    assert "Sanitizer" not in out, out
    for w in words:
        assert w in out, out
    # Nothing was touched: the damaged bytes are still there, no file was
    # renamed or removed.
    assert open(path, "rb").read() == damaged
    with open(path, "wb") as f:
        f.write(original)
    h.start()
    check_keys(h, WRITES)


def flip(offset_of):
    def mutate(d, b):
        d[offset_of(b)] ^= 0x40
    return mutate


OPEN_DAMAGE = {
    "last entry's data": (flip(lambda b: b[-1][2] + 100), "checksum mismatch"),
    "a middle entry's data": (flip(lambda b: b[10][2] + 7), "checksum mismatch"),
    "a middle batch's checksum": (flip(lambda b: b[10][0] + 1), "checksum mismatch"),
    "the last batch's entry count": (flip(lambda b: b[-1][0] + 9), "damaged"),
    "a middle entry's length": (flip(lambda b: b[10][0] + 28), "checksum mismatch"),
}


@pytest.mark.parametrize("where", sorted(OPEN_DAMAGE))
def test_open_segment_damage_refuses(written, where):
    mutate, word = OPEN_DAMAGE[where]
    path = open_segment(written)
    original = damage(path, mutate)
    refuses(written, path, original, "open-1", word)


CUTS = {
    "inside the last entry": lambda b: b[-1][2] + 50,
    "inside a middle entry": lambda b: b[10][2] + 50,
    "inside a batch header": lambda b: b[10][0] + 20,
}


@pytest.mark.parametrize("where", sorted(CUTS))
def test_open_segment_cut_short_refuses(written, where):
    path = open_segment(written)

    def cut(d, b):
        del d[CUTS[where](b):]
    original = damage(path, cut)
    refuses(written, path, original, "open-1", "cut short")


def test_open_segment_losing_its_last_batch_refuses(written):
    path = open_segment(written)

    def drop_last(d, b):
        d[b[-1][0]:] = bytes(len(d) - b[-1][0])
    original = damage(path, drop_last)
    refuses(written, path, original, "entries are missing")


def test_closed_segment_damage_refuses(closed):
    path = last_closed_segment(closed)
    original = damage(path, flip(lambda b: b[5][2] + 3))
    refuses(closed, path, original, "checksum mismatch")
    check_keys(closed, WRITES + 3)


def test_closed_segment_cut_short_refuses(closed):
    path = last_closed_segment(closed)

    def cut(d, b):
        del d[b[-1][2] + 10:]
    original = damage(path, cut)
    refuses(closed, path, original, "short read")


def test_closed_segment_missing_a_batch_refuses(closed):
    path = last_closed_segment(closed)

    def cut(d, b):
        del d[b[-1][0]:]
    original = damage(path, cut)
    refuses(closed, path, original, "expected")


def test_missing_closed_segment_refuses(closed):
    path = last_closed_segment(closed)
    original = open(path, "rb").read()
    os.rename(path, path + ".away")
    code, out = serve_once(closed)
    assert code != 0 and "refusing to start" in out, out
    os.rename(path + ".away", path)
    closed.start()
    check_keys(closed, WRITES + 3)
    assert open(path, "rb").read() == original


def test_torn_unapplied_write_is_dropped_and_the_rest_kept(written):
    """A batch after the last one, cut off by a crash before it was applied:
    libraft drops it, the host starts, and every acknowledged write is
    there, now and after another restart."""
    path = open_segment(written)

    def torn(d, b):
        end = b[-1][2] + b[-1][3]
        fake = struct.pack("<IIQ", 1, 2, 1) + struct.pack("<QB3xI", 1, 1, 16) + b"x" * 16
        d[end:end + len(fake)] = fake
    damage(path, torn)
    written.start()
    assert "torn write" in written.logs()
    check_keys(written, WRITES)
    write_keys(written, WRITES + 1, WRITES + 5)
    written.kill9()
    written.start()
    check_keys(written, WRITES + 5)
