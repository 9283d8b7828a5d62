"""Usage recorded per ship and per account (docs/api.md, "Usage"): storage,
ships and events as entries apply, on every host alike; CPU, memory, wakes
and requests as the leader's USAGE entries report them."""

import time

from conftest import KV, MISBEHAVE, store_query, wait_for

FAST = ["--usage-interval", "200", "--freeze-timeout", "0"]


def ship_usage(h, name):
    return h.cli_json("ship", "show", name)["usage"]


def account_usage(h, name="anonymous"):
    return h.cli_json("account", "show", name)["usage"]


def put(h, ship, key, value):
    status, _, body = h.http("PUT", "/s/%s/k/%s" % (ship, key), value)
    assert status in (200, 201, 204), (status, body)


def test_storage_follows_writes_and_snapshots(host_factory):
    h = host_factory(FAST).start()
    h.new_ship(KV, "ann")
    made = ship_usage(h, "ann")
    acct = account_usage(h)
    # The ship's row alone: STORE_USAGE_ROW (128) + its name and program.
    assert made["storage_bytes"] == 128 + len("ann") + len(KV)
    assert made["events"] == 0
    assert acct["ships"] == 1
    assert acct["storage_bytes"] == made["storage_bytes"]

    for i in range(10):
        put(h, "ann", "k%d" % i, b"x" * 10000)
    full = ship_usage(h, "ann")
    assert full["events"] == 10
    # Each event record holds its 10,000-byte value, sealed.
    assert full["storage_bytes"] > made["storage_bytes"] + 100000
    assert full["storage_bytes"] < made["storage_bytes"] + 110000
    # Reads commit nothing: no event, no storage.
    for i in range(5):
        status, _, body = h.http("GET", "/s/ann/k/k%d" % i)
        assert status == 200 and body == b"x" * 10000
    assert ship_usage(h, "ann")["events"] == 10
    assert ship_usage(h, "ann")["storage_bytes"] == full["storage_bytes"]
    acct = account_usage(h)
    assert acct["events"] == 10
    assert acct["storage_bytes"] == full["storage_bytes"]

    # The first snapshot holds the 100 KB of state beside the events, which
    # stay (with the prior snapshot) until the next snapshot.
    h.cli("ship", "sleep", "ann")
    asleep = ship_usage(h, "ann")
    assert asleep["storage_bytes"] > full["storage_bytes"] + 100000
    # Delete the keys; the second snapshot is small, and lets the events
    # before the first go.
    for i in range(10):
        status, _, _ = h.http("DELETE", "/s/ann/k/k%d" % i)
        assert status == 200
    h.cli("ship", "sleep", "ann")
    second = ship_usage(h, "ann")
    assert second["events"] == 20
    assert second["storage_bytes"] < asleep["storage_bytes"] - 100000
    # A third snapshot replaces the large one kept as the prior: what is
    # left is the row, two small snapshots and the events since the second.
    put(h, "ann", "small", b"s")
    h.cli("ship", "sleep", "ann")
    third = ship_usage(h, "ann")
    assert third["events"] == 21
    assert third["storage_bytes"] < made["storage_bytes"] + 2000
    assert account_usage(h)["storage_bytes"] == third["storage_bytes"]

    # Removing the ship takes its figures out of the account's, but for
    # the events it committed, which stay counted.
    h.cli("ship", "rm", "ann")
    acct = account_usage(h)
    assert acct["ships"] == 0 and acct["storage_bytes"] == 0
    assert acct["events"] == 21


def test_wakes_requests_cpu_and_memory(host_factory):
    h = host_factory(FAST).start()
    h.new_ship(MISBEHAVE, "busy")
    h.new_ship(KV, "calm")
    for _ in range(3):
        status, _, _ = h.http("GET", "/s/busy/spin/300")
        assert status == 200
        h.cli("ship", "sleep", "busy")
    put(h, "calm", "a", b"1")
    h.http("GET", "/s/calm/k/a")

    def recorded():
        u = ship_usage(h, "busy")
        return u if u["wakes"] == 3 and u["requests"] == 3 else None
    busy = wait_for(recorded, timeout=10, step=0.1)
    # 900 ms of CPU spun, read from the program's cgroup or /proc at each
    # sleep.
    assert busy["cpu_us"] >= 800000, busy
    assert busy["memory_peak_bytes"] > 0
    assert busy["events"] == 0
    calm = wait_for(lambda: (lambda u: u if u["requests"] == 2 else None)(
        ship_usage(h, "calm")), timeout=10, step=0.1)
    assert calm["wakes"] == 1 and calm["events"] == 1
    assert calm["cpu_us"] < busy["cpu_us"]

    acct = account_usage(h)
    assert acct["wakes"] == 4 and acct["requests"] == 5
    # The account's CPU is its ships' sum. Read together, and again if a
    # USAGE entry came between the reads (the last sleep's CPU can come
    # after the entry `busy` saw; calm runs and is measured every interval).
    wait_for(lambda: account_usage(h)["cpu_us"] == ship_usage(h, "busy")["cpu_us"]
             + ship_usage(h, "calm")["cpu_us"], timeout=10, step=0.1)
    wait_for(lambda: account_usage(h)["memory_peak_bytes"] == max(
        ship_usage(h, "busy")["memory_peak_bytes"],
        ship_usage(h, "calm")["memory_peak_bytes"]), timeout=10, step=0.1)
    assert acct["ships"] == 2 and acct["ships_awake"] == 1  # calm runs

    # A program left running is measured every interval, not only when it
    # stops: memory byte-seconds grow while it is awake.
    first = ship_usage(h, "calm")["memory_byte_seconds"]
    wait_for(lambda: ship_usage(h, "calm")["memory_byte_seconds"] > first,
             timeout=10, step=0.2)

    # Recorded figures are in the store: a restart keeps them. (What the
    # store holds at the stop, not `busy`: the last sleep's CPU may have
    # come in a USAGE entry after `busy` was read.)
    h.stop()
    stored = store_query(h.data, "SELECT usage_cpu_us, usage_wakes FROM ships "
                                 "WHERE name = 'busy'")[0]
    assert stored[0] >= busy["cpu_us"] and stored[1] == 3
    h.start()
    again = ship_usage(h, "busy")
    assert (again["cpu_us"], again["wakes"]) == stored


def test_accounts_are_counted_apart(host_factory):
    h = host_factory(FAST).start()
    h.cli("account", "new", "alice")
    h.cli("ship", "new", "--program", KV, "--name", "a-", "--count", "3",
          "--account", "alice")
    h.new_ship(KV, "anon")
    put(h, "a--1", "x", b"y" * 1000)
    alice = account_usage(h, "alice")
    anon = account_usage(h)
    assert alice["ships"] == 3 and anon["ships"] == 1
    assert alice["events"] == 1 and anon["events"] == 0
    rows = sum(128 + len("a--%d" % i) + len(KV) for i in (1, 2, 3))
    assert alice["storage_bytes"] > rows + 1000
    assert anon["storage_bytes"] == 128 + len("anon") + len(KV)
    ls = {a["name"]: a for a in h.cli_json("account", "ls")["accounts"]}
    assert ls["alice"]["usage"]["storage_bytes"] == alice["storage_bytes"]
    text = h.cli("account", "ls").stdout
    assert "STORAGE" in text and str(alice["storage_bytes"]) in text
    show = h.cli("account", "show", "alice").stdout
    assert "storage:         %d bytes" % alice["storage_bytes"] in show
    assert "ships:           3 (" in show


def recorded_in_store(data):
    """Every ship's and account's recorded figures, read from a copy of a
    host's store."""
    return store_query(
        data,
        "SELECT id, usage_bytes, last_event, usage_cpu_us, usage_mem_peak, "
        "usage_mem_byte_s, usage_wakes, usage_requests FROM ships ORDER BY sid",
        "SELECT id, usage_ships, usage_bytes, usage_events, usage_cpu_us, "
        "usage_mem_peak, usage_mem_byte_s, usage_wakes, usage_requests FROM "
        "accounts ORDER BY id")


def test_figures_agree_on_every_host(cluster_factory):
    c = cluster_factory(3, extra=FAST).start()
    lead = c.leader()
    follower = next(h for h in c.hosts if h is not lead)
    follower.new_ship(KV, "one")
    follower.new_ship(MISBEHAVE, "two")
    for i in range(20):
        put(c.hosts[i % 3], "one", "k%d" % i, b"v" * 500)
    follower.http("GET", "/s/two/spin/100")
    follower.cli("ship", "sleep", "one")
    follower.cli("ship", "sleep", "two")
    want = wait_for(lambda: (lambda u: u if u["requests"] == 1 and u["cpu_us"] > 0
                             else None)(ship_usage(follower, "two")),
                    timeout=15, step=0.2)
    assert want["wakes"] == 1
    one = ship_usage(follower, "one")
    assert one["events"] == 20 and one["wakes"] == 1

    # Once every host has applied and flushed the same entries (nothing
    # runs any more, so no USAGE entry follows), their stores record the
    # same figures.
    def agreed():
        views = [recorded_in_store(h.data) for h in c.hosts]
        ok = views[0] == views[1] == views[2] and len(views[0][0]) == 2 \
            and views[0][0][1][7] == 1 \
            and views[0][0][1][3] == ship_usage(follower, "two")["cpu_us"]
        return views if ok else None
    try:
        views = wait_for(agreed, timeout=15, step=0.3)
    except AssertionError:
        raise AssertionError([recorded_in_store(h.data) for h in c.hosts])
    ships, accounts = views[0]
    assert len(ships) == 2
    assert sum(s[1] for s in ships) == accounts[0][2]
    assert accounts[0][1] == 2 and accounts[0][3] == 20
    # The stores hold what the API says (waited for above: the CPU of a
    # program that stopped may come in a USAGE entry after the one `want`
    # saw).
    assert max(s[3] for s in ships) >= want["cpu_us"]
    assert [s[2] for s in ships] == [20, 0]
    # And they stay so once the hosts stop.
    for h in c.hosts:
        h.stop()
    assert [recorded_in_store(h.data) for h in c.hosts] == views


def test_accounting_off_records_nothing(host_factory):
    """BERTH_ACCOUNTING=off, the benchmarks' switch: the host says so, and
    neither storage nor requests are recorded, nor does a crawler run; the
    ships serve as usual."""
    import os
    h = host_factory(FAST)
    h.env = dict(os.environ, BERTH_ACCOUNTING="off")
    h.start()
    h.new_ship(KV, "a")
    for i in range(5):
        assert h.http("PUT", "/s/a/k/k%d" % i, b"v")[0] == 201
    assert h.http("GET", "/s/a/k/k1")[2] == b"v"
    time.sleep(0.5)  # a --usage-interval and more
    u = ship_usage(h, "a")
    assert u["storage_bytes"] == 0 and u["requests"] == 0, u
    assert "BERTH_ACCOUNTING=off" in h.logs()
    assert h.cli_json("stats")["crawler"]["share_percent"] == 0
