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

from conftest import BERTH, KV, cluster_secret_env

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
    refuses(closed, path, original, "cut short at byte")


def test_closed_segment_missing_a_batch_refuses(closed):
    path = last_closed_segment(closed)

    def cut(d, b):
        del d[b[-1][0]:]
    original = damage(path, cut)
    refuses(closed, path, original, "entries are missing")


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


# libraft takes a snapshot every 1024 entries.
SNAPSHOT_WRITES = 1100


def write_many(h, n, ship="a", first=0):
    """n writes to ship over one connection: k<first>... ."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", h.port, timeout=30)
    for i in range(first, first + n):
        conn.request("PUT", "/s/%s/k/k%d" % (ship, i), b"v%d" % i)
        r = conn.getresponse()
        r.read()
        assert r.status in (200, 201)
    conn.close()


def snapshot_files(h):
    metas = sorted(glob.glob(os.path.join(raft_dir(h), "snapshot-*.meta")))
    assert metas, os.listdir(raft_dir(h))
    return metas[-1][:-len(".meta")], metas[-1]


@pytest.mark.parametrize("part", ["data", "meta"])
def test_damaged_snapshot_refuses(host_factory, part):
    """A flipped byte in the raft snapshot's contents (the store's image,
    which libraft does not check) or in its metadata is found before libraft
    loads it: a host alone refuses, its files untouched."""
    h = host_factory().start()
    h.new_ship(KV, "a")
    write_many(h, SNAPSHOT_WRITES)
    h.kill9()
    data, meta = snapshot_files(h)
    path = data if part == "data" else meta
    original = open(path, "rb").read()
    with open(path, "r+b") as f:
        f.seek(len(original) // 2)
        f.write(bytes([original[len(original) // 2] ^ 0x40]))
    code, out = serve_once(h)
    assert code != 0 and "refusing to start" in out, out
    assert "raft snapshot %s%s is damaged" % (data, "" if part == "data" else ".meta") in out, out
    with open(path, "wb") as f:
        f.write(original)
    h.start()
    for i in (0, SNAPSHOT_WRITES // 2, SNAPSHOT_WRITES - 1):
        status, _, body = h.http("GET", "/s/a/k/k%d" % i)
        assert (status, body) == (200, b"v%d" % i)


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


def damage_applied_entry(h):
    """Flip a byte in the second batch of h's segment with the most
    batches (an entry applied long ago); return its path and bytes."""
    segs = [p for p in glob.glob(os.path.join(raft_dir(h), "*"))
            if os.path.basename(p).startswith("open-") or "-" in os.path.basename(p)[:17]]
    path = max(segs, key=lambda p: len(batches(open(p, "rb").read())))
    assert len(batches(open(path, "rb").read())) >= 3, path
    return path, damage(path, flip(lambda b: b[1][2] + 5))


def cluster_written(cluster_factory, n):
    """Three hosts, ship ann with keys k0..k(n-1) held by all; return the
    cluster and a follower."""
    c = cluster_factory(3).start()
    c.new_ship("ann")
    for i in range(n):
        assert c.request("PUT", "/s/ann/k/k%d" % i, b"v%d" % i)[0] in (200, 201)
    c.wait_caught_up()
    return c, c.followers()[0]


def full_log(h):
    return open(h.log_path, "rb").read().decode(errors="replace")


@pytest.mark.parametrize("where", ["segment", "snapshot"])
def test_a_member_with_a_damaged_log_joins_again(cluster_factory, where):
    """A follower whose raft log (an applied entry of a segment, or the
    snapshot's contents) is damaged does not refuse to start: it sets its
    copy aside, the leader removes its old member and adds it again as a
    new one, it gets the state from the others, and then serves every
    acknowledged write as leader."""
    c, f = cluster_written(cluster_factory, 30)
    if where == "snapshot":
        write_many(c.leader(), SNAPSHOT_WRITES, "ann", first=40)
        c.wait_caught_up()
    old_id = f.id
    f.kill9()
    if where == "segment":
        path, original = damage_applied_entry(f)
    else:
        path = snapshot_files(f)[0]
        original = open(path, "rb").read()
        with open(path, "r+b") as fp:
            fp.seek(len(original) // 2)
            fp.write(bytes([original[len(original) // 2] ^ 0x40]))
    # Written while it is down: it must get these from the others too.
    for i in range(30, 40):
        assert c.request("PUT", "/s/ann/k/k%d" % i, b"v%d" % i)[0] in (200, 201)
    f.start()
    log = full_log(f)
    assert "joins its cluster again" in log, log
    assert os.path.basename(path) in log, log
    kept = glob.glob(os.path.join(f.data, "damaged-*"))
    assert len(kept) == 1
    assert open(os.path.join(kept[0], "raft", os.path.basename(path)), "rb").read() != original
    assert os.path.exists(os.path.join(kept[0], "store.db"))
    assert not os.path.exists(os.path.join(f.data, "rejoin"))
    views = c.wait_members(c.hosts)
    ids = {x["id"] for x in next(iter(views.values()))["hosts"]}
    assert f.id != old_id and f.id in ids and old_id not in ids, (old_id, f.id, ids)
    assert "its old member is removed first" in "".join(full_log(h) for h in c.hosts)
    c.wait_caught_up()
    # It holds the state itself: kill the leader until an election makes
    # it lead (a handover would pick the same host every time).
    for _ in range(20):
        lead = c.leader()
        if lead is f:
            break
        c.kill9(lead)
        c.leader(exclude=[lead])
        lead.start()
        c.wait_members(c.hosts)
    assert c.leader() is f
    for i in list(range(40)) + ([40, 40 + SNAPSHOT_WRITES - 1] if where == "snapshot" else []):
        status, _, body = f.http("GET", "/s/ann/k/k%d" % i)
        assert (status, body) == (200, b"v%d" % i)
    # And it starts again as the member it now is.
    assert f.stop() == 0
    f.start()
    c.wait_members(c.hosts)
    assert len(glob.glob(os.path.join(f.data, "damaged-*"))) == 1


def test_a_member_that_cannot_reach_its_cluster_keeps_trying(cluster_factory):
    """A damaged member whose cluster has no leader (one of the two others
    is down) gives up with a clear error, and its next start, the cluster
    whole again, joins again: the decision survives the failed start."""
    c, f = cluster_written(cluster_factory, 10)
    down = next(h for h in c.hosts if h is not f)
    f.kill9()
    down.kill9()
    damage_applied_entry(f)
    args = ["--peer", f.peer] + f.extra
    r = subprocess.run([BERTH, "serve", "--data", f.data, "--listen", f.listen] + args,
                       capture_output=True, text=True, timeout=90,
                       env=cluster_secret_env(args, f.env, f.data))
    assert r.returncode != 0
    assert "cannot join the cluster through" in r.stderr, r.stderr
    assert os.path.exists(os.path.join(f.data, "rejoin"))
    down.start()
    f.start()
    c.wait_members(c.hosts)
    assert not os.path.exists(os.path.join(f.data, "rejoin"))
    assert len(glob.glob(os.path.join(f.data, "damaged-*"))) == 2
    for i in range(10):
        assert c.request("GET", "/s/ann/k/k%d" % i, via=f)[:2] == (200, b"v%d" % i)
