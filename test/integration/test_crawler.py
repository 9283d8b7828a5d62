"""The crawler: a walk of each host's store that recomputes every ship's and
every account's storage and ship count from what the store holds, and
corrects the recorded figures that drifted (docs/store.md, "The
crawler")."""
from conftest import KV, store_sql as tamper, wait_for

FAST = ["--crawl-share", "100", "--crawl-rest", "200"]


def account(h, name="anonymous"):
    status, v = h.admin("GET", "/v1/accounts/%s" % name)
    assert status == 200, v
    return v


def stats(h):
    status, v = h.admin("GET", "/v1/stats")
    assert status == 200, v
    return v


def test_the_crawler_finds_and_fixes_drift(host_factory):
    h = host_factory(FAST).start()
    for name in ("a", "b", "c"):
        h.new_ship(KV, name)
    for i in range(20):
        assert h.http("PUT", "/s/a/k/k%d" % i, b"x" * 200)[0] == 201
    h.cli("ship", "sleep", "a")
    # A pass agrees with what apply recorded.
    wait_for(lambda: stats(h)["crawler"]["passes"] >= 1, timeout=20)
    before = account(h)
    c = before["crawl"]
    assert c is not None
    assert c["ships"] == c["recorded_ships"] == 3
    assert c["storage_bytes"] == c["recorded_storage_bytes"] == before["usage"]["storage_bytes"]
    assert stats(h)["crawler"]["ships_fixed"] == 0
    truth = before["usage"]["storage_bytes"]
    ship_a = h.cli_json("ship", "show", "a")["usage"]["storage_bytes"]

    # Drift: a ship's figure and the account's, wrong on disk.
    assert h.stop() == 0
    tamper(h, "UPDATE ships SET usage_bytes = usage_bytes + 12345 WHERE name = 'a'")
    tamper(h, "UPDATE accounts SET usage_ships = usage_ships + 2, "
              "usage_bytes = usage_bytes - 777 WHERE id = 0")
    h.start()
    assert account(h)["usage"]["storage_bytes"] == truth - 777
    assert account(h)["usage"]["ships"] == 5

    def fixed():
        v = account(h)
        return v["usage"]["ships"] == 3 and v["usage"]["storage_bytes"] == truth
    wait_for(fixed, timeout=30)
    assert h.cli_json("ship", "show", "a")["usage"]["storage_bytes"] == ship_a
    log = open(h.log_path, "rb").read().decode(errors="replace")
    assert "crawler: ships' recorded storage corrected" in log
    assert "crawler: an account's recorded usage corrected" in log
    c = account(h)["crawl"]
    assert c["ships"] == 3 and c["recorded_ships"] == 5, c
    show = h.cli("account", "show", "anonymous").stdout
    assert "crawled:" in show and "3 ships (recorded 5)" in show, show
    assert c["storage_bytes"] == truth
    # And it stays right across writes and another pass.
    for i in range(5):
        assert h.http("PUT", "/s/b/k/k%d" % i, b"y" * 100)[0] == 201
    passes = stats(h)["crawler"]["passes"]
    wait_for(lambda: stats(h)["crawler"]["passes"] >= passes + 2, timeout=30)
    v = account(h)
    assert v["crawl"]["ships"] == v["crawl"]["recorded_ships"] == 3
    assert v["crawl"]["storage_bytes"] == v["crawl"]["recorded_storage_bytes"]


def test_a_pass_resumes_after_a_restart(host_factory):
    """The cursor is kept: a host stopped in the middle of a pass goes on
    from there (a slow crawl over many ships, stopped at once)."""
    h = host_factory(["--crawl-share", "1", "--crawl-rest", "60000"]).start()
    h.cli("ship", "new", "--program", KV, "--count", "3000")
    wait_for(lambda: stats(h)["crawler"]["cursor"] > 0, timeout=30)
    assert h.stop() == 0
    cursor = tamper(h, "SELECT value FROM meta WHERE key = 'crawl_cursor'")[0][0]
    assert cursor > 0
    h.start()
    assert stats(h)["crawler"]["cursor"] >= cursor
