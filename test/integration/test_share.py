"""Messages between ships on a real host (docs/protocol.md, "Messages"): the
share example (programs/share) lets a friend, and no one else, read an
address through a child whose access list names the friend; kv sends
`put` and `get` messages to kv and keeps the receipts; a restart between
sends and their receipts delivers each message and each receipt once."""
import json
import os


from conftest import KV, MISBEHAVE, PROGRAMS, store_query, wait_for

SHARE = os.path.join(PROGRAMS, "share")


def get_json(host, path):
    status, _, body = host.http("GET", path)
    assert status == 200, (path, status, body)
    return json.loads(body)


def send(host, ship, target, payload):
    """POST /send/<target> on the kv ship: the message's tag."""
    status, _, body = host.http("POST", "/s/%s/send/%s" % (ship, target),
                                payload.encode())
    assert status == 202, body
    return json.loads(body)["tag"]


def receipt(host, ship, tag, timeout=10):
    """Wait for the receipt of the message tag that kv ship sent."""
    def done():
        m = get_json(host, "/s/%s/sent/%d" % (ship, tag))
        return m if m["outcome"] != "pending" else None
    return wait_for(done, timeout=timeout)


def shares(host, owner):
    return {s["tag"]: s for s in get_json(host, "/s/%s/share" % owner)}


def test_share_address_with_a_friend(host):
    host.cli("account", "new", "alice")
    owner = host.cli_json("ship", "new", "--program", SHARE, "--name", "owner",
                          "--account", "alice")["id"]
    # Another ship of the owner's account, not on the share's list.
    neighbour = host.cli_json("ship", "new", "--program", KV, "--name",
                              "neighbour", "--account", "alice")["id"]
    friend = host.new_ship(KV, "friend")
    stranger = host.new_ship(KV, "stranger")

    assert host.http("PUT", "/s/owner/address", b"12 Harbour Road")[0] == 200
    status, _, body = host.http("POST", "/s/owner/share", friend.encode())
    assert status == 202, body
    tag = json.loads(body)["tag"]
    # The child is spawned, then gets the address in a message.
    share = wait_for(lambda: shares(host, "owner")[tag]["status"] == "shared"
                     and shares(host, "owner")[tag])
    child = share["id"]
    assert share["friend"] == friend and child
    # Its front door is shut: only messages read it.
    assert host.http("GET", "/s/%s/" % child)[0] == 403
    assert host.http("POST", "/s/%s/anything" % child, b"x")[0] == 403

    # The friend asks and gets the address.
    r = receipt(host, "friend", send(host, "friend", child, "get address"))
    assert r == {"tag": r["tag"], "target": child, "outcome": "delivered",
                 "status": 200, "body": "12 Harbour Road"}
    # A stranger is refused by the host, and so is a ship of the owner's
    # own account: the access list decides, not the account.
    for ship in ("stranger", "neighbour"):
        r = receipt(host, ship, send(host, ship, child, "get address"))
        assert r["outcome"] == "refused" and r["status"] == 0, r
        assert "access list" in r["body"], r
    # The friend may ask, but not set.
    r = receipt(host, "friend", send(host, "friend", child, "set 1 Nowhere"))
    assert (r["outcome"], r["status"]) == ("delivered", 403), r

    # The owner moves: the share gets the new address.
    assert host.http("PUT", "/s/owner/address", b"3 Quay Street")[0] == 200
    wait_for(lambda: shares(host, "owner")[tag]["status"] == "shared")
    r = receipt(host, "friend", send(host, "friend", child, "get address"))
    assert (r["status"], r["body"]) == (200, "3 Quay Street"), r

    # The owner stops sharing: the child is gone, and the friend's next
    # read fails, as for any ship that does not exist.
    assert host.http("DELETE", "/s/owner/share/%s" % child)[0] == 202
    wait_for(lambda: shares(host, "owner")[tag]["status"] == "ended")
    r = receipt(host, "friend", send(host, "friend", child, "get address"))
    assert (r["outcome"], r["status"]) == ("failed", 0), r
    # All of it survives a restart.
    host.stop()
    host.start()
    assert shares(host, "owner")[tag]["status"] == "ended"
    assert host.http("GET", "/s/owner/address")[2] == b"3 Quay Street"
    assert get_json(host, "/s/stranger/sent")[0]["outcome"] == "refused"


def test_kv_messages_and_receipts(host):
    a = host.new_ship(KV, "a")
    b = host.new_ship(KV, "b")
    # By id and by name; the receipt names the target's id.
    r = receipt(host, "a", send(host, "a", b, "put colour blue"))
    assert (r["outcome"], r["status"], r["target"]) == ("delivered", 201, b)
    assert host.http("GET", "/s/b/k/colour")[2] == b"blue"
    r = receipt(host, "a", send(host, "a", "b", "get colour"))
    assert (r["outcome"], r["status"], r["body"], r["target"]) == \
        ("delivered", 200, "blue", b), r
    r = receipt(host, "a", send(host, "a", b, "get nothing"))
    assert (r["outcome"], r["status"]) == ("delivered", 404), r
    r = receipt(host, "a", send(host, "a", b, "bogus"))
    assert (r["outcome"], r["status"]) == ("delivered", 400), r
    # No such ship.
    r = receipt(host, "a", send(host, "a", "nobody", "get colour"))
    assert (r["outcome"], r["status"]) == ("failed", 0), r
    # b answered 4 messages, each logged once; a sent 5 and has 5
    # receipts, each logged once.
    assert host.cli_json("ship", "show", "b")["last_event"] == 4
    assert host.cli_json("ship", "show", "a")["last_event"] == 10
    assert len(get_json(host, "/s/a/sent")) == 5
    # A kv child whose access list names b takes b's messages, not a's.
    status, _, body = host.http("POST", "/s/a/children",
                                ("linked allow=%s" % b).encode())
    assert status == 202, body
    ctag = json.loads(body)["tag"]
    kid = wait_for(lambda: {c["tag"]: c for c in
                            get_json(host, "/s/a/children")}[ctag]["id"])
    r = receipt(host, "b", send(host, "b", kid, "put x 1"))
    assert (r["outcome"], r["status"]) == ("delivered", 201), r
    r = receipt(host, "a", send(host, "a", kid, "get x"))
    assert r["outcome"] == "refused", r


def test_rejected_message_fails_with_a_receipt(host):
    host.new_ship(KV, "src")
    mis = host.new_ship(MISBEHAVE, "mis")  # takes only HTTP: rejects it
    tag = send(host, "src", mis, "hello")
    r = receipt(host, "src", tag, timeout=5)
    assert (r["outcome"], r["status"]) == ("failed", 422), r
    assert "only HTTP" in r["body"], r
    assert host.cli_json("ship", "show", "mis")["last_event"] == 0


def exactly_once(host, hard):
    """Send many puts, stop the host (SIGKILL when hard) right after the
    last is accepted, start it again: each message reaches the target once
    and each sender gets one receipt."""
    host.new_ship(KV, "src")
    dst = host.new_ship(KV, "dst")
    n = 60
    tags = [send(host, "src", dst, "put k%d v%d" % (i, i)) for i in range(n)]
    if hard:
        host.kill9()
    else:
        host.stop()
    host.start()

    def all_done():
        sent = get_json(host, "/s/src/sent")
        return sent if all(m["outcome"] != "pending" for m in sent) else None
    sent = wait_for(all_done, timeout=30)
    assert [m["tag"] for m in sent] == tags
    # Each put found its key new (201): none was delivered before.
    assert [(m["outcome"], m["status"]) for m in sent] == \
        [("delivered", 201)] * n, sent
    keys = get_json(host, "/s/dst/k")
    assert sorted(keys) == sorted("k%d" % i for i in range(n))
    # Every MESSAGE is logged, so dst's log holds exactly n events, and
    # src's n sends and n receipts.
    assert host.cli_json("ship", "show", "dst")["last_event"] == n
    assert host.cli_json("ship", "show", "src")["last_event"] == 2 * n
    assert "already has its receipt" not in host.logs()
    host.stop()
    assert store_query(host.data, "SELECT count(*) FROM mail") == [(0,)]
    host.start()


def test_exactly_once_across_a_restart(host):
    exactly_once(host, hard=False)


def test_exactly_once_across_a_crash(host):
    exactly_once(host, hard=True)
