"""Bad peers: garbage on the peer port, a host of another cluster, a host
started on another host's data directory. Each gets a clear error, nothing
is corrupted and the cluster keeps serving."""
import os
import shutil
import socket
import subprocess
import time

from conftest import BERTH, ClusterHost, Writers, free_port, store_ships, wait_for, wait_no_programs
from test_cluster import stores_agree


def send_raw(peer, data, linger=0.2):
    """Connect to a peer port, send data, and return what came back before
    the host closed the connection (or linger seconds passed)."""
    host, port = peer.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=2)
    got = b""
    try:
        s.sendall(data)
        s.settimeout(linger)
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError, BrokenPipeError):
        pass
    finally:
        s.close()
    return got


# Inside the encrypted channel (src/crypto/channel.h): a raw client without
# the cluster secret never gets that far, so these requests are garbage too.
MAGIC = b"berthp03"
RAFT, JOIN, PROBE = 1, 2, 3
WRONG_CLUSTER = 1


def preamble(cluster, kind, body=b"", sender=99, length=None, call=1):
    """A peer request header (docs: src/consensus/transport.h) and body."""
    return (MAGIC + cluster + kind.to_bytes(4, "little")
            + (len(body) if length is None else length).to_bytes(4, "little")
            + sender.to_bytes(8, "little") + call.to_bytes(4, "little") + body)


def reply_status(got):
    """The status of a peer reply, or None when there was none."""
    if len(got) < 20 or got[:8] != MAGIC:
        return None
    return int.from_bytes(got[8:12], "little")


def test_garbage_on_the_peer_port(cluster_factory):
    c = cluster_factory(3).start()
    c.new_ship("ann")
    w = Writers(c, ["ann"]).start()
    try:
        rnd = os.urandom(1 << 16)
        junk = [
            b"",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\0" * 4096,
            b"\xff" * 4096,
            rnd,
            rnd[:7],
            # A plausible header claiming a huge message.
            (1).to_bytes(8, "little") + (1 << 62).to_bytes(8, "little") + rnd[:64],
            (0xFFFFFFFFFFFFFFFF).to_bytes(8, "little") * 64,
        ]
        refused = {h: h.cluster()["peers_refused"] for h in c.hosts}
        for h in c.hosts:
            for j in junk:
                assert reply_status(send_raw(h.peer, j)) is None
        ours = bytes.fromhex(c.leader().cluster()["cluster"])
        other = os.urandom(16)
        me = "127.0.0.1:1".encode()
        for h in c.hosts:
            # Plaintext requests, of this wire or the one before, get
            # nothing: a peer first proves the cluster secret.
            assert send_raw(h.peer, preamble(other, RAFT, me)) == b""
            assert send_raw(h.peer, preamble(other, PROBE)) == b""
            assert send_raw(h.peer, preamble(bytes(16), RAFT, me)) == b""
            assert send_raw(h.peer, preamble(ours, PROBE)) == b""
            assert send_raw(h.peer, b"berthp02" + preamble(ours, PROBE)[8:]) == b""
            # Oversized, unknown kinds, a header cut short then silence.
            assert reply_status(send_raw(h.peer, preamble(ours, PROBE, length=1 << 30))) is None
            send_raw(h.peer, preamble(ours, 77, b"x"))
            send_raw(h.peer, preamble(ours, JOIN, rnd[:100]))
            send_raw(h.peer, preamble(ours, RAFT, me)[:20], linger=0.5)
        # Many idle half-open connections must not stop the peer port.
        idle = [socket.create_connection(("127.0.0.1", c.hosts[0].peer_port)) for _ in range(50)]
        before = w.count()
        wait_for(lambda: w.count() >= before + 30, 30)
        for h in c.hosts:
            assert h.cluster()["peers_refused"] >= refused[h] + 5, h.peer
        for s in idle:
            s.close()
    finally:
        w.stop()
    assert not w.failed, w.failed[:10]
    for h in c.hosts:
        assert h.running(), "host died of garbage on its peer port:\n" + h.logs()
    c.wait_members(c.hosts)
    w.check()
    c.wait_caught_up()
    stores_agree(c)


def test_garbage_after_a_good_header(cluster_factory):
    # The cluster id is no secret (cluster ls shows it): a good header then
    # garbage where libraft's messages go, as a sender that is not a member
    # and as one that is, must not take a host down (without the cluster
    # secret it is refused at the handshake).
    c = cluster_factory(3).start()
    c.new_ship("ann")
    ours = bytes.fromhex(c.leader().cluster()["cluster"])
    rnd = os.urandom(4096)
    me = "127.0.0.1:1".encode()
    for h in c.hosts:
        for sender in (99, h.id):
            send_raw(h.peer, preamble(ours, RAFT, me, sender=sender) + rnd)
            # A libraft message header claiming a huge message.
            send_raw(h.peer, preamble(ours, RAFT, me, sender=sender)
                     + (1).to_bytes(8, "little") + (1 << 40).to_bytes(8, "little"))
    time.sleep(0.5)
    for h in c.hosts:
        assert h.running(), "host died of garbage after a good header:\n" + h.logs()
    c.wait_members(c.hosts)
    assert c.request("PUT", "/s/ann/k/x", b"1")[0] in (200, 201)
    c.wait_caught_up()
    stores_agree(c)


def test_peer_from_another_cluster(cluster_factory):
    a = cluster_factory(3).start()
    a.new_ship("ann")
    assert a.request("PUT", "/s/ann/k/x", b"a")[0] in (200, 201)
    ida = a.leader().cluster()["cluster"]
    # A follower of cluster A goes away, and cluster B starts with one host
    # on its peer address: A's hosts now reach a stranger where their
    # member was.
    gone = a.followers()[0]
    gone.stop()
    b = cluster_factory(2)
    stranger = b.hosts[0]
    stranger.peer_address, stranger.peer_port = gone.peer_address, gone.peer_port
    b.start()
    b.new_ship("bob")
    assert b.request("PUT", "/s/bob/k/x", b"b")[0] in (200, 201)
    idb = b.leader().cluster()["cluster"]
    assert ida != idb
    wa = Writers(a, ["ann"], targets=[h for h in a.hosts if h is not gone]).start()
    wb = Writers(b, ["bob"]).start()
    try:
        time.sleep(1)
        for w in (wa, wb):
            before = w.count()
            wait_for(lambda: w.count() >= before + 20, 30)
    finally:
        wa.stop()
        wb.stop()
    assert not wa.failed and not wb.failed, (wa.failed[:10], wb.failed[:10])
    # Neither cluster took the other's hosts in; each keeps its id, and the
    # refusals are counted.
    for h in a.running():
        v = h.cluster()
        assert v["cluster"] == ida
        assert sorted(x["id"] for x in v["hosts"]) == sorted(x.id for x in a.hosts)
    for h in b.running():
        v = h.cluster()
        assert v["cluster"] == idb
        assert sorted(x["id"] for x in v["hosts"]) == sorted(x.id for x in b.hosts)
    assert stranger.cluster()["peers_refused"] > 0
    assert b.request("GET", "/s/ann/k/x")[0] == 404
    assert {s["name"] for s in stranger.cli_json("ship", "ls")["ships"]} == {"bob"}
    wb.check()
    # The stranger's cluster leaves; A's member comes back and catches up.
    b.wait_caught_up()
    sb = stores_agree(b)
    assert set(sb) == {"bob"}
    gone.start()
    a.wait_members(a.hosts)
    wa.check()
    a.wait_caught_up()
    sa = stores_agree(a)
    assert set(sa) == {"ann"}


def test_host_on_another_hosts_data_dir(cluster_factory, tmpdir_path):
    c = cluster_factory(3).start()
    c.new_ship("ann")
    assert c.request("PUT", "/s/ann/k/x", b"1")[0] in (200, 201)
    victim = c.followers()[0]

    # A second process on a running host's data directory is refused at
    # once, and says why.
    log = os.path.join(tmpdir_path, "second.log")
    with open(log, "wb") as f:
        r = subprocess.run([BERTH, "serve", "--data", victim.data,
                            "--listen", "127.0.0.1:%d" % free_port(),
                            "--peer", "127.0.0.1:%d" % free_port()],
                           stdout=f, stderr=f, timeout=20)
    assert r.returncode != 0
    msg = open(log, "rb").read().decode(errors="replace")
    assert victim.data in msg or "in use" in msg or "lock" in msg, msg
    assert victim.running()

    # A copy of a member's data directory started under another peer
    # address, beside the member: the same raft id twice. The cluster must
    # not count it as the member (that could lose acknowledged writes); it
    # either refuses to start or is kept out.
    victim.stop()
    copy = os.path.join(tmpdir_path, "copy")
    shutil.copytree(victim.data, copy, ignore=shutil.ignore_patterns("admin.sock", "lock"))
    victim.start()
    twin = ClusterHost(copy)
    twin.peer_port = free_port()
    w = Writers(c, ["ann"], targets=c.hosts).start()
    try:
        try:
            twin.start()
        except RuntimeError:
            # Refused to start: fine, if it said why.
            assert "berth: " in twin.logs() and "peer" in twin.logs(), twin.logs()
        time.sleep(1)
        before = w.count()
        wait_for(lambda: w.count() >= before + 20, 30)
    finally:
        w.stop()
        if twin.running():
            twin.stop()
        elif twin.started:
            twin.proc = None
            twin.log.close()
        if twin.started:
            assert not wait_no_programs(twin.tag), "the copy's programs outlived it"
    assert not w.failed, w.failed[:10]
    view = c.leader().cluster()
    assert sorted(x["peer"] for x in view["hosts"]) == sorted(h.peer for h in c.hosts), \
        "the copy changed the membership: %s" % view
    # Leaders change while the copy is gone: acknowledged writes survive.
    old = c.leader()
    old.kill9()
    c.leader(exclude=[old])
    old.start()
    c.wait_members(c.hosts)
    w.check()
    c.wait_caught_up()
    stores_agree(c)
