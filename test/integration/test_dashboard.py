"""The dashboard (docs/dashboard.md) in a real browser: Debian's chromium,
headless, driven through playwright-core (test/browser/driver.mjs) against
a real host with an account and ships. The page's figures match the API;
its buttons disable and enable an account (whose ship then answers 403 at
the front door, and again after) and put a ship to sleep and wake it. The
browser reaches loopback only. Missing node, npm or chromium fails the
test (scripts/deps.sh installs them), as does a failed npm ci.

BERTH_DASHBOARD_SCREENSHOT=PATH also saves the screenshot there (how
docs/dashboard.png is made)."""
import filecmp
import json
import os
import select
import shutil
import signal
import subprocess
import time

import pytest

from conftest import BERTH, KV, ROOT, admin_tcp, free_port, wait_for

BROWSER_SRC = os.path.join(ROOT, "test", "browser")
CHROMIUM = "/usr/bin/chromium"


tcp = admin_tcp


def node_modules():
    """playwright-core installed by npm ci, from test/browser's lock file,
    into the build folder (again whenever the lock file changes)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail("%s is missing: scripts/deps.sh installs it" % tool)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail("%s is missing: scripts/deps.sh installs Debian's chromium" % CHROMIUM)
    d = os.path.join(os.path.dirname(os.path.abspath(BERTH)), "browser")
    lock = os.path.join(BROWSER_SRC, "package-lock.json")
    stamp = os.path.join(d, "installed-lock.json")
    if not (os.path.exists(stamp) and filecmp.cmp(stamp, lock, shallow=False)
            and os.path.isdir(os.path.join(d, "node_modules", "playwright-core"))):
        os.makedirs(d, exist_ok=True)
        for f in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(BROWSER_SRC, f), os.path.join(d, f))
        env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
        r = subprocess.run(["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
                           cwd=d, capture_output=True, text=True, timeout=300, env=env)
        if r.returncode != 0:
            pytest.fail("npm ci in %s failed:\n%s%s" % (d, r.stdout[-2000:], r.stderr[-2000:]))
        shutil.copy(lock, stamp)
    return os.path.join(d, "node_modules")


def session_processes(sid):
    """Pids of the processes in session sid (the driver and its browser)."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:  # state ppid pgrp session
            found.append(int(name))
    return found


class Browser:
    """test/browser/driver.mjs in a session of its own: one command, one
    answer, as JSON lines."""

    def __init__(self, modules):
        env = dict(os.environ, BERTH_NODE_MODULES=modules, BERTH_CHROMIUM=CHROMIUM)
        self.proc = subprocess.Popen(["node", os.path.join(BROWSER_SRC, "driver.mjs")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, start_new_session=True, text=True)

    def call(self, op, timeout=30, **args):
        self.proc.stdin.write(json.dumps(dict(args, op=op)) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "the browser did not answer %s in %s s" % (op, timeout)
        line = self.proc.stdout.readline()
        assert line, "the browser driver exited (%s)" % self.proc.poll()
        v = json.loads(line)
        assert v["ok"], "%s: %s" % (op, v.get("error"))
        return v

    def read(self):
        return self.call("read")["page"]

    def wait_polls(self, n=1):
        return self.call("wait_polls", n=n)["page"]

    def wait_page(self, pred, timeout=15):
        """Wait until pred(page) holds, polling what the page shows."""
        deadline = time.time() + timeout
        while True:
            p = self.read()
            try:
                if pred(p):
                    return p
            except KeyError:  # a row not drawn yet
                pass
            assert time.time() < deadline, "the page never showed it: %s" % json.dumps(p)[:3000]
            time.sleep(0.2)

    def close(self):
        """Close the browser and check that nothing it started is left."""
        sid = self.proc.pid
        try:
            if self.proc.poll() is None:
                self.call("close")
            self.proc.wait(20)
        finally:
            deadline = time.time() + 10
            while session_processes(sid) and time.time() < deadline:
                time.sleep(0.1)
            left = session_processes(sid)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        assert not left, "browser processes outlived the test: %s" % left


@pytest.fixture
def browser():
    b = Browser(node_modules())
    try:
        yield b
    finally:
        b.close()


def api(port, token, path):
    status, _, v = tcp(port, "GET", path, token)
    assert status == 200, (path, status, v)
    return v


def front(h, ship):
    """GET of a key through the front door: (status, error code or body)."""
    status, _, body = h.http("GET", "/s/%s/k/colour" % ship)
    try:
        v = json.loads(body)
    except ValueError:
        v = None
    if isinstance(v, dict) and "error" in v:
        return status, v["error"]["code"]
    return status, body


def test_dashboard_in_a_browser(host_factory, browser):
    # Ships stay in their tier while the page and the API are compared.
    h = host_factory(["--admin", "127.0.0.1:%d" % free_port(), "--freeze-timeout", "0",
                      "--idle-timeout", "600000"]).start()
    port = h.admin_port
    token = h.cli("token", "new", "--scope", "admin", "--name", "dash").stdout.strip()
    h.cli("account", "new", "alice")
    h.cli("account", "new", "bert")
    web = h.new_ship(KV, "web", "--account", "alice")
    h.new_ship(KV, "spare", "--account", "alice")
    h.new_ship(KV, "bob")
    for ship in ("web", "bob"):
        status, _, _ = h.http("PUT", "/s/%s/k/colour" % ship, body=b"blue")
        assert status in (200, 201, 204), status
    assert front(h, "web") == (200, b"blue")

    # The page's files: their types, and a policy of this origin only, no
    # inline script; no token needed for them, one for every /v1/ request.
    for path, ctype in (("/dashboard", "text/html"), ("/dashboard/", "text/html"),
                        ("/dashboard/app.js", "text/javascript"),
                        ("/dashboard/style.css", "text/css")):
        status, headers, _ = tcp(port, "GET", path)
        assert status == 200, path
        assert headers["Content-Type"].startswith(ctype), (path, headers)
        csp = headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
        assert "unsafe-inline" not in csp and "connect-src 'self'" in csp, csp
        assert headers["X-Content-Type-Options"] == "nosniff"
    assert tcp(port, "GET", "/dashboard/missing.js")[0] == 404
    assert tcp(port, "GET", "/dashboard/../admin.sock")[0] == 404
    assert tcp(port, "POST", "/dashboard")[0] == 405
    assert tcp(port, "GET", "/v1/accounts")[0] == 401

    # Without a token the page asks for one; a wrong one is refused; the
    # right one, typed in, opens it.
    base = "http://127.0.0.1:%d/dashboard" % port
    browser.call("open", url=base)
    p = browser.wait_page(lambda p: p["login"])
    assert not p["main"] and not p["token_kept"]
    browser.call("fill", selector="#token", value="bt_" + "A" * 43)
    browser.call("click", selector="#login button[type=submit]")
    p = browser.wait_page(lambda p: p["login"] and "refused" in p["message"])
    browser.call("fill", selector="#token", value=token)
    browser.call("click", selector="#login button[type=submit]")
    p = browser.wait_page(lambda p: p["main"] and p["polls"] >= 1)
    assert p["token_kept"]

    # The token in the URL's fragment: taken, then dropped from the address.
    browser.call("open", url=base + "#token=" + token)
    browser.wait_page(lambda p: p["polls"] >= 1)
    p = browser.wait_polls(1)
    assert "token" not in p["url"], p["url"]
    assert p["token_kept"]

    # Hosts: as GET /v1/cluster says.
    cluster = api(port, token, "/v1/cluster")
    assert sorted(p["hosts"]) == sorted(str(x["id"]) for x in cluster["hosts"])
    for x in cluster["hosts"]:
        shown = p["hosts"][str(x["id"])]
        assert shown["role"] == ("leader" if x["leader"] else x["role"])
        assert shown["online"] == ("yes" if x["online"] else "no")
        # This host's own heartbeat is always there, made when asked.
        assert shown["heartbeat"].endswith(" s"), shown

    # Ships by tier: as GET /v1/ships?state=...&limit=1 counts them.
    tiers = {t: api(port, token, "/v1/ships?state=%s&limit=1" % t)["total"]
             for t in ("asleep", "waking", "awake", "frozen", "sleeping")}
    assert tiers["awake"] == 2 and tiers["asleep"] == 1, tiers
    assert {k: int(v) for k, v in p["tiers"].items() if k != "all"} == tiers
    assert int(p["tiers"]["all"]) == 3

    # Accounts: names, state, ships, and usage figures when the API has them
    # (a dash when it does not).
    accounts = api(port, token, "/v1/accounts")["accounts"]
    assert sorted(p["accounts"]) == sorted(a["name"] for a in accounts)
    assert sorted(p["accounts"]) == ["alice", "anonymous", "bert"]
    for a in accounts:
        shown = p["accounts"][a["name"]]
        assert shown["state"] == "enabled"
        usage = a.get("usage") or {}
        assert shown["ships"] == str(usage.get("ships", a["ships"])), (a, shown)
        # The page's column, and the API's name of its figure.
        for field, name in (("awake", "ships_awake"), ("storage_bytes", "storage_bytes"),
                            ("events", "events"), ("cpu_seconds", "cpu_us"),
                            ("memory_peak_bytes", "memory_peak_bytes"),
                            ("memory_byte_seconds", "memory_byte_seconds"),
                            ("wakes", "wakes"), ("requests", "requests")):
            assert (shown[field] == "-") == (usage.get(name) is None), (field, a, shown)
        if usage:
            assert shown["events"] == str(usage["events"]), (a, shown)
            assert shown["awake"] == str(usage["ships_awake"]), (a, shown)
        assert shown["actions"] == ["disable"]
    assert p["accounts"]["alice"]["ships"] == "2"

    # Ships and recent wakes, from the ships' own objects.
    ships = api(port, token, "/v1/ships")["ships"]
    assert sorted(p["ships"]) == sorted(s["name"] for s in ships)
    for s in ships:
        assert p["ships"][s["name"]]["state"] == s["state"]
        assert p["ships"][s["name"]]["actions"] == ["sleep", "wake"]
    assert sorted(p["wakes"]) == ["bob", "web"]
    assert {"ships", "awake ships", "ships asleep", "wakes / s (this host)"} <= set(p["charts"])
    assert p["lines"] > 0

    # Disable alice with its button: its ship answers 403 at the front door;
    # another account's ship still answers.
    browser.call("click", selector='#accounts tr[data-account="alice"] button[data-action="disable"]')
    p = browser.wait_page(lambda p: p["accounts"]["alice"]["state"] == "disabled")
    assert p["accounts"]["alice"]["actions"] == ["enable"]
    assert "alice" in p["message"]
    assert api(port, token, "/v1/accounts/alice")["disabled"] is True
    assert front(h, "web") == (403, "account_disabled")
    assert front(h, web) == (403, "account_disabled")
    assert front(h, "bob") == (200, b"blue")
    # Its ships go to sleep, and the page shows it.
    p = browser.wait_page(lambda p: p["ships"]["web"]["state"] == "asleep")

    # Waking a disabled account's ship is refused, and the page says why.
    browser.call("click", selector='#ships tr[data-ship="web"] button[data-action="wake"]')
    p = browser.wait_page(lambda p: "account_disabled" in p["message"])
    assert api(port, token, "/v1/ships/web")["state"] == "asleep"

    shot = os.path.join(os.path.dirname(os.path.abspath(BERTH)), "dashboard.png")
    browser.call("wait_polls", n=2)
    browser.call("screenshot", path=shot)
    assert os.path.getsize(shot) > 10000
    if os.environ.get("BERTH_DASHBOARD_SCREENSHOT"):
        shutil.copy(shot, os.environ["BERTH_DASHBOARD_SCREENSHOT"])

    # Enable it: the ship answers again.
    browser.call("click", selector='#accounts tr[data-account="alice"] button[data-action="enable"]')
    p = browser.wait_page(lambda p: p["accounts"]["alice"]["state"] == "enabled")
    assert api(port, token, "/v1/accounts/alice")["disabled"] is False
    assert wait_for(lambda: front(h, "web") == (200, b"blue"))

    # Sleep and wake a ship with its buttons.
    browser.call("click", selector='#ships tr[data-ship="bob"] button[data-action="sleep"]')
    wait_for(lambda: api(port, token, "/v1/ships/bob")["state"] == "asleep")
    browser.wait_page(lambda p: p["ships"]["bob"]["state"] == "asleep")
    browser.call("click", selector='#ships tr[data-ship="bob"] button[data-action="wake"]')
    wait_for(lambda: api(port, token, "/v1/ships/bob")["state"] == "awake")
    p = browser.wait_page(lambda p: p["ships"]["bob"]["state"] == "awake")
    assert int(p["tiers"]["awake"]) == api(port, token, "/v1/ships?state=awake&limit=1")["total"]

    # Nothing went wrong in the page, nothing left for another origin, and
    # its policy holds: no inline script runs, no request leaves.
    checks = browser.call("checks")
    assert checks["blocked"] == [], checks["blocked"]
    # The one 403 the page met (the refused wake) is the only error logged.
    assert all("403" in e for e in checks["errors"]), checks["errors"]
    probe = browser.call("probe_csp")["probe"]
    assert probe["inline"] is False and probe["fetched"] is False, probe
    assert any("Content Security Policy" in e for e in probe["errors"]), probe
    assert browser.call("checks")["blocked"] == []


def test_dashboard_with_a_read_token(host_factory, browser):
    """A read token sees hosts, tiers and ships; the accounts part says it
    was refused, and the rest of the page still works."""
    h = host_factory(["--admin", "127.0.0.1:%d" % free_port()]).start()
    port = h.admin_port
    token = h.cli("token", "new", "--scope", "read").stdout.strip()
    h.new_ship(KV, "bob")
    browser.call("open", url="http://127.0.0.1:%d/dashboard#token=%s" % (port, token))
    p = browser.wait_page(lambda p: p["polls"] >= 1)
    assert "forbidden" in p["part_errors"]["accounts"], p["part_errors"]
    assert p["accounts"] == {}
    assert list(p["ships"]) == ["bob"] and p["tiers"]["asleep"] == "1"
    assert len(p["hosts"]) == 1


def test_dashboard_shows_usage(host_factory, browser):
    """Account objects with a usage object (as the host answers once usage
    is recorded; mocked here in the browser): each figure is shown in its
    unit, and counters are charted as rates between polls."""
    h = host_factory(["--admin", "127.0.0.1:%d" % free_port()]).start()
    port = h.admin_port
    token = h.cli("token", "new", "--scope", "admin").stdout.strip()
    mib = 1 << 20

    def accounts(events, requests):
        usage = {"ships": 3, "ships_awake": 1, "storage_bytes": 1536, "events": events,
                 "cpu_us": 2500000, "memory_peak_bytes": 3 * mib,
                 "memory_byte_seconds": 10 * mib, "wakes": 4, "requests": requests}
        return {"anonymous_creation": True, "accounts": [
            {"id": 0, "name": "anonymous", "disabled": False, "created_ns": 0, "ships": 0},
            {"id": 1, "name": "carol", "disabled": False, "created_ns": 1, "ships": 3,
             "usage": usage}]}

    browser.call("mock", path="/v1/accounts", body=accounts(100, 50))
    browser.call("open", url="http://127.0.0.1:%d/dashboard#token=%s" % (port, token))
    p = browser.wait_page(lambda p: p["polls"] >= 1)
    carol = p["accounts"]["carol"]
    assert carol["ships"] == "3" and carol["awake"] == "1"
    assert carol["storage_bytes"] == "1.5 KiB"
    assert carol["events"] == "100" and carol["requests"] == "50"
    assert carol["cpu_seconds"] == "2.50" and carol["wakes"] == "4"
    assert carol["memory_peak_bytes"] == "3.0 MiB"
    assert carol["memory_byte_seconds"] == "10.0 MiB\u00b7s"
    assert p["accounts"]["anonymous"]["events"] == "-"
    assert p["accounts"]["anonymous"]["ships"] == "0"
    # 2 s later, 20 more events and 10 more requests: about 10 and 5 a second.
    browser.call("mock", path="/v1/accounts", body=accounts(120, 60))
    p = browser.wait_page(lambda p: p["accounts"]["carol"]["events"] == "120")
    rates = browser.call("legend", chart="events / s")["legend"]
    assert any(t.startswith("carol ") and 5 < float(t.split()[1]) < 15 for t in rates), rates


def test_dashboard_of_a_cluster(cluster_factory, browser):
    """The page served by a host that does not lead: the cluster's three
    hosts as that host sees them, and the leader's accounts and ships
    (its requests are forwarded); its disable button holds on the leader's
    front door and on its own."""
    c = cluster_factory(0)
    for _ in range(3):
        c.add_host(extra=["--admin", "127.0.0.1:%d" % free_port()])
    c.start()
    leader = c.leader()
    follower = next(h for h in c.hosts if h is not leader)
    port = follower.admin_port
    token = leader.cli("token", "new", "--scope", "admin").stdout.strip()
    leader.cli("account", "new", "dora")
    c.new_ship("shop", "--account", "dora")
    wait_for(lambda: c.request("PUT", "/s/shop/k/colour", b"red")[0] in (200, 201, 204))

    browser.call("open", url="http://127.0.0.1:%d/dashboard#token=%s" % (port, token))
    p = browser.wait_page(lambda p: p["polls"] >= 1 and len(p["hosts"]) == 3
                          and "shop" in p["ships"])
    cluster = api(port, token, "/v1/cluster")
    assert sorted(p["hosts"]) == sorted(str(x["id"]) for x in cluster["hosts"])
    assert sum(1 for x in p["hosts"].values() if x["role"] == "leader") == 1
    assert all(x["online"] == "yes" for x in p["hosts"].values())
    assert sorted(p["accounts"]) == ["anonymous", "dora"]
    assert p["ships"]["shop"]["state"] == api(port, token, "/v1/ships/shop")["state"]

    browser.call("click", selector='#accounts tr[data-account="dora"] button[data-action="disable"]')
    browser.wait_page(lambda p: p["accounts"]["dora"]["state"] == "disabled")
    for h in (leader, follower):
        status, _, body = h.http("GET", "/s/shop/k/colour")
        assert status == 403 and json.loads(body)["error"]["code"] == "account_disabled"
    browser.call("click", selector='#accounts tr[data-account="dora"] button[data-action="enable"]')
    browser.wait_page(lambda p: p["accounts"]["dora"]["state"] == "enabled")
    wait_for(lambda: leader.http("GET", "/s/shop/k/colour")[:1] == (200,))
    assert browser.call("checks")["errors"] == []
