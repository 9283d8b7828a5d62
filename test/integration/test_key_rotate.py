"""Key rotation: `berth key rotate` replaces the master key of every host
and seals what is written from then on under a new data key, without
sealing anything again: the data keys are wrapped under the master key in
the store, and rotation rewraps them (docs/security.md, "Key rotation")."""
import os
import shutil
import sqlite3
import struct
import subprocess

import pytest

from conftest import BERTH, KV, wait_for


def key_path(h):
    return os.path.join(h.data, "master.key")


def stats(h):
    status, v = h.admin("GET", "/v1/stats")
    assert status == 200, v
    return v


def key_ids_of_events(h, tmp_path, name):
    """The data key id of each stored event record, read from a copy of
    the store: u32 at byte 58 of a record (after its readable head)."""
    copy = tmp_path / ("copy-%s" % name)
    copy.mkdir()
    for f in ("store.db", "store.db-wal"):
        src = os.path.join(h.data, f)
        if os.path.exists(src):
            shutil.copy(src, copy / f)
    db = sqlite3.connect(str(copy / "store.db"))
    try:
        rows = db.execute("SELECT rec FROM events ORDER BY rowid").fetchall()
        wrapped = db.execute("SELECT kid FROM data_keys").fetchall()
    finally:
        db.close()
    return [struct.unpack_from("<I", r[0], 58)[0] for r in rows], wrapped


def test_rotate_one_host(host_factory, tmp_path):
    h = host_factory().start()
    h.new_ship(KV, "a")
    for i in range(5):
        assert h.http("PUT", "/s/a/k/old%d" % i, b"before %d" % i)[0] == 201
    before = stats(h)
    assert before["data_key"] == 1
    old_key = open(key_path(h), "rb").read()
    shutil.copy(key_path(h), tmp_path / "old-master.key")

    out = h.cli_json("key", "rotate")
    assert out["data_key"] == 2
    assert out["master_key_id"] != before["master_key_id"]
    after = stats(h)
    assert after["master_key_id"] == out["master_key_id"]
    assert after["data_key"] == 2
    assert open(key_path(h), "rb").read() != old_key
    assert "master key rotated" in h.logs()

    for i in range(5):
        assert h.http("GET", "/s/a/k/old%d" % i)[2] == b"before %d" % i
    for i in range(5):
        assert h.http("PUT", "/s/a/k/new%d" % i, b"after %d" % i)[0] == 201
    ids, kids = key_ids_of_events(h, tmp_path, "1")
    assert ids[:5] == [1] * 5 and ids[-5:] == [2] * 5, ids
    assert sorted(kids) == [(1,), (2,)]

    # Again after a restart: old and new values read.
    assert h.stop() == 0
    h.start()
    assert stats(h)["master_key_id"] == out["master_key_id"]
    assert stats(h)["data_key"] == 2
    h.new_ship(KV, "b")  # a new ship's key pair, under data key 2
    for i in range(5):
        assert h.http("GET", "/s/a/k/old%d" % i)[2] == b"before %d" % i
        assert h.http("GET", "/s/a/k/new%d" % i)[2] == b"after %d" % i
    assert h.http("PUT", "/s/b/k/x", b"y")[0] == 201
    assert h.stop() == 0

    # The old master.key no longer opens the store: the host refuses.
    current = open(key_path(h), "rb").read()
    shutil.copy(tmp_path / "old-master.key", key_path(h))
    out = subprocess.run([BERTH, "serve", "--data", h.data, "--listen",
                          "127.0.0.1:0"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0
    assert "do not open with the master key" in out.stderr, out.stderr
    with open(key_path(h), "wb") as f:
        f.write(current)
    h.start()
    assert h.http("GET", "/s/a/k/old0")[2] == b"before 0"

    # A second rotation: three data keys, every value still reads.
    assert h.cli_json("key", "rotate")["data_key"] == 3
    assert h.http("PUT", "/s/a/k/third", b"3")[0] == 201
    assert h.stop() == 0
    h.start()
    assert h.http("GET", "/s/a/k/old0")[2] == b"before 0"
    assert h.http("GET", "/s/a/k/new0")[2] == b"after 0"
    assert h.http("GET", "/s/a/k/third")[2] == b"3"
    assert "key rotate" in h.cli("key", "rotate", "--help").stdout


def test_rotate_with_a_passphrase(host_factory):
    h = host_factory()
    h.env = dict(os.environ, BERTH_PASSPHRASE="a long passphrase")
    h.start()
    h.new_ship(KV, "a")
    assert h.http("PUT", "/s/a/k/x", b"kept")[0] == 201
    before = stats(h)["master_key_id"]
    out = h.cli_json("key", "rotate")
    assert out["master_key_id"] != before
    assert stats(h)["master_key"] == "sealed under a passphrase"
    assert len(open(key_path(h), "rb").read()) == 72 + 32 + 16
    assert h.http("PUT", "/s/a/k/y", b"new")[0] == 201
    assert h.stop() == 0
    # The same passphrase opens the new key.
    h.start()
    assert stats(h)["master_key_id"] == out["master_key_id"]
    assert h.http("GET", "/s/a/k/x")[2] == b"kept"
    assert h.http("GET", "/s/a/k/y")[2] == b"new"
    assert h.stop() == 0
    out = subprocess.run([BERTH, "serve", "--data", h.data, "--listen",
                          "127.0.0.1:0"],
                         env=dict(os.environ, BERTH_PASSPHRASE="another"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "does not open with this passphrase" in out.stderr


def test_rotate_a_cluster(cluster_factory):
    c = cluster_factory(3).start()
    c.new_ship("ann")
    for i in range(5):
        assert c.request("PUT", "/s/ann/k/old%d" % i, b"o%d" % i)[0] in (200, 201)
    old = {stats(h)["master_key_id"] for h in c.hosts}
    assert len(old) == 1
    lead = c.leader()
    # Asked of a follower, the rotation is forwarded to the leader.
    follower = [h for h in c.hosts if h is not lead][0]
    out = follower.cli_json("key", "rotate")
    assert out["data_key"] == 2 and out["master_key_id"] not in old

    def rotated():
        return all(stats(h)["master_key_id"] == out["master_key_id"] and
                   stats(h)["data_key"] == 2 for h in c.hosts)
    wait_for(rotated, 20)
    for i in range(5):
        assert c.request("PUT", "/s/ann/k/new%d" % i, b"n%d" % i)[0] in (200, 201)

    # The leader dies: another leads, with the same keys, and every value
    # opens there.
    c.kill9(lead)
    c.leader(exclude=(lead,))
    for i in range(5):
        assert c.request("GET", "/s/ann/k/old%d" % i)[1] == b"o%d" % i
        assert c.request("GET", "/s/ann/k/new%d" % i)[1] == b"n%d" % i
    # The dead host comes back with the new key.
    c.restart(lead)
    assert stats(lead)["master_key_id"] == out["master_key_id"]


@pytest.mark.parametrize("store_has_it", [True, False])
def test_a_rotation_cut_short_is_finished_or_undone(host_factory, tmp_path, store_has_it):
    """A crash between the store taking the new data keys and the new
    master.key being renamed into place: the disk is put in that state by
    hand. When the store has the rotation, the host finishes it (the .next
    file renamed into place); when it has not (a store from before, the
    log holding the entry), the .next file is removed, the log applies the
    rotation again, and the host ends with the new key either way."""
    h = host_factory().start()
    h.new_ship(KV, "a")
    for i in range(3):
        assert h.http("PUT", "/s/a/k/old%d" % i, b"before %d" % i)[0] == 201
    assert h.stop() == 0
    old_key = open(key_path(h), "rb").read()
    pre = tmp_path / "pre"
    pre.mkdir()
    for f in ("store.db", "store.db-wal"):
        if os.path.exists(os.path.join(h.data, f)):
            shutil.copy(os.path.join(h.data, f), pre / f)
    h.start()
    new_id = h.cli_json("key", "rotate")["master_key_id"]
    for i in range(3):
        assert h.http("PUT", "/s/a/k/new%d" % i, b"after %d" % i)[0] == 201
    assert h.stop() == 0
    new_key = open(key_path(h), "rb").read()
    # The crash: the new key only in master.key.next, the old in place.
    with open(key_path(h) + ".next", "wb") as f:
        f.write(new_key)
    with open(key_path(h), "wb") as f:
        f.write(old_key)
    if not store_has_it:
        for f in ("store.db", "store.db-wal", "store.db-shm"):
            p = os.path.join(h.data, f)
            if os.path.exists(p):
                os.unlink(p)
            if os.path.exists(pre / f):
                shutil.copy(pre / f, p)
    h.start()
    assert not os.path.exists(key_path(h) + ".next")
    assert stats(h)["master_key_id"] == new_id
    assert stats(h)["data_key"] == 2
    for i in range(3):
        assert h.http("GET", "/s/a/k/old%d" % i)[2] == b"before %d" % i
        assert h.http("GET", "/s/a/k/new%d" % i)[2] == b"after %d" % i
    # And it stays so.
    assert h.stop() == 0
    h.start()
    assert stats(h)["master_key_id"] == new_id
    assert h.http("GET", "/s/a/k/new2")[2] == b"after 2"
