"""A corrupt byte in the store is never served as data: a ship whose
snapshot fails its checksum, or whose event records no longer form its hash
chain, answers 502 with code corrupt and a message naming the event, and
every other ship keeps serving."""
import hashlib
import json
import os

import pytest

from conftest import KV, store_sql as sql

MARKER = b"corrupt-me-" + b"q" * 40


def store_path(h):
    return os.path.join(h.data, "store.db")


def sid_of(h, name):
    return sql(h, "SELECT sid FROM ships WHERE name = ?", (name,))[0][0]


@pytest.fixture
def two_ships(host_factory):
    """Ships a (the victim) and b, each with a few writes, then the host
    stopped so that the test can damage its files."""
    h = host_factory().start()
    for name in ("a", "b"):
        h.new_ship(KV, name)
        for i in range(5):
            assert h.http("PUT", "/s/%s/k/k%d" % (name, i), b"v%d" % i)[0] == 201
    assert h.http("PUT", "/s/a/k/big", MARKER)[0] == 201
    return h


def assert_corrupt(h, words):
    status, _, body = h.http("GET", "/s/a/k/big")
    assert status == 502, body
    err = json.loads(body)["error"]
    assert err["code"] == "corrupt", err
    assert words in err["message"], err
    assert "a" in err["message"] or h.cli_json("ship", "show", "a")["id"] in err["message"]
    # Asked again: the same answer, and still no wrong data.
    status, _, body = h.http("GET", "/s/a/k/k1")
    assert status == 502 and json.loads(body)["error"]["code"] == "corrupt"
    # The other ship is untouched, reads and writes.
    assert h.http("GET", "/s/b/k/k3")[:3:2] == (200, b"v3")
    assert h.http("PUT", "/s/b/k/new", b"n")[0] == 201
    show = h.cli_json("ship", "show", "a")
    assert words in show["corrupt"], show
    assert h.cli_json("stats")["corrupt"] == 1
    assert h.cli_json("ship", "show", "b")["corrupt"] is None
    assert words in h.logs()


def test_flipped_byte_in_a_snapshot_page(two_ships):
    h = two_ships
    h.cli("ship", "sleep", "a")
    assert h.cli_json("ship", "show", "a")["snapshot_event"] == 6
    assert h.stop() == 0
    assert not os.path.exists(store_path(h) + "-wal") or os.path.getsize(store_path(h) + "-wal") == 0
    # The snapshot is sealed: its bytes are found by what the row holds.
    sealed = sql(h, "SELECT data FROM snapshots WHERE sid = ?", (sid_of(h, "a"),))[0][0]
    assert MARKER not in sealed
    data = bytearray(open(store_path(h), "rb").read())
    assert MARKER not in data
    at = data.find(sealed[-60:])
    assert at > 0, "the snapshot's bytes are not in the file"
    data[at + 20] ^= 0x01
    open(store_path(h), "wb").write(data)
    h.start()
    assert_corrupt(h, "snapshot at event 6 fails its checksum")


def test_event_row_changed_with_sqlite(two_ships):
    h = two_ships
    assert h.stop() == 0
    sid = sid_of(h, "a")
    rec = bytearray(sql(h, "SELECT rec FROM events WHERE sid = ? AND n = 3", (sid,))[0][0])
    rec[-1] ^= 0x01  # the seal's last byte: it still decodes
    sql(h, "UPDATE events SET rec = ? WHERE sid = ? AND n = 3", (bytes(rec), sid))
    h.start()
    # Its seal fails as it is replayed, before the next record's link.
    assert_corrupt(h, "event 3 does not open")


def test_event_seal_altered_with_its_chain_rewritten(two_ships):
    """Whoever rewrites the hash chain around an altered record (the head
    hash made to match) still cannot make its seal open."""
    h = two_ships
    assert h.stop() == 0
    sid = sid_of(h, "a")
    rec = bytearray(sql(h, "SELECT rec FROM events WHERE sid = ? AND n = 6", (sid,))[0][0])
    assert MARKER not in rec
    rec[-1] ^= 0x01  # the seal's tag
    head = hashlib.blake2b(bytes(rec), digest_size=32).digest()
    sql(h, "UPDATE events SET rec = ? WHERE sid = ? AND n = 6", (bytes(rec), sid))
    sql(h, "UPDATE ships SET last_hash = ? WHERE sid = ?", (head, sid))
    h.start()
    assert_corrupt(h, "event 6 does not open")


def test_zeroed_head_hash(two_ships):
    h = two_ships
    assert h.stop() == 0
    sql(h, "UPDATE ships SET last_hash = zeroblob(32) WHERE name = 'a'")
    h.start()
    assert_corrupt(h, "event 6 does not match the ship's head hash")


def test_zeroed_head_hash_after_a_snapshot(two_ships):
    """With every event behind the snapshot, the snapshot's link to the log
    is what the head must match."""
    h = two_ships
    h.cli("ship", "sleep", "a")
    assert h.stop() == 0
    sql(h, "UPDATE ships SET last_hash = zeroblob(32) WHERE name = 'a'")
    h.start()
    assert_corrupt(h, "event 6 does not match the ship's head hash")


def test_missing_event_row(two_ships):
    h = two_ships
    assert h.stop() == 0
    sid = sid_of(h, "a")
    sql(h, "DELETE FROM events WHERE sid = ? AND n = 2", (sid,))
    h.start()
    assert_corrupt(h, "event 2 is missing")


def test_undamaged_store_wakes_after_restart(two_ships):
    """The same steps without damage: the checks pass."""
    h = two_ships
    h.cli("ship", "sleep", "a")
    assert h.http("PUT", "/s/a/k/after", b"x")[0] == 201
    assert h.stop() == 0
    h.start()
    assert h.http("GET", "/s/a/k/big")[:3:2] == (200, MARKER)
    assert h.http("GET", "/s/a/k/after")[:3:2] == (200, b"x")
    assert h.cli_json("ship", "show", "a")["corrupt"] is None
