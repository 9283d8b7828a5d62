"""Backups of ships: `berth ship export SHIP FILE` writes a ship whole
(identity, program, account, snapshots and events, sealed under the
cluster's keys) and `berth ship import FILE` makes it again. A kv ship
exported, removed and imported answers every value it had, keeps its id,
account and name, wakes from its imported snapshot and passes fsck
--replay; a file cut short or with a flipped byte is refused with a clear
error and changes nothing; a file opens only in the cluster whose keys
sealed it; in a cluster every host ends with the same store."""
import json
import os
import shutil
import subprocess

from conftest import BERTH, KV, store_ships, wait_for


def put(h, ship, key, value):
    status, _, body = h.http("PUT", "/s/%s/k/%s" % (ship, key), value)
    assert status in (200, 201), (status, body)


def get(h, ship, key):
    return h.http("GET", "/s/%s/k/%s" % (ship, key))[::2]


def ship_count(h):
    return len(h.cli_json("ship", "ls")["ships"])


def test_export_remove_import_reads_back(host_factory, tmpdir_path):
    # Snapshots every 5 events: the export carries a latest and a prior
    # snapshot and the events after the prior one.
    h = host_factory(["--snapshot-every", "5"]).start()
    h.cli("account", "new", "alice")
    sid = h.new_ship(KV, "ann", "--account", "alice", "--env", "COLOUR=blue")
    other = h.new_ship(KV, "bob")
    for i in range(23):
        put(h, "ann", "k%d" % i, b"v%d" % i)
    put(h, "bob", "x", b"y")
    h.cli("ship", "sleep", "ann")
    before = h.cli_json("ship", "show", "ann")
    assert before["snapshot_event"] >= 20

    path = os.path.join(tmpdir_path, "ann.berth")
    r = h.cli("ship", "export", "ann", path)
    assert "exported ann" in r.stdout
    assert os.stat(path).st_mode & 0o777 == 0o600
    raw = open(path, "rb").read()
    assert raw.startswith(b"BERTHSHP")
    # Sealed: no value the ship holds, nor its name or program, is readable.
    for secret in (b"v22", b"ann", b"COLOUR", os.path.basename(KV).encode() + b"\0"):
        assert secret not in raw[17:], secret

    # Importing over the living ship is refused.
    r = h.cli("ship", "import", path, check=False)
    assert r.returncode == 1 and "exists" in r.stderr, r.stderr

    h.cli("ship", "rm", "ann")
    assert get(h, "ann", "k1")[0] == 404
    r = h.cli("ship", "import", path, "--json")
    shown = json.loads(r.stdout)
    assert shown["id"] == sid and shown["name"] == "ann"
    # Every value, through a wake from the imported snapshot.
    for i in range(23):
        assert get(h, "ann", "k%d" % i) == (200, b"v%d" % i)
    after = h.cli_json("ship", "show", "ann")
    assert after["account"] == "alice", after
    assert after["last_event"] == before["last_event"]
    assert get(h, "bob", "x") == (200, b"y")
    assert h.cli_json("ship", "show", "bob")["id"] == other
    # It lives on: new events chain onto the imported ones, a new ship
    # takes a sid after it, and fsck (chains, seals, snapshots, key) and
    # --replay (the prior snapshot through the events to the latest) pass.
    for i in range(23, 30):
        put(h, "ann", "k%d" % i, b"v%d" % i)
    h.new_ship(KV, "cat")
    r = h.cli("fsck", "--replay")
    assert "0 wrong" in r.stdout, r.stdout
    assert h.cli_json("account", "show", "alice")["usage"]["ships"] == 1

    # It survives a restart (the registry is loaded from the store).
    h.stop()
    h.start()
    assert get(h, "ann", "k29") == (200, b"v29")
    assert get(h, "ann", "k3") == (200, b"v3")
    assert h.stop() == 0


def test_export_into_a_pipe_a_link_or_a_directory(host_factory, tmpdir_path):
    """A path that is no regular file is written into, never replaced: a
    pipe stays a pipe and gets the export (as /dev/stdout would); a link
    to a file stays a link, and the file is the export; a directory is
    refused with its reason."""
    import stat
    import threading
    h = host_factory().start()
    h.new_ship(KV, "ann")
    put(h, "ann", "a", b"1")
    plain = os.path.join(tmpdir_path, "plain.berth")
    h.cli("ship", "export", "ann", plain)
    want = open(plain, "rb").read()

    fifo = os.path.join(tmpdir_path, "pipe")
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(open(fifo, "rb").read()),
                              daemon=True)
    reader.start()
    r = h.cli("ship", "export", "ann", fifo, check=False)
    if r.returncode != 0:
        open(fifo, "wb").close()  # let the reader go
    reader.join(10)
    assert r.returncode == 0, r.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert got and len(got[0]) == len(want) and got[0].startswith(b"BERTHSHP")

    target = os.path.join(tmpdir_path, "target.berth")
    open(target, "wb").write(b"old")
    link = os.path.join(tmpdir_path, "link.berth")
    os.symlink(target, link)
    r = h.cli("ship", "export", "ann", link)
    assert "exported ann to %s" % link in r.stdout, r.stdout
    assert os.path.islink(link)
    assert len(open(target, "rb").read()) == len(want)
    assert not os.path.exists(target + ".part") and not os.path.exists(link + ".part")

    r = h.cli("ship", "export", "ann", tmpdir_path, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert "Is a directory" in r.stderr, r.stderr
    assert os.path.isdir(tmpdir_path)


def test_damaged_export_changes_nothing(host_factory, tmpdir_path):
    h = host_factory().start()
    h.new_ship(KV, "ann")
    for i in range(5):
        put(h, "ann", "k%d" % i, b"v%d" % i)
    path = os.path.join(tmpdir_path, "ann.berth")
    h.cli("ship", "export", "ann", path)
    raw = open(path, "rb").read()
    h.cli("ship", "rm", "ann")
    cases = {
        "cut": raw[: len(raw) // 2],
        "one byte short": raw[:-1],
        "head flipped": raw[:12] + bytes([raw[12] ^ 0x01]) + raw[13:],
        "middle flipped": raw[: len(raw) // 2] + bytes([raw[len(raw) // 2] ^ 0x80])
        + raw[len(raw) // 2 + 1:],
        "last flipped": raw[:-1] + bytes([raw[-1] ^ 0x01]),
    }
    for what, data in cases.items():
        bad = os.path.join(tmpdir_path, "bad")
        with open(bad, "wb") as f:
            f.write(data)
        r = h.cli("ship", "import", bad, check=False)
        assert r.returncode == 1, (what, r.stdout, r.stderr)
        assert r.stdout == ""
        assert "nothing was changed" in r.stderr, (what, r.stderr)
        assert ship_count(h) == 0, what
    # Not an export at all, and an empty file.
    junk = os.path.join(tmpdir_path, "junk")
    with open(junk, "wb") as f:
        f.write(b"hello, this is not a ship")
    r = h.cli("ship", "import", junk, check=False)
    assert r.returncode == 1 and "not a berth ship export" in r.stderr, r.stderr
    open(junk, "wb").close()
    r = h.cli("ship", "import", junk, check=False)
    assert r.returncode == 1 and "empty" in r.stderr, r.stderr
    r = h.cli("ship", "import", os.path.join(tmpdir_path, "missing"), check=False)
    assert r.returncode == 1 and "cannot read" in r.stderr, r.stderr
    # Usage errors: exit 2.
    r = subprocess.run([BERTH, "ship", "export", "ann"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    # The good file still imports, from stdin too.
    r = subprocess.run([BERTH, "ship", "import", "-", "--data", h.data], input=raw,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert get(h, "ann", "k4") == (200, b"v4")
    # An export to stdout is the same ship again.
    out = subprocess.run([BERTH, "ship", "export", "ann", "-", "--data", h.data],
                         capture_output=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith(b"BERTHSHP")


def test_export_opens_only_with_its_cluster_keys(host_factory, tmpdir_path):
    """Another host (another master key) refuses the file; the account a
    ship belongs to must exist where it is imported."""
    a = host_factory(name="a").start()
    b = host_factory(name="b").start()
    a.cli("account", "new", "alice")
    a.new_ship(KV, "ann", "--account", "alice")
    put(a, "ann", "k", b"v")
    path = os.path.join(tmpdir_path, "ann.berth")
    a.cli("ship", "export", "ann", path)
    r = b.cli("ship", "import", path, check=False)
    assert r.returncode == 1 and "lacks the key" in r.stderr, r.stderr
    assert ship_count(b) == 0
    # The same data directory's key (a new host over a copy of master.key)
    # opens it, and asks for the account first.
    assert b.stop() == 0
    os.unlink(os.path.join(b.data, "master.key"))
    with open(os.path.join(a.data, "master.key"), "rb") as f:
        key = f.read()
    shutil.rmtree(b.data)
    os.makedirs(b.data, mode=0o700)
    with open(os.path.join(b.data, "master.key"), "wb") as f:
        f.write(key)
    os.chmod(os.path.join(b.data, "master.key"), 0o600)
    b.start()
    r = b.cli("ship", "import", path, check=False)
    assert r.returncode == 1 and "account alice does not exist" in r.stderr, r.stderr
    b.cli("account", "new", "alice")
    b.cli("ship", "import", path)
    assert get(b, "ann", "k") == (200, b"v")
    assert b.cli_json("ship", "show", "ann")["account"] == "alice"


def test_import_in_a_cluster(cluster_factory, tmpdir_path):
    """Exported through a follower and imported through another: every
    host applies the import and ends with the same store."""
    c = cluster_factory(3).start()
    c.new_ship("ann")
    for i in range(6):
        assert c.request("PUT", "/s/ann/k/k%d" % i, b"v%d" % i)[0] in (200, 201)
    f1, f2 = c.followers()
    path = os.path.join(tmpdir_path, "ann.berth")
    f1.cli("ship", "export", "ann", path)
    c.leader().cli("ship", "rm", "ann")
    f2.cli("ship", "import", path)
    for i in range(6):
        assert c.request("GET", "/s/ann/k/k%d" % i)[:2] == (200, b"v%d" % i)
    c.wait_caught_up()
    for h in c.hosts:
        assert h.stop() == 0
    views = [store_ships(h.data) for h in c.hosts]
    assert views[0]["ann"][0] == 6
    assert views[0] == views[1] == views[2]
