"""Children made by the operator: `POST /v1/ships` with a parent and a
lifetime (`berth ship new --parent --lifetime`), a ship's lineage in its
object (`parent`, `lifetime`, `children`), the status map of a ship and its
descendants (`GET /v1/ships/SHIP/tree`, `berth ship tree`), the removal of
a parent taking its linked and ephemeral descendants and leaving its root
children without a parent, across a restart, and the CHILD mail a parent is
owed. The fixtures check that no program outlives a test."""
import json
import os
import subprocess

from conftest import BERTH, KV, free_port, store_query, wait_for
from test_children import SPAWNER, spawner_spawn


def make_child(h, name, parent, lifetime=None, **extra):
    """A child through the admin API: (status, answer)."""
    body = {"program": KV, "name": name, "parent": parent}
    if lifetime is not None:
        body["lifetime"] = lifetime
    body.update(extra)
    return h.admin("POST", "/v1/ships", body)


def tree(h, ship):
    status, v = h.admin("GET", "/v1/ships/%s/tree" % ship)
    assert status == 200, v
    return v


def names(node):
    return [c["name"] for c in node["children"]]


def by_name(node, name):
    """The node of ship name in a tree, searched depth first."""
    if node["name"] == name:
        return node
    for c in node["children"]:
        found = by_name(c, name)
        if found is not None:
            return found
    return None


def code(v):
    return v["error"]["code"] if isinstance(v, dict) and "error" in v else None


def test_children_lineage_and_tree(host_factory):
    h = host_factory(["--freeze-timeout", "300", "--idle-timeout", "600000"]).start()
    pa = h.new_ship(KV, "pa")
    shown = h.cli_json("ship", "show", "pa")
    assert (shown["parent"], shown["lifetime"], shown["children"]) == (None, None, 0)

    # Through the API: linked is the default; a parent is named by id or name.
    status, linked = make_child(h, "c-linked", "pa")
    assert status == 201, linked
    assert (linked["parent"], linked["lifetime"], linked["children"]) == (pa, "linked", 0)
    assert linked["account"] == "anonymous"
    status, root = make_child(h, "c-root", pa, "root")
    assert status == 201, root
    assert (root["parent"], root["lifetime"]) == (pa, "root")
    # Through the CLI, and a grandchild.
    eph = h.cli("ship", "new", "--program", KV, "--name", "c-eph", "--parent", "pa",
                "--lifetime", "ephemeral").stdout.strip()
    grand = h.cli_json("ship", "new", "--program", KV, "--name", "g-linked",
                       "--parent", "c-linked")
    assert (grand["parent"], grand["lifetime"]) == (linked["id"], "linked")

    # A resetting child takes a time, and shows it.
    reset = h.cli_json("ship", "new", "--program", KV, "--name", "c-reset", "--parent", "pa",
                       "--lifetime", "resetting", "--lifetime-ms", "600000")
    assert (reset["lifetime"], reset["lifetime_ms"]) == ("resetting", 600000)
    assert "lifetime_ms" not in linked
    text = h.cli("ship", "show", "c-reset").stdout
    assert "lifetime:        resetting (600000 ms)\n" in text
    assert h.cli("ship", "rm", "c-reset").stdout.startswith("removed ")

    shown = h.cli_json("ship", "show", eph)
    assert (shown["parent"], shown["lifetime"], shown["children"]) == (pa, "ephemeral", 0)
    assert h.cli_json("ship", "show", "pa")["children"] == 3
    assert h.cli_json("ship", "show", "c-linked")["children"] == 1
    text = h.cli("ship", "show", "c-eph").stdout
    assert "parent:          %s\n" % pa in text
    assert "lifetime:        ephemeral\n" in text
    assert "children:        0\n" in text
    text = h.cli("ship", "show", "pa").stdout
    assert "parent:          -\n" in text and "lifetime:        -\n" in text

    # The status map: nested, children in creation order, the ships
    # without children asleep (a parent wakes for its CHILD mail).
    t = tree(h, "pa")
    assert (t["id"], t["name"], t["lifetime"]) == (pa, "pa", None)
    assert t["status"] in ("asleep", "active", "idle")
    for leaf in ("c-root", "c-eph", "g-linked"):
        assert by_name(t, leaf)["status"] == "asleep", json.dumps(t)
    assert (t["ships"], t["truncated"]) == (5, False)
    assert names(t) == ["c-linked", "c-root", "c-eph"]
    assert [c["lifetime"] for c in t["children"]] == ["linked", "root", "ephemeral"]
    assert names(t["children"][0]) == ["g-linked"]
    assert by_name(t, "g-linked")["lifetime"] == "linked"
    assert by_name(t, "c-eph")["id"] == eph
    assert "memory_bytes" not in by_name(t, "c-root")  # asleep: not measured

    # A write wakes c-root: active, with its memory and last event; once
    # idle it is frozen: idle.
    assert h.http("PUT", "/s/c-root/k/a", b"1")[0] in (200, 201)
    node = by_name(tree(h, "pa"), "c-root")
    assert node["last_event"] == 1 and node["last_active_ns"] > 0
    assert node["status"] in ("active", "idle") and node["memory_bytes"] >= 0
    wait_for(lambda: by_name(tree(h, "pa"), "c-root")["status"] == "idle")
    assert by_name(tree(h, "pa"), "c-root")["state"] == "frozen"
    assert h.cli_json("ship", "wake", "c-eph")["state"] == "awake"

    # The tree of a subtree, and of a ship without children.
    sub = tree(h, "c-linked")
    assert (sub["name"], names(sub), sub["ships"]) == ("c-linked", ["g-linked"], 2)
    leaf = tree(h, "g-linked")
    assert (leaf["children"], leaf["ships"], leaf["truncated"]) == ([], 1, False)

    # The CLI: a line a ship, indented under its parent.
    lines = h.cli("ship", "tree", "pa").stdout.splitlines()
    assert len(lines) == 5, lines
    assert lines[0].startswith("pa ") and "operator" in lines[0]
    assert lines[1].startswith("  c-linked ") and "linked" in lines[1]
    assert lines[2].startswith("    g-linked ") and "asleep" in lines[2]
    assert lines[3].startswith("  c-root ") and " root " in lines[3] and " idle " in lines[3]
    assert lines[4].startswith("  c-eph ") and "ephemeral" in lines[4]
    # Awake, or frozen by now: either way its memory was measured.
    assert (" active " in lines[4] or " idle " in lines[4]) and "iB" in lines[4]
    assert h.cli_json("ship", "tree", "c-linked")["children"][0]["name"] == "g-linked"
    r = h.cli("ship", "tree", "nobody", check=False)
    assert r.returncode == 1 and r.stdout == "" and "not_found" in r.stderr
    # Only GET.
    status, v = h.admin("POST", "/v1/ships/pa/tree", {})
    assert status == 405 and code(v) == "method_not_allowed"


def test_removing_a_parent_takes_its_linked_and_ephemeral_children(host_factory):
    h = host_factory().start()
    pa = h.new_ship(KV, "pa")
    for name, parent, lifetime in (("c-linked", "pa", "linked"),
                                   ("c-eph", "pa", "ephemeral"),
                                   ("c-root", "pa", "root"),
                                   ("g-linked", "c-linked", "linked"),
                                   ("g-root", "c-linked", "root"),
                                   ("r-linked", "c-root", "linked")):
        status, v = make_child(h, name, parent, lifetime)
        assert status == 201, v
    ids = {s["name"]: s["id"] for s in h.cli_json("ship", "ls")["ships"]}
    assert h.http("PUT", "/s/c-root/k/kept", b"yes")[0] in (200, 201)
    assert h.http("PUT", "/s/r-linked/k/kept", b"too")[0] in (200, 201)

    assert h.cli("ship", "rm", "pa").stdout.strip() == "removed %s" % pa
    gone = ["pa", "c-linked", "c-eph", "g-linked"]

    def check():
        # The root children stay, without a parent; what they made stays
        # theirs.
        root = h.cli_json("ship", "show", "c-root")
        assert (root["parent"], root["lifetime"], root["children"]) == (None, "root", 1)
        g = h.cli_json("ship", "show", "g-root")
        assert (g["parent"], g["lifetime"]) == (None, "root")
        t = tree(h, "c-root")
        assert (names(t), t["ships"]) == (["r-linked"], 2)
        assert t["children"][0]["id"] == ids["r-linked"]
        assert h.http("GET", "/s/c-root/k/kept")[2] == b"yes"
        assert h.http("GET", "/s/r-linked/k/kept")[2] == b"too"
        rows = store_query(h.data, "SELECT name FROM ships ORDER BY sid")
        assert [r[0] for r in rows] == ["c-root", "g-root", "r-linked"]

    check()
    # A restart keeps all of it; the removed ones are not there, by name or
    # id, at the front door or in the admin API.
    assert h.stop() == 0
    h.start()
    check()
    for name in gone:
        for who in (name, ids[name]):
            assert h.http("GET", "/s/%s/k/kept" % who)[0] == 404, who
            status, v = h.admin("GET", "/v1/ships/%s" % who)
            assert status == 404 and code(v) == "not_found", (who, v)
    assert sorted(s["name"] for s in h.cli_json("ship", "ls")["ships"]) == \
        ["c-root", "g-root", "r-linked"]


def test_removed_children_leave_at_once(host_factory):
    h = host_factory().start()
    h.new_ship(KV, "pa")
    for name, lifetime in (("c-linked", "linked"), ("c-eph", "ephemeral")):
        status, v = make_child(h, name, "pa", lifetime)
        assert status == 201, v
    assert h.http("PUT", "/s/c-linked/k/x", b"1")[0] in (200, 201)
    h.cli("ship", "rm", "pa")
    for name in ("c-linked", "c-eph"):
        assert h.http("GET", "/s/%s/k/x" % name)[0] == 404, name
        assert h.admin("GET", "/v1/ships/%s" % name)[0] == 404, name
    assert h.cli_json("ship", "ls")["ships"] == []


def tcli(h, *args, token=None):
    """The CLI against h's admin API on TCP, with token."""
    env = dict(os.environ)
    env.pop("BERTH_TOKEN", None)
    if token is not None:
        env["BERTH_TOKEN"] = token
    return subprocess.run([BERTH] + list(args) + ["--admin", "127.0.0.1:%d" % h.admin_port],
                          capture_output=True, text=True, timeout=60, env=env)


def tcp(h, method, path, token, body=None):
    from conftest import admin_tcp
    status, _, v = admin_tcp(h.admin_port, method, path, token=token, body=body)
    return status, v


def test_child_errors_and_accounts(host_factory):
    h = host_factory(["--admin", "127.0.0.1:%d" % free_port()]).start()
    h.new_ship(KV, "pa")

    # Refused before anything is made, each with a message that says why.
    for body, status_want, words in (
            ({"parent": "nobody"}, 404, "no ship named nobody"),
            ({"lifetime": "root"}, 400, "lifetime goes with parent"),
            ({"parent": "pa", "lifetime": "forever"}, 400, "root"),
            ({"parent": "pa", "lifetime": 2}, 400, "lifetime"),
            ({"parent": "Pa!"}, 400, "parent must be a ship's id or name"),
            ({"parent": "pa", "count": 2}, 400, "count must be 1"),
            ({"parent": "pa", "lifetime": "resetting"}, 400, "needs lifetime_ms"),
            ({"parent": "pa", "lifetime": "leased"}, 400, "needs lifetime_ms"),
            ({"parent": "pa", "lifetime": "resetting", "lifetime_ms": 999}, 400,
             "at least 1000"),
            ({"parent": "pa", "lifetime_ms": 5000}, 400, "lifetime_ms goes with"),
            ({"lifetime_ms": 5000}, 400, "lifetime goes with parent"),
            ({"parent": "pa", "account": "anonymous-x"}, 404, "no account")):
        status, v = h.admin("POST", "/v1/ships", dict({"program": KV, "name": "x"}, **body))
        assert status == status_want, (body, v)
        assert words in v["error"]["message"], (body, v)
    assert [s["name"] for s in h.cli_json("ship", "ls")["ships"]] == ["pa"]
    # A counted creation of one may have a parent.
    status, v = h.admin("POST", "/v1/ships",
                        {"program": KV, "name": "one", "count": 1, "parent": "pa"})
    assert status == 201 and v["created"] == 1, v
    assert h.cli_json("ship", "show", "one-1")["lifetime"] == "linked"

    # The CLI checks what it can before asking (exit 2), and says what the
    # host refused (exit 1).
    for args, rc, words in (
            (["--lifetime", "root"], 2, "--lifetime goes with --parent"),
            (["--parent", "pa", "--lifetime", "forever"], 2,
             "--lifetime needs root, linked, ephemeral, resetting or leased, not forever"),
            (["--parent", "pa", "--lifetime", "resetting"], 2,
             "--lifetime resetting or leased and --lifetime-ms MS go together"),
            (["--parent", "pa", "--lifetime", "leased"], 2, "go together"),
            (["--parent", "pa", "--lifetime-ms", "5000"], 2, "go together"),
            (["--parent", "pa", "--lifetime", "resetting", "--lifetime-ms", "10"], 2,
             "--lifetime-ms needs a number of milliseconds from 1000"),
            (["--parent", "Pa!"], 2, "--parent needs a ship's id or name"),
            (["--parent", "pa", "--count", "3"], 2, "--parent makes one ship"),
            (["--parent", "nobody"], 1, "not_found")):
        r = h.cli("ship", "new", "--program", KV, *args, check=False)
        assert r.returncode == rc and r.stdout == "", (args, r.returncode, r.stderr)
        assert words in r.stderr, (args, r.stderr)

    # Accounts: a child is in its parent's account; another account's ship
    # is not there (404), as a parent or a tree.
    alice = h.cli("account", "new", "alice").stdout.strip()
    bob = h.cli("account", "new", "bob").stdout.strip()
    r = tcli(h, "ship", "new", "--program", KV, "--name", "a1", token=alice)
    assert r.returncode == 0, r.stderr
    status, v = tcp(h, "POST", "/v1/ships", bob, {"program": KV, "name": "b-child",
                                                   "parent": "a1"})
    assert status == 404 and code(v) == "not_found", v
    r = tcli(h, "ship", "new", "--program", KV, "--parent", "a1", token=bob)
    assert r.returncode == 1 and "not_found" in r.stderr, r.stderr
    status, v = tcp(h, "POST", "/v1/ships", bob, {"program": KV, "parent": "pa"})
    assert status == 404, v  # the anonymous account's ship is not bob's either
    status, v = tcp(h, "GET", "/v1/ships/a1/tree", bob)
    assert status == 404, v

    r = tcli(h, "ship", "new", "--program", KV, "--name", "a-child", "--parent", "a1",
             "--lifetime", "root", "--json", token=alice)
    assert r.returncode == 0, r.stderr
    child = json.loads(r.stdout)
    assert (child["account"], child["lifetime"]) == ("alice", "root")
    # The operator's child of alice's ship is alice's too; naming another
    # account is refused.
    status, v = make_child(h, "op-child", "a1")
    assert status == 201 and v["account"] == "alice", v
    status, v = make_child(h, "bad", "a1", account="bob")
    assert status == 400 and "parent's account" in v["error"]["message"], v
    status, v = tcp(h, "GET", "/v1/ships/a1/tree", alice)
    assert status == 200 and names(v) == ["a-child", "op-child"], v
    assert h.cli_json("account", "show", "alice")["ships"] == 3
    assert h.cli_json("account", "show", "bob")["ships"] == 0
    # A read token sees trees.
    read = h.cli("token", "new", "--scope", "read").stdout.strip()
    status, v = tcp(h, "GET", "/v1/ships/pa/tree", read)
    assert status == 200 and names(v) == ["one-1"], v


def test_child_of_a_sandboxed_ship_keeps_its_sandbox(host_factory):
    """A child the operator makes has no more than its parent: the child of
    a ship hidden from the front door is hidden too."""
    h = host_factory().start()
    h.new_ship(SPAWNER, "top")
    hidden = spawner_spawn(h, "top", {"sandbox": [2, 0, 0, 0]})["id"]
    assert h.http("GET", "/s/%s/children" % hidden)[0] == 404
    status, v = h.admin("POST", "/v1/ships", {"program": SPAWNER, "name": "under",
                                              "parent": hidden})
    assert status == 201 and v["parent"] == hidden, v
    assert h.http("GET", "/s/under/children")[0] == 404
    # A child of a ship without a sandbox has none either.
    status, v = h.admin("POST", "/v1/ships", {"program": SPAWNER, "name": "open",
                                              "parent": "top"})
    assert status == 201, v
    assert h.http("GET", "/s/open/children")[0] == 200
    assert [r[0] for r in store_query(
        h.data, "SELECT name FROM ships WHERE sandbox IS NOT NULL "
                "AND length(sandbox) > 0 AND name IS NOT NULL")] == ["under"]


def test_parent_is_owed_child_mail(host_factory, tmp_path):
    """Each child made puts one CHILD event for its parent in the mail
    table. The parent's program here cannot start, so that nothing takes
    the mail before the test reads it from the stopped host's store."""
    broken = tmp_path / "broken"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    h = host_factory().start()
    h.new_ship(str(broken), "pa")
    made = []
    for name, lifetime in (("c1", "linked"), ("c2", "root"), ("c3", "ephemeral")):
        status, v = make_child(h, name, "pa", lifetime)
        assert status == 201, v
        made.append(v["id"])
    assert h.stop() == 0
    sid = store_query(h.data, "SELECT sid FROM ships WHERE name = 'pa'")[0][0]
    rows = store_query(h.data, "SELECT target, kind, body FROM mail ORDER BY seq")
    mine = [r for r in rows if r[0] == sid]
    assert len(mine) == 3 and len(rows) == 3, rows
    assert {r[1] for r in mine} == {5}  # FRAME_EVENT_CHILD
    for child in made:
        assert sum(child.encode() in bytes(r[2]) for r in mine) == 1, child
