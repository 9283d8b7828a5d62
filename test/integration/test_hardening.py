"""Programs start hardened: a seccomp filter, no_new_privs, rlimits, no
capabilities, a private working directory and no network unless their
ship may use it (docs/security.md, "Programs"), on real hosts."""
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile

from conftest import BERTH, KV, ROOT, wait_for

PROBER = os.path.join(ROOT, "test", "programs", "prober.py")
SPAWNER = os.path.join(ROOT, "test", "programs", "spawner.py")


class Listener:
    """A TCP listener on loopback, in the test's (the host's) network,
    counting the connections it accepts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def accepted(self):
        n = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except BlockingIOError:
                return n
            c.close()
            n += 1

    def close(self):
        self.sock.close()


def get_json(host, path):
    status, _, body = host.http("GET", path)
    assert status == 200, body
    return json.loads(body)


def probe(host, ship, port):
    return get_json(host, "/s/%s/probe/%d" % (ship, port))


def test_denied_without_network(host):
    lis = Listener()
    try:
        host.new_ship(PROBER, "p")
        r = probe(host, "p", lis.port)
        # Each denied system call answers EPERM, and the program goes on.
        assert r["ptrace"] == "EPERM", r
        assert r["mount"] == "EPERM", r
        assert r["unshare"] == "EPERM", r
        assert r["clone_newuser"] == "EPERM", r
        assert r["no_new_privs"] == "1" and r["seccomp"] == "2", r
        assert int(r["cap_bnd"], 16) == 0 and int(r["cap_eff"], 16) == 0, r
        # No core files, and the limit cannot be raised back.
        assert r["core"] == [0, 0], r
        assert r["raise_core"] == "EPERM", r
        assert r["nofile"] == [1024, 1024], r
        assert r["fsize"] == [1 << 30, 1 << 30], r
        # The empty namespace has no route to the test's listener.
        assert r["connect"] in ("ENETUNREACH", "EHOSTUNREACH", "ECONNREFUSED"), r
        assert lis.accepted() == 0
        # The program still answers: it was denied, not killed.
        assert probe(host, "p", lis.port)["ptrace"] == "EPERM"
        assert host.cli_json("ship", "show", "p")["network"] is False
        hard = host.cli_json("stats")["hardening"]
        assert hard["network"] == "none", hard
        assert hard["parts"] == ["seccomp", "rlimits", "dir", "netns", "caps"]
        assert hard["uid"] is None
    finally:
        lis.close()


def test_network_ship_reaches_the_listener(host):
    lis = Listener()
    try:
        host.new_ship(PROBER, "net", "--network")
        assert host.cli_json("ship", "show", "net")["network"] is True
        r = probe(host, "net", lis.port)
        assert r["connect"] == "ok", r
        assert wait_for(lambda: lis.accepted() >= 1 or None)
        # The rest of the sandbox holds for it too.
        assert r["ptrace"] == "EPERM" and r["seccomp"] == "2", r
        # The flag survives a sleep and a restart.
        host.cli("ship", "sleep", "net")
        host.stop()
        host.start()
        assert probe(host, "net", lis.port)["connect"] == "ok"
    finally:
        lis.close()


def test_network_is_granted_only_by_a_parent_that_has_it(host):
    host.new_ship(SPAWNER, "online", "--network")
    host.new_ship(SPAWNER, "offline")

    def child(parent, flags):
        status, _, body = host.http("POST", "/s/%s/spawn" % parent,
                                    json.dumps({"sandbox": [flags, 0, 0, 0]}).encode())
        assert status == 202, body
        tag = str(json.loads(body)["tag"])
        c = wait_for(lambda: json.loads(host.http(
            "GET", "/s/%s/children" % parent)[2]).get(tag))
        assert c["what"] == 1, c
        return host.cli_json("ship", "show", c["id"])["network"]

    # Through SPAWN: flag 8 is given only where the parent has it, and
    # only when asked for.
    assert child("online", 8) is True
    assert child("online", 0) is False
    assert child("offline", 8) is False
    # Through the admin API, a child made by the operator likewise.
    kid = host.new_ship(KV, None, "--parent", "offline", "--network")
    assert host.cli_json("ship", "show", kid)["network"] is False
    kid = host.new_ship(KV, None, "--parent", "online", "--network")
    assert host.cli_json("ship", "show", kid)["network"] is True
    kid = host.new_ship(KV, None, "--parent", "online")
    assert host.cli_json("ship", "show", kid)["network"] is False


def test_kv_works_unchanged(host):
    host.new_ship(KV, "kv")
    assert host.http("PUT", "/s/kv/k/a", b"1")[0] in (200, 201)
    assert host.http("GET", "/s/kv/k/a")[2] == b"1"
    host.cli("ship", "sleep", "kv")
    assert host.http("GET", "/s/kv/k/a")[2] == b"1"
    assert host.cli_json("ship", "show", "kv")["state"] == "awake"


def test_cwd_is_private_empty_and_removed(host):
    host.new_ship(PROBER, "a")
    host.new_ship(PROBER, "b")
    ra = get_json(host, "/s/a/status")
    rb = get_json(host, "/s/b/status")
    base = os.path.join(os.path.realpath(host.data), "programs")
    assert os.path.dirname(ra["cwd"]) == base, ra
    assert os.path.dirname(rb["cwd"]) == base, rb
    assert ra["cwd"] != rb["cwd"]
    mode = os.stat(ra["cwd"]).st_mode
    assert stat.S_IMODE(mode) == 0o700
    assert host.http("POST", "/s/a/write/secret", b"mine")[0] == 200
    assert probe(host, "a", 1)["cwd_list"] == ["secret"]
    # The other ship sees an empty directory of its own.
    assert probe(host, "b", 1)["cwd_list"] == []
    # The directory goes with the run, files and all; the next run has a
    # fresh, empty one.
    host.cli("ship", "sleep", "a")
    wait_for(lambda: not os.path.exists(ra["cwd"]) or None)
    again = probe(host, "a", 1)
    assert again["cwd_list"] == [] and again["cwd"] != ra["cwd"]
    # What is removed is the program's: a link it left is removed, not
    # followed.
    outside = os.path.join(host.data + "-outside")
    os.mkdir(outside)
    with open(os.path.join(outside, "keep"), "w") as f:
        f.write("x")
    rc = get_json(host, "/s/a/status")
    assert host.http("POST", "/s/a/link/l", outside.encode())[0] == 200
    assert host.http("POST", "/s/a/write/f", b"x")[0] == 200
    host.cli("ship", "sleep", "a")
    wait_for(lambda: not os.path.exists(os.path.join(rc["cwd"], "l")) or None)
    assert os.listdir(outside) == ["keep"]
    # What a host killed with -9 left is removed by its next start; the
    # directories it makes ahead are empty.
    assert host.http("POST", "/s/a/write/left", b"x")[0] == 200
    left = probe(host, "a", 1)["cwd"]
    host.kill9()
    assert os.listdir(left) == ["left"]
    host.start()
    assert not os.path.exists(os.path.join(left, "left"))
    for d in os.listdir(base):
        assert os.listdir(os.path.join(base, d)) == [], d
    # A directory found empty is made ready again, its mode as made.
    rb2 = get_json(host, "/s/b/status")
    os.chmod(rb2["cwd"], 0o755)
    host.cli("ship", "sleep", "b")
    wait_for(lambda: stat.S_IMODE(os.stat(rb2["cwd"]).st_mode) == 0o700 or None)


def public_prober():
    """A copy of the prober in a directory anyone may enter, so that a
    program user can read it: (the directory, the program)."""
    d = tempfile.mkdtemp(prefix="berth-prober-")
    os.chmod(d, 0o755)
    prog = os.path.join(d, "prober.py")
    shutil.copy(PROBER, prog)
    os.chmod(prog, 0o755)
    return d, prog


def test_program_user(host_factory):
    d, prog = public_prober()
    try:
        host = host_factory(["--program-user", "nobody"]).start()
        host.new_ship(prog, "u")
        r = probe(host, "u", 1)
        nobody = int(subprocess.check_output(["id", "-u", "nobody"]))
        group = int(subprocess.check_output(["id", "-g", "nobody"]))
        assert r["uid"] == nobody and r["gid"] == group, r
        assert r["groups"] in ([], [group]), r
        assert os.stat(r["cwd"]).st_uid == nobody
        assert r["ptrace"] == "EPERM" and r["seccomp"] == "2", r
        assert host.cli_json("stats")["hardening"]["uid"] == nobody
    finally:
        shutil.rmtree(d)


def test_program_uids(host_factory):
    # Each running program a uid of its own: two uids, three ships.
    d, prog = public_prober()
    try:
        host = host_factory(["--program-uids", "300000-300001"]).start()
        assert host.cli_json("stats")["hardening"]["uids"] == "300000-300001"
        for s in ("a", "b", "c"):
            host.new_ship(prog, s)
        ra, rb = probe(host, "a", 1), probe(host, "b", 1)
        assert {ra["uid"], rb["uid"]} == {300000, 300001}, (ra, rb)
        for r in (ra, rb):
            assert r["gid"] == r["uid"] and r["groups"] in ([], [r["gid"]]), r
            assert os.stat(r["cwd"]).st_uid == r["uid"]
        # One cannot signal the other; each can signal itself.
        assert get_json(host, "/s/a/signal/%d" % rb["pid"])["signal"] == "EPERM"
        assert get_json(host, "/s/a/signal/%d" % ra["pid"])["signal"] == "ok"
        # Both uids held: a third program does not start, and says why.
        status, _, body = host.http("GET", "/s/c/probe/1")
        assert status == 502 and b"wake_failed" in body, (status, body)
        assert b"every uid of --program-uids" in body, body
        # Once one sleeps, its uid is free again, its directory no longer
        # the uid's.
        host.cli("ship", "sleep", "a")
        wait_for(lambda: os.stat(ra["cwd"]).st_uid == 0 or None)
        rc = probe(host, "c", 1)
        assert rc["uid"] == ra["uid"], rc
    finally:
        shutil.rmtree(d)
    host.stop()
    # A bad range, and a range with a user, keep the host from starting.
    for args, says in ((["--program-uids", "9-3"], "want FIRST-LAST"),
                       (["--program-uids", "300000-300001", "--program-user",
                         "nobody"], "one or the other")):
        r = subprocess.run([BERTH, "serve", "--data", host.data, "--listen",
                            "127.0.0.1:0"] + args,
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1 and says in r.stderr, r.stderr


def test_no_harden_and_a_bad_user(host_factory):
    host = host_factory(["--no-harden"]).start()
    host.new_ship(PROBER, "plain")
    r = get_json(host, "/s/plain/status")
    assert r["seccomp"] == "0" and r["no_new_privs"] == "0", r
    assert not r["cwd"].startswith(os.path.realpath(host.data)), r
    assert host.cli_json("stats")["hardening"]["parts"] == []
    assert "hardening:        none; network host" in host.cli("stats").stdout
    host.stop()
    # An unknown user: the host says so and does not start.
    r = subprocess.run([BERTH, "serve", "--data", host.data, "--listen",
                        "127.0.0.1:0", "--program-user", "no-such-user-x"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert "no user named no-such-user-x" in r.stderr


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        kids.append(int(d))
            except OSError:
                pass
    return kids


def test_hardened_without_the_launcher(host):
    """The launcher gives its programs the filter it loaded on itself;
    once it is gone, the host starts programs hardened all the same."""
    with open("/proc/%d/cmdline" % host.proc.pid, "rb") as f:
        cmd = f.read()

    def launcher():
        for k in children_of(host.proc.pid):
            try:
                with open("/proc/%d/cmdline" % k, "rb") as f:
                    if f.read() == cmd:
                        return k
            except OSError:
                pass
        return None

    lpid = launcher()
    assert lpid is not None
    with open("/proc/%d/status" % lpid) as f:
        assert "Seccomp:\t2" in f.read()
    os.kill(lpid, 9)
    wait_for(lambda: launcher() is None or None)
    lis = Listener()
    try:
        host.new_ship(PROBER, "late")
        r = probe(host, "late", lis.port)
        assert r["ptrace"] == "EPERM" and r["unshare"] == "EPERM", r
        assert r["seccomp"] == "2" and r["no_new_privs"] == "1", r
        assert int(r["cap_bnd"], 16) == 0, r
        assert r["connect"] != "ok" and lis.accepted() == 0, r
        assert r["cwd_list"] == [] and "/programs/run." in r["cwd"], r
        assert "launcher" in host.logs()
    finally:
        lis.close()


def test_a_host_without_namespaces_says_so(host_factory, tmpdir_path):
    """A host that is not root cannot make a network namespace: it starts,
    says why in its log and in stats, and programs keep its network; the
    rest of the sandbox holds."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    # A directory nobody may enter, with the program and the data.
    os.chmod(tmpdir_path, 0o711)
    d = os.path.join(tmpdir_path, "nobody")
    os.mkdir(d)
    os.chown(d, nobody.pw_uid, nobody.pw_gid)
    prog = os.path.join(d, "prober.py")
    shutil.copy(PROBER, prog)
    os.chmod(prog, 0o755)
    host = host_factory(name=os.path.join("nobody", "data"))
    host.log_path = os.path.join(tmpdir_path, "nobody.log")

    def drop():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    host.preexec_fn = drop
    host.start()
    hard = host.cli_json("stats")["hardening"]
    assert hard["network"].startswith("host (no network namespace"), hard
    assert "netns" in hard["parts"]
    assert "no network namespace" in host.logs()
    # berth stats says so too, as README has it.
    text = host.cli("stats").stdout
    assert re.search(r"^hardening: +[a-z].*; network host \(no network namespace", text,
                     re.M), text
    lis = Listener()
    try:
        host.new_ship(prog, "n")
        r = probe(host, "n", lis.port)
        assert r["connect"] == "ok", r
        assert r["uid"] == nobody.pw_uid
        assert r["ptrace"] == "EPERM" and r["seccomp"] == "2", r
        assert r["core"] == [0, 0] and r["cwd_list"] == [], r
    finally:
        lis.close()
    host.stop()
    # Nor may it run programs as another user.
    r = subprocess.run([BERTH, "serve", "--data", host.data, "--listen",
                        "127.0.0.1:0", "--program-user", "root"],
                       capture_output=True, text=True, timeout=30,
                       preexec_fn=drop)
    assert r.returncode == 1
    assert "only when the host runs as root" in r.stderr, r.stderr
