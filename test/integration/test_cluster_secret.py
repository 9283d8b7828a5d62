"""Authenticated, encrypted peers: hosts of a cluster prove the cluster
secret to each other and seal everything they send; a host without the
secret cannot join; a joining host adopts the cluster's master key."""
import os
import socket
import stat
import struct
import threading

import pytest

from conftest import wait_for


def stats(h):
    status, v = h.admin("GET", "/v1/stats")
    assert status == 200, v
    return v


def test_a_host_without_the_secret_cannot_join(cluster_factory):
    c = cluster_factory(1).start()
    first = c.hosts[0]
    refused = first.cluster()["peers_refused"]
    h = c.add_host()
    h.join = first.peer
    # A wrong secret: refused at the handshake, and said so.
    h.env = dict(os.environ, BERTH_CLUSTER_SECRET="ab" * 32)
    with pytest.raises(RuntimeError) as e:
        h.start()
    assert "does not have the cluster's secret" in str(e.value), str(e.value)
    assert not os.path.exists(os.path.join(h.data, "cluster.key"))
    # None at all: the host says what it needs before it dials.
    h.env = dict(os.environ, BERTH_CLUSTER_SECRET="")
    with pytest.raises(RuntimeError) as e:
        h.start()
    assert "joining a cluster needs its secret" in str(e.value), str(e.value)
    # The member refused the stranger, counted it, and serves on.
    wait_for(lambda: first.cluster()["peers_refused"] > refused, 10)
    assert "without the cluster secret" in first.logs()
    assert [x["peer"] for x in first.cluster()["hosts"]] == [first.peer]
    # With the secret (from `berth cluster secret`, as conftest gives it),
    # the same data directory joins.
    h.env = None
    h.joined = False
    h.start()
    c.wait_members(c.hosts)
    c.new_ship("ann")
    assert c.request("PUT", "/s/ann/k/x", b"1", via=h)[0] in (200, 201)


def test_joined_hosts_share_the_master_key(cluster_factory):
    c = cluster_factory(3)
    # One joins with its master key sealed under a passphrase.
    c.hosts[2].env = dict(os.environ, BERTH_PASSPHRASE="joiner's passphrase")
    c.start()
    ids = {h: stats(h)["master_key_id"] for h in c.hosts}
    assert len(set(ids.values())) == 1, ids
    assert len(ids[c.hosts[0]]) == 32
    assert stats(c.hosts[2])["master_key"] == "sealed under a passphrase"
    secret = c.hosts[0].cli("cluster", "secret").stdout.strip()
    assert len(secret) == 64
    for h in c.hosts:
        assert h.cli("cluster", "secret").stdout.strip() == secret
        path = os.path.join(h.data, "cluster.key")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        raw = open(path, "rb").read()
        assert bytes.fromhex(secret) not in raw and secret.encode() not in raw
        # Neither the key nor the secret in the log.
        assert secret not in h.logs()
    # Restarts need nothing more: the secret is in cluster.key, the key in
    # master.key (under the same passphrase).
    for h in (c.hosts[1], c.hosts[2]):
        h.stop()
        h.start()
        assert stats(h)["master_key_id"] == ids[c.hosts[0]]
    c.wait_members(c.hosts)
    c.new_ship("ann")
    assert c.request("PUT", "/s/ann/k/x", b"1")[0] in (200, 201)


class Capture:
    """Every TCP payload to or from ports on the loopback interface, read
    with a packet socket (needs root)."""

    def __init__(self, ports):
        self.ports = set(ports)
        self.data = bytearray()
        self.stopping = False
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        # Every loopback packet of the machine comes here, the other tests'
        # too: a large buffer (SO_RCVBUFFORCE, as root) so that none of
        # this cluster's is dropped while the suite runs beside it.
        self.s.setsockopt(socket.SOL_SOCKET, 33, 64 << 20)
        self.s.bind(("lo", 0))
        self.s.settimeout(0.1)
        self.t = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.t.start()
        return self

    def run(self):
        while not self.stopping:
            try:
                pkt, addr = self.s.recvfrom(1 << 17)
            except socket.timeout:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # each loopback packet is seen twice
            if len(pkt) < 14 + 20 or pkt[12:14] != b"\x08\x00":
                continue
            ip = pkt[14:]
            if ip[9] != 6:
                continue
            ihl = (ip[0] & 0x0F) * 4
            total = struct.unpack("!H", ip[2:4])[0]
            tcp = ip[ihl:total]
            sport, dport = struct.unpack("!HH", tcp[:4])
            if sport in self.ports or dport in self.ports:
                self.data += tcp[(tcp[12] >> 4) * 4:]

    def stop(self):
        self.stopping = True
        self.t.join()
        self.s.close()
        return bytes(self.data)


def sealed_or_not(cluster_factory, plaintext):
    """Form a cluster, capture its peer traffic while a distinctive value
    is written and replicated; return the value and the capture."""
    c = cluster_factory(3)
    if plaintext:
        for h in c.hosts:
            h.env = dict(os.environ, BERTH_PEER_PLAINTEXT="1")
    c.start()
    c.new_ship("ann")
    cap = Capture(h.peer_port for h in c.hosts).start()
    value = ("distinctive-%s" % os.urandom(8).hex()).encode()
    try:
        # Through a follower, so that it crosses the peer port twice:
        # forwarded to the leader, then replicated.
        via = c.followers()[0]
        for key in ("x", "y", "z"):
            assert c.request("PUT", "/s/ann/k/" + key, value, via=via)[0] in (200, 201)
        c.wait_caught_up()
    finally:
        got = cap.stop()
    for h in c.hosts:
        h.stop()
    return value, got


@pytest.mark.skipif(os.geteuid() != 0, reason="a packet socket needs root")
def test_peer_traffic_is_sealed(cluster_factory):
    value, got = sealed_or_not(cluster_factory, plaintext=False)
    assert len(got) > 1000, "no peer traffic captured"
    assert value not in got
    assert b"/s/ann" not in got and b"ann" not in got
    # The control: the same run with encryption off shows the value, so
    # the capture would have seen it.
    value, got = sealed_or_not(cluster_factory, plaintext=True)
    assert value in got
