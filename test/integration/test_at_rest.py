"""Nothing readable at rest: distinctive values written through many ships
(keys, values, snapshots) and every ship's secret key are found in no file
of any host's data directory (raft segments and snapshots, the SQLite
database and its WAL), after the ships slept, the hosts were killed with
SIGKILL and started again. The ships' secret keys are recovered here, with
an implementation apart from berth's (PyNaCl and hashlib), from the master
key and the store's sealed rows: so the test knows what to look for, and
checks the key hierarchy of docs/security.md. A host started --unsealed
holds the same values readable, which shows the search can find them.
A destroyed ship's seed, without which its records do not open, is found
on no disk once the log is compacted (crypto-shredding)."""
import hashlib
import os
import secrets
import shutil
import sqlite3
import struct
import tempfile
import threading
import time

import pytest
from nacl import bindings
from nacl.exceptions import CryptoError

from conftest import KV

SHIPS = 12
VALUES = 4  # per ship, before and after its snapshot


def kdf(key, subkey_id, ctx):
    """libsodium's crypto_kdf_derive_from_key: BLAKE2b-256 keyed with key,
    salt the little-endian id, personal the context."""
    return hashlib.blake2b(b"", digest_size=32, key=key,
                           salt=struct.pack("<Q", subkey_id) + bytes(8),
                           person=ctx + bytes(8)).digest()


def master_key(data):
    """The master key of a host whose master.key is kept as it is."""
    raw = open(os.path.join(data, "master.key"), "rb").read()
    assert raw[:8] == b"brthmkey" and raw[9] == 0, "a plain master key"
    return raw[72:104]


def store_rows(data, query):
    """Rows of a query on a copy of a host's store (the host holds its own
    locked, and reading it in place could write to it)."""
    with tempfile.TemporaryDirectory() as d:
        for suffix in ("", "-wal"):
            path = os.path.join(data, "store.db" + suffix)
            if os.path.exists(path):
                shutil.copy(path, os.path.join(d, "store.db" + suffix))
        db = sqlite3.connect(os.path.join(d, "store.db"))
        try:
            return db.execute(query).fetchall()
        finally:
            db.close()


OWN = 0xFFFFFFFF  # a stored secret that holds the ship's own seed


def open_seed(m, pk, secret):
    """A ship's 32-byte seed from its stored secret: its own seed, sealed
    with its public key as associated data, or one derived from a batch
    key (ships made before ships had seeds of their own)."""
    batch_key = kdf(kdf(m, 1, b"berthdat"), 0, b"berthbat")
    index, key_id = struct.unpack("<II", secret[:8])
    assert key_id == 1, "sealed under data key 1"
    nonce, sealed = secret[8:32], secret[32:]
    if index == OWN:
        return bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed, b"berth ship seed\0" + pk, nonce, batch_key)
    key = bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        sealed, b"berth batch key\0", nonce, batch_key)
    return kdf(key, index, b"berthshp")


def ship_secret_keys(data):
    """Every ship's 64-byte secret key, opened from the store's rows."""
    m = master_key(data)
    rows = store_rows(data, "SELECT name, public_key, secret_key FROM ships")
    keys = {}
    for name, pk, secret in rows:
        seed = open_seed(m, pk, secret)
        pk2, sk = bindings.crypto_sign_seed_keypair(seed)
        assert pk2 == pk, "the opened seed makes the ship's public key"
        keys[name] = sk
    return keys


def open_record(m, sid, own, rec):
    """The plaintext of an event record (version 3: a 58-byte readable head,
    then the seal), under ship sid's key: from the data key alone when own
    is None, else mixed with the ship's own key (crypto/seal.h)."""
    head, seal = rec[:58], rec[58:]
    assert struct.unpack("<I", seal[:4])[0] == 1, "sealed under data key 1"
    key = kdf(kdf(m, 1, b"berthdat"), sid, b"berthshp")
    if own is not None:
        key = hashlib.blake2b(own, digest_size=32, key=key).digest()
    return bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(
        seal[28:], head, seal[4:28], key)


def write_values(c, tag):
    """Write VALUES keys and values to every ship, sleep half of the way
    (a snapshot), and return every distinctive string written."""
    wrote = []
    for i in range(SHIPS):
        name = "%s-%d" % (tag, i)
        c.new_ship(name)
        for j in range(VALUES):
            if j == VALUES // 2:
                c.leader().cli("ship", "sleep", name)
            key = "zk%s%d%d" % (secrets.token_hex(8), i, j)
            value = b"zv-distinctive-%s-%d-%d" % (secrets.token_hex(12).encode(), i, j)
            status = c.request("PUT", "/s/%s/k/%s" % (name, key), value)[0]
            assert status in (200, 201), status
            wrote += [key.encode(), value]
    # The last ones asleep too: every value is in a snapshot, and the later
    # half also in the log's events.
    for i in range(SHIPS):
        c.leader().cli("ship", "sleep", "%s-%d" % (tag, i))
    return wrote


def files_under(data):
    for root, _, names in os.walk(data):
        for n in names:
            path = os.path.join(root, n)
            if os.path.isfile(path) and not n.endswith(".sock"):
                yield path


def found_in(datas, needles):
    """Each needle found, with a file it is in."""
    hits = {}
    for data in datas:
        for path in files_under(data):
            blob = open(path, "rb").read()
            for n in needles:
                if n not in hits and n in blob:
                    hits[n] = path
    return hits


def start_all(c):
    """Start every host at once: none is ready before a quorum is up."""
    threads = [threading.Thread(target=h.start) for h in c.hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(h.running() for h in c.hosts)
    c.wait_members(c.hosts)


def test_nothing_readable_at_rest(cluster_factory):
    c = cluster_factory(3).start()
    c.wait_members(c.hosts)
    wrote = write_values(c, "s")
    c.wait_caught_up()
    # A ship's values read back: sealing loses nothing.
    assert c.request("GET", "/s/s-0/k/%s" % wrote[0].decode())[:2] == (200, wrote[1])
    # Killed, then started again: the log replays into the stores, each
    # host's data directory holds everything it ever wrote.
    for h in c.hosts:
        c.kill9(h)
    start_all(c)
    c.wait_caught_up()
    assert c.request("GET", "/s/s-3/k/%s" % wrote[3 * 2 * VALUES + 2].decode())[:2] == \
        (200, wrote[3 * 2 * VALUES + 3])
    keys = ship_secret_keys(c.hosts[0].data)
    assert len(keys) == SHIPS
    needles = list(wrote)
    for sk in keys.values():
        needles += [sk, sk[:32]]
    for h in c.hosts:
        c.kill9(h)
    datas = [h.data for h in c.hosts]
    for d in datas:
        names = [os.path.relpath(p, d) for p in files_under(d)]
        # The store, its WAL and raft's segments are all searched.
        assert "store.db" in names and "store.db-wal" in names, names
        assert any(n.startswith("raft/") and n[5:6].isdigit() for n in names), names
    hits = found_in(datas, needles)
    assert hits == {}, "readable at rest: %r" % {k[:20]: v for k, v in list(hits.items())[:5]}
    start_all(c)


def test_an_unsealed_host_is_readable_at_rest(host_factory):
    """The control: the same search finds what a host started --unsealed
    wrote, values and secret keys alike."""
    h = host_factory(extra=["--unsealed"]).start()
    assert "written readable" in h.logs()
    value = b"zv-distinctive-%s" % secrets.token_hex(12).encode()
    h.new_ship(KV, "u")
    assert h.http("PUT", "/s/u/k/key", value)[0] == 201
    h.cli("ship", "sleep", "u")
    assert h.http("PUT", "/s/u/k/key2", value + b"2")[0] == 201
    h.kill9()
    secret = store_rows(h.data, "SELECT secret_key FROM ships")[0][0]
    assert struct.unpack("<II", secret[:8])[1] == 0  # key id 0: unsealed
    hits = found_in([h.data], [value, value + b"2"])
    assert len(hits) == 2, hits
    h.start()
    assert h.http("GET", "/s/u/k/key2")[2] == value + b"2"


def test_destroying_a_ship_shreds_it(host_factory):
    """A ship's records are sealed under a key that needs its own seed, which
    only its store row (and the entry that made it) holds: once the ship is
    destroyed and the log compacted, the seed is on no disk, so a copy of
    its records taken before, anywhere, no longer opens."""
    h = host_factory().start()
    h.new_ship(KV, "gone")
    h.new_ship(KV, "stays")
    value = b"zv-shred-%s" % secrets.token_hex(12).encode()
    for name in ("gone", "stays"):
        for j in range(3):
            assert h.http("PUT", "/s/%s/k/k%d" % (name, j), value)[0] in (200, 201)
        h.cli("ship", "sleep", name)
        assert h.http("PUT", "/s/%s/k/last" % name, value)[0] in (200, 201)
    m = master_key(h.data)
    rows = {name: (sid, pk, secret) for sid, name, pk, secret in store_rows(
        h.data, "SELECT sid, name, public_key, secret_key FROM ships")}
    sid, pk, secret = rows["gone"]
    assert struct.unpack("<I", secret[:4])[0] == OWN, "a seed of its own"
    assert secret != rows["stays"][2]
    seed = open_seed(m, pk, secret)
    own = kdf(seed, 1, b"berthown")
    copies = [r for (r,) in store_rows(
        h.data, "SELECT rec FROM events WHERE sid = %d" % sid)]
    assert copies, "its events are in the store"
    # With the seed, a copy opens; with the master key alone it does not:
    # the data key no longer suffices.
    assert value in open_record(m, sid, own, copies[-1])
    with pytest.raises(CryptoError):
        open_record(m, sid, None, copies[-1])
    sealed_seed = secret[4:]

    h.cli("ship", "rm", "gone")
    # The removal compacts the store and asks raft for a snapshot that
    # drops the segments holding the entry that made the ship.
    deadline = time.time() + 20
    while True:
        hits = found_in([h.data], [sealed_seed])
        if not hits or time.time() > deadline:
            break
        time.sleep(0.5)
    assert hits == {}, "the ship's sealed seed is still on disk: %r %r" % (
        hits, sorted(os.listdir(os.path.join(h.data, "raft"))))
    # The other ship lives on, and the host opens its records after a restart.
    h.kill9()
    h.start()
    assert h.http("GET", "/s/stays/k/last")[2] == value
