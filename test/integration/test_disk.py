"""A full disk: writes are refused with 507 before the log meets ENOSPC, the
host stays up, reads still work, and nothing acknowledged is lost."""
import os
import time

from conftest import Host, KV


def test_full_disk_refuses_writes_and_stays_up(tmpfs):
    disk = tmpfs(112)
    h = Host(os.path.join(disk, "data"))
    h.start()
    try:
        h.new_ship(KV, "fat")
        value = b"x" * (1 << 20)
        acked, refused = [], 0
        for i in range(200):
            status, _, body = h.http("PUT", "/s/fat/k/v%d" % i, value)
            if status in (200, 201):
                acked.append(i)
            else:
                assert status == 507, body
                refused += 1
                if refused >= 3:
                    break
        assert refused >= 3, "the disk never filled"
        assert len(acked) > 0
        # Up, readable, and the refused writes left no trace.
        assert h.http("GET", "/healthz")[0] == 200
        assert h.http("GET", "/s/fat/k/v%d" % acked[-1])[0] == 200
        assert h.cli_json("ship", "show", "fat")["last_event"] == len(acked)
        rc = h.stop()
        assert rc == 0, h.logs()
        h.start()
        for i in acked:
            assert h.http("GET", "/s/fat/k/v%d" % i)[0] == 200
    finally:
        if h.proc is not None:
            h.stop()


def test_removing_ships_gives_the_space_back(tmpfs):
    """A disk filled by one ship: removing it brings the free space back
    above the reserve (its store pages and its log segments leave the disk),
    and writes are accepted again."""
    disk = tmpfs(112)
    h = Host(os.path.join(disk, "data"))
    h.start()
    try:
        h.new_ship(KV, "fat")
        h.new_ship(KV, "thin")
        value = b"x" * (1 << 20)
        for i in range(200):
            status, _, _ = h.http("PUT", "/s/fat/k/v%d" % i, value)
            if status == 507:
                break
        assert status == 507, "the disk never filled"
        assert h.http("PUT", "/s/thin/k/a", b"1")[0] == 507
        full = os.statvfs(disk)
        h.cli("ship", "rm", "fat")
        # The store's pages go at once; the log's segments once libraft has
        # written the snapshot, on its own thread, a moment later.
        deadline = time.time() + 10
        while True:
            freed = os.statvfs(disk)
            gained = (freed.f_bavail - full.f_bavail) * freed.f_frsize
            if gained > 32 * (1 << 20) or time.time() > deadline:
                break
            time.sleep(0.05)
        assert gained > 32 * (1 << 20), "only %d bytes came back" % gained
        # Above the 64 MiB reserve again: writes and new ships are accepted.
        assert h.http("PUT", "/s/thin/k/a", b"1")[0] == 201
        h.new_ship(KV, "next")
        assert h.http("PUT", "/s/next/k/b", b"2")[0] == 201
        rc = h.stop()
        assert rc == 0, h.logs()
        h.start()
        assert h.http("GET", "/s/thin/k/a")[:3:2] == (200, b"1")
        assert h.http("GET", "/s/fat/k/v0")[0] == 404
    finally:
        if h.proc is not None:
            h.stop()
