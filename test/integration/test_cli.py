"""The berth CLI as a user meets it, against real hosts: help for every
command, usage errors (exit 2, nothing on stdout), failures (exit 1, nothing
on stdout), --flag=value and client options before the command, programs
checked at creation and given arguments and environment, --count summaries,
stdin payloads, --state, the freeze timeout 0 that means never, the
admin address a TCP host leaves in its data directory. README's "Using it"
commands run as written, and make run's script stops on Ctrl-C with
success."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import (BERTH, KV, MISBEHAVE, ROOT, data_tag, free_port, tagged_processes,
                      wait_for, wait_no_programs)


def run(*args, cwd=None, stdin=None, env=None):
    """Run the CLI as a user would: no --data added."""
    return subprocess.run([BERTH] + list(args), capture_output=True, text=True,
                          timeout=60, cwd=cwd, input=stdin, env=env)


def usage_error(r, message):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert message in r.stderr, r.stderr


def failure(r, message):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert message in r.stderr, r.stderr


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=30)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def admin(host, method, path, body=None):
    """One admin API call over the host's socket: (status, decoded JSON)."""
    c = UnixHTTPConnection(os.path.join(host.data, "admin.sock"))
    try:
        c.request(method, path, body=json.dumps(body) if body is not None else None)
        r = c.getresponse()
        return r.status, json.loads(r.read())
    finally:
        c.close()


def lines(host, path):
    status, _, body = host.http("GET", path)
    assert status == 200, (status, body)
    return body.decode().splitlines()


# --- Help and usage. ---

COMMANDS = {
    "serve": ["--data", "--listen", "--admin", "--freeze-timeout", "--idle-timeout",
              "--max-awake-mb", "--max-awake", "--event-timeout", "--snapshot-every",
              "--max-body", "--max-queue", "--reserve-disk", "--heartbeat",
              "--election-timeout"],
    "ship new": ["--program", "--name", "--count", "--arg", "--env", "--idle-timeout",
                 "--freeze-timeout", "--ids", "--parent", "--lifetime",
                 "--lifetime-ms"],
    "ship ls": ["--limit", "--state"],
    "ship show": [],
    "ship tree": [],
    "ship send": [],
    "ship sleep": [],
    "ship wake": [],
    "ship rm": [],
    "stats": [],
    "token new": ["--scope", "--name"],
    "token ls": [],
    "token revoke": [],
    "version": ["--json"],
}
CLIENT = ["--data", "--admin", "--json", "--token"]


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_for_every_command(command):
    words = command.split()
    for form in (words + ["--help"], words + ["-h"], ["help"] + words):
        r = run(*form)
        assert r.returncode == 0 and r.stderr == "", (form, r.stderr)
        assert r.stdout.startswith("usage: berth %s" % command), r.stdout
        options = COMMANDS[command]
        if command not in ("serve", "version"):
            options = options + CLIENT
        for option in options:
            assert re.search(r"^  %s\b" % re.escape(option), r.stdout, re.M), (command, option)
    everything = run("--help")
    assert everything.returncode == 0
    assert re.search(r"^  %s\b" % re.escape(command), everything.stdout, re.M)


def test_ship_group_and_top_level_help():
    r = run("ship", "--help")
    assert r.returncode == 0
    for sub in ("new", "ls", "show", "send", "sleep", "wake", "rm"):
        assert "ship %s" % sub in r.stdout
    usage_error(run("ship"), "needs a subcommand")
    usage_error(run("ship", "frob"), "unknown subcommand frob")
    usage_error(run(), "usage: berth")
    usage_error(run("frobnicate"), "unknown command frobnicate")
    assert run("help").stdout == run("--help").stdout
    # help's own help, in every form, is the list of commands.
    for form in (["help", "--help"], ["help", "-h"], ["help", "help"]):
        r = run(*form)
        assert r.returncode == 0 and r.stderr == "", (form, r.stderr)
        assert r.stdout == run("--help").stdout, form
    assert run("help", "ship").stdout == run("ship", "--help").stdout
    usage_error(run("help", "ship", "frob"), "unknown subcommand frob")
    usage_error(run("help", "frobnicate"), "unknown command frobnicate")


def test_usage_errors_are_clear_and_exit_2():
    usage_error(run("ship", "ls", "--limit", "abc"),
                "--limit needs a number from 1 to 1000000, not abc")
    usage_error(run("ship", "ls", "--limit=0"), "--limit needs a number from 1")
    usage_error(run("ship", "ls", "--bogus"), "unknown option --bogus")
    usage_error(run("ship", "ls", "--bogus=1"), "unknown option --bogus")
    usage_error(run("ship", "ls", "--limit"), "--limit needs a value")
    usage_error(run("ship", "new"), "needs --program PATH")
    usage_error(run("ship", "new", "--program"), "--program needs a value")
    usage_error(run("ship", "new", "--program", KV, "--count", "0"),
                "--count needs a number from 1 to 1000000, not 0")
    usage_error(run("ship", "new", "--program", KV, "--freeze-timeout", "soon"),
                "--freeze-timeout needs a number of milliseconds")
    usage_error(run("ship", "new", "--program", KV, "--env", "NOEQUALS"),
                "--env needs KEY=VALUE, not NOEQUALS")
    usage_error(run("ship", "new", "--program", KV, "--json=yes"), "--json takes no value")
    usage_error(run("ship", "show"), "needs SHIP")
    usage_error(run("ship", "show", "a", "b"), "unexpected argument b")
    usage_error(run("ship", "send", "a"), "needs SHIP DATA")
    usage_error(run("ship", "show", "Bad/Name"), "not a ship id or name")
    usage_error(run("stats", "extra"), "unexpected argument extra")
    usage_error(run("--bogus", "ship", "ls"), "unknown option --bogus")
    usage_error(run("--admin", "nonsense", "ship", "ls"), "--admin needs HOST:PORT or unix:PATH")
    usage_error(run("--data"), "berth: --data needs a value")
    usage_error(run("--json", "--token"), "berth: --token needs a value")
    usage_error(run("--data", "--data"), "usage: berth")
    usage_error(run("ship", "ls", "--admin=127.0.0.1:"), "--admin needs HOST:PORT")
    usage_error(run("serve", "--idle-timeout", "soon"), "--idle-timeout needs a number")
    usage_error(run("serve", "--json"), "unknown option --json")
    usage_error(run("serve", "--heartbeat", "300"),
                "--election-timeout (1000 ms) must be at least 5 heartbeats")
    usage_error(run("serve", "--election-timeout", "5"), "--election-timeout")
    # Addresses and names are checked before the host opens anything (a
    # data directory that cannot be made would fail the start otherwise).
    def serve(*args):
        return run("serve", "--data", "/nonexistent/berth", *args)
    usage_error(serve("--listen", "nonsense"), "--listen needs HOST:PORT")
    usage_error(serve("--listen", "127.0.0.1:99999"), "not 127.0.0.1:99999")
    usage_error(serve("--admin", "example.org:9090"), "--admin needs HOST:PORT")
    usage_error(serve("--peer", "127.0.0.1"), "--peer needs IP:PORT")
    usage_error(serve("--peer", "127.0.0.1:7001", "--join", "x:1"), "--join needs IP:PORT")
    usage_error(serve("--domain", "bad domain"), "--domain needs a DNS name")
    usage_error(serve("--domain", "a..org"), "--domain needs a DNS name")


def test_names_are_checked_by_the_cli_and_the_host(host):
    usage_error(run("ship", "new", "--program", KV, "--name", "", "--data", host.data),
                "--name must not be empty")
    usage_error(run("ship", "new", "--program", KV, "--name=", "--data", host.data),
                "--name must not be empty")
    usage_error(run("ship", "new", "--program", KV, "--name", "-dash", "--data", host.data),
                "is not valid")
    usage_error(run("ship", "new", "--program", KV, "--name", "x" * 62, "--count", "10",
                    "--data", host.data), "is not valid")
    for name in ("", "Bad", "-dash", "x" * 64):
        status, body = admin(host, "POST", "/v1/ships", {"program": KV, "name": name})
        assert status == 400 and body["error"]["code"] == "invalid", (name, body)
    assert host.cli_json("stats")["ships"] == 0


def test_failures_print_nothing_on_stdout(host):
    failure(host.cli("ship", "show", "nosuch", check=False), "no ship named nosuch")
    failure(host.cli("ship", "show", "nosuch", "--json", check=False), "no ship named nosuch")
    failure(host.cli("ship", "new", "--program", "/nonexistent/prog", "--json", check=False),
            "does not exist")
    failure(run("ship", "ls", "--data", "/nonexistent"), "cannot connect")
    failure(run("stats", "--json", "--data", "/nonexistent"), "cannot connect")


def test_flag_equals_value_and_client_options_first(host):
    r = run("--data", host.data, "ship", "new", "--program=" + KV, "--name=eq")
    assert r.returncode == 0, r.stderr
    ship = json.loads(run("--data=" + host.data, "--json", "ship", "show", "eq").stdout)
    assert ship["name"] == "eq" and ship["id"] == r.stdout.strip()
    listed = json.loads(run("--json", "ship", "ls", "--data=" + host.data).stdout)
    assert [s["name"] for s in listed["ships"]] == ["eq"]
    between = json.loads(run("ship", "--data", host.data, "--json", "ls").stdout)
    assert between == listed
    # $BERTH_DATA as the last resort.
    env = dict(os.environ, BERTH_DATA=host.data)
    assert run("ship", "show", "eq", env=env).returncode == 0
    # The same options after the command, and a value given twice: the last wins.
    r = run("ship", "show", "eq", "--data", "/nonexistent", "--data", host.data)
    assert r.returncode == 0 and "name:            eq" in r.stdout


def test_version():
    r = run("version")
    assert r.returncode == 0 and r.stdout.startswith("berth ")
    v = json.loads(run("version", "--json").stdout)
    assert v["version"] == r.stdout.split()[1]
    assert json.loads(run("--json", "version").stdout) == v


# --- Programs: checked, resolved where the CLI runs, with args and env. ---

def test_relative_program_is_resolved_where_the_cli_runs(host_factory, tmp_path, monkeypatch):
    # The host runs in one directory, the CLI in another; both hold a
    # progs/prog, but only the CLI's answers.
    host_dir = tmp_path / "host-cwd"
    cli_dir = tmp_path / "cli-cwd"
    for d in (host_dir, cli_dir):
        (d / "progs").mkdir(parents=True)
    (host_dir / "progs" / "prog").write_text("#!/bin/sh\nexit 3\n")
    (host_dir / "progs" / "prog").chmod(0o755)
    shutil.copy(MISBEHAVE, cli_dir / "progs" / "prog")
    monkeypatch.chdir(host_dir)
    h = host_factory().start()
    r = run("ship", "new", "--program", "progs/prog", "--name", "rel", "--data", h.data,
            cwd=cli_dir)
    assert r.returncode == 0, r.stderr
    want = str(cli_dir / "progs" / "prog")
    assert h.cli_json("ship", "show", "rel")["program"] == want
    assert lines(h, "/s/rel/argv") == [want]
    r = run("ship", "new", "--program", "./progs/prog", "--name", "dot", "--data", h.data,
            cwd=cli_dir)
    assert r.returncode == 0, r.stderr
    assert h.cli_json("ship", "show", "dot")["program"] == want
    # The API itself takes absolute paths only.
    status, body = admin(h, "POST", "/v1/ships", {"program": "progs/prog"})
    assert status == 400
    assert "absolute path" in body["error"]["message"]


def test_directory_and_non_executable_programs_are_refused(host, tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("#!/bin/sh\n")
    plain.chmod(0o644)
    for path, problem in ((str(tmp_path), "is not a regular file (it is a directory)"),
                          (str(plain), "is not executable by the host's user"),
                          (str(tmp_path / "missing"), "does not exist")):
        status, body = admin(host, "POST", "/v1/ships", {"program": path})
        assert status == 400 and body["error"]["code"] == "invalid"
        assert path in body["error"]["message"] and problem in body["error"]["message"]
        failure(host.cli("ship", "new", "--program", path, check=False), problem)
    assert host.cli_json("stats")["ships"] == 0
    assert host.http("GET", "/healthz")[0] == 200


def test_args_and_env_reach_the_program_across_sleep_and_restart(host):
    r = host.cli("ship", "new", "--program", MISBEHAVE, "--name", "argy",
                 "--arg", "one two", "--arg=-x", "--arg", "", "--env", "GREETING=hi there",
                 "--env=EMPTY=", "--env", "EQ=a=b")
    argv = [MISBEHAVE, "one two", "-x", ""]
    env = ["GREETING=hi there", "EMPTY=", "EQ=a=b"]

    def check():
        assert lines(host, "/s/argy/argv") == argv
        got = lines(host, "/s/argy/env")
        ship_id = host.cli_json("ship", "show", "argy")["id"]
        # Nothing of the host's environment: only PATH, BERTH_SHIP,
        # BERTH_HOST (its data directory's tag and this run) and ours.
        assert got[:2] == ["PATH=/usr/local/bin:/usr/bin:/bin", "BERTH_SHIP=" + ship_id]
        assert got[2].startswith("BERTH_HOST=%s/" % host.tag)
        assert got[3:] == env

    check()
    shown = host.cli_json("ship", "show", "argy")
    assert shown["args"] == argv[1:]
    assert shown["env"] == {"GREETING": "hi there", "EMPTY": "", "EQ": "a=b"}
    text = host.cli("ship", "show", "argy").stdout
    assert "arg:             one two" in text and "env:             GREETING=hi there" in text
    assert host.cli_json("ship", "sleep", "argy")["state"] == "asleep"
    check()
    assert host.stop() == 0
    host.start()
    check()
    # A count-created batch: every ship gets the same.
    out = host.cli("ship", "new", "--program", MISBEHAVE, "--name", "many", "--count", "2",
                   "--arg", "z", "--env", "K=V").stdout
    assert out == "created 2 ships named many-1 ... many-2\n"
    for name in ("many-1", "many-2"):
        assert lines(host, "/s/%s/argv" % name) == [MISBEHAVE, "z"]
        assert lines(host, "/s/%s/env" % name)[3:] == ["K=V"]


def test_bad_args_and_env_are_refused(host):
    for spec, message in (({"args": "x"}, "args must be an array"),
                          ({"args": [1]}, "args[0] is not a string"),
                          ({"env": ["K=V"]}, "env must be an object"),
                          ({"env": {"1X": "v"}}, "cannot name a variable"),
                          ({"env": {"BERTH_SHIP": "v"}}, "cannot name a variable"),
                          ({"env": {"BERTH_HOST": "v"}}, "cannot name a variable"),
                          ({"env": {"K": 1}}, "not a string"),
                          ({"args": ["x" * 20000]}, "at most 16384 are allowed")):
        status, body = admin(host, "POST", "/v1/ships", dict(spec, program=KV))
        assert status == 400 and message in body["error"]["message"], (spec, body)
    failure(host.cli("ship", "new", "--program", KV, "--env", "A-B=1", check=False),
            "cannot name a variable")
    assert host.cli_json("stats")["ships"] == 0


# --- Creating, sending, listing. ---

def test_count_prints_a_summary_ids_or_json(host):
    assert host.cli("ship", "new", "--program", KV, "--name", "fl",
                    "--count", "3").stdout == "created 3 ships named fl-1 ... fl-3\n"
    assert host.cli("ship", "new", "--program", KV, "--name", "one",
                    "--count", "1").stdout == "created 1 ship named one-1\n"
    assert host.cli("ship", "new", "--program", KV,
                    "--count", "2").stdout == "created 2 unnamed ships\n"
    ids = host.cli("ship", "new", "--program", KV, "--name", "idd", "--count", "2",
                   "--ids").stdout.split()
    assert len(ids) == 2
    assert host.cli_json("ship", "show", "idd-2")["id"] == ids[1]
    v = host.cli_json("ship", "new", "--program", KV, "--name", "js", "--count", "2")
    assert v["created"] == 2 and len(v["ids"]) == 2
    assert host.cli_json("stats")["ships"] == 10


def test_send_reads_the_payload_from_stdin(host):
    host.new_ship(KV, "inky")
    r = run("ship", "send", "inky", "-", "--data", host.data, stdin="put colour blue")
    assert r.returncode == 0, r.stderr
    assert host.http("GET", "/s/inky/k/colour")[2] == b"blue"
    # A payload that starts with a dash is data after --.
    r = run("ship", "send", "inky", "--data", host.data, "--", "-not-an-option")
    assert r.returncode != 2, r.stderr


def test_ls_filters_by_state_and_pages(host_factory):
    host = host_factory(["--freeze-timeout", "0", "--idle-timeout", "600000"]).start()
    host.cli("ship", "new", "--program", KV, "--name", "st", "--count", "5")
    for name in ("st-2", "st-4", "st-5"):
        assert host.cli_json("ship", "wake", name)["state"] == "awake"
    text = host.cli("ship", "ls", "--state", "awake").stdout.splitlines()
    assert [l.split()[1] for l in text[1:]] == ["st-2", "st-4", "st-5"]
    asleep = host.cli_json("ship", "ls", "--state=asleep")["ships"]
    assert [s["name"] for s in asleep] == ["st-1", "st-3"]
    assert host.cli_json("ship", "ls", "--state", "frozen")["ships"] == []
    first = host.cli_json("ship", "ls", "--state", "awake", "--limit", "2")["ships"]
    assert [s["name"] for s in first] == ["st-2", "st-4"]
    # The API pages through the matches: one a page, then no more.
    names, after = [], None
    while True:
        status, page = admin(host, "GET", "/v1/ships?state=awake&limit=1" +
                             ("&after=" + after if after else ""))
        assert status == 200 and page["total"] == 3
        names += [s["name"] for s in page["ships"]]
        after = page["next"]
        if after is None:
            break
    assert names == ["st-2", "st-4", "st-5"]
    usage_error(host.cli("ship", "ls", "--state", "napping", check=False),
                "--state needs asleep, waking, awake, frozen or sleeping, not napping")
    status, body = admin(host, "GET", "/v1/ships?state=napping")
    assert status == 400 and "napping" in body["error"]["message"]


# --- The freeze timeout: omitted is the host's, 0 is never. ---

def test_freeze_timeout_zero_means_never_and_survives_restart(host_factory):
    h = host_factory(["--freeze-timeout", "100", "--idle-timeout", "600000"]).start()
    h.cli("ship", "new", "--program", KV, "--name", "thaws")
    h.cli("ship", "new", "--program", KV, "--name", "never", "--freeze-timeout", "0")
    assert h.cli_json("ship", "show", "thaws")["freeze_timeout_ms"] == 100
    assert h.cli_json("ship", "show", "never")["freeze_timeout_ms"] == 0
    assert "freeze timeout:  never" in h.cli("ship", "show", "never").stdout

    def check():
        h.http("GET", "/s/never/k")
        h.http("GET", "/s/thaws/k")
        # Touched at the same time: once one froze, the other would have.
        wait_for(lambda: h.cli_json("ship", "show", "thaws")["state"] == "frozen")
        assert h.cli_json("ship", "show", "never")["state"] == "awake"

    check()
    assert h.stop() == 0
    h.start()
    assert h.cli_json("ship", "show", "never")["freeze_timeout_ms"] == 0
    check()


# --- Finding a host whose admin API is on TCP. ---

def test_cli_finds_a_tcp_admin_from_the_data_dir(host_factory, tmp_path):
    port = free_port()
    h = host_factory(["--admin", "127.0.0.1:%d" % port]).start()
    addr = os.path.join(h.data, "admin.addr")
    with open(addr) as f:
        assert f.read() == "127.0.0.1:%d\n" % port
    # The socket is served as well, and needs no token.
    assert os.path.exists(os.path.join(h.data, "admin.sock"))
    r = run("--data", h.data, "ship", "new", "--program", KV, "--name", "tcp")
    assert r.returncode == 0, r.stderr
    assert json.loads(run("--data", h.data, "--json", "ship", "ls").stdout)["ships"][0]["name"] == "tcp"
    token = run("--data", h.data, "token", "new", "--scope", "read").stdout.strip()
    # A directory with admin.addr and no socket: the CLI goes to TCP, with
    # the token from the environment.
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(addr, other / "admin.addr")
    failure(run("--data", str(other), "ship", "ls"), "give a token with BERTH_TOKEN")
    r = run("--data", str(other), "--json", "ship", "ls",
            env=dict(os.environ, BERTH_TOKEN=token))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ships"][0]["name"] == "tcp"
    assert h.stop() == 0
    assert not os.path.exists(addr)
    # Killed, it leaves the file; the next host without TCP removes it.
    h.start()
    assert os.path.exists(addr)
    h.kill9()
    h.extra = []
    h.start()
    assert not os.path.exists(addr)
    assert run("--data", h.data, "ship", "show", "tcp").returncode == 0


# --- README's "Using it", run as written. ---

def readme_commands():
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    block = re.search(r"## Using it\n.*?```sh\n(.*?)```", text, re.S).group(1)
    return [l for l in block.splitlines() if l.strip() and not l.startswith("#")]


def test_readme_using_it_runs_as_written(host_factory, tmp_path):
    commands = readme_commands()
    assert commands[0].startswith("berth serve ")
    port = free_port()
    data = str(tmp_path / "data")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(BERTH, bindir / "berth")
    build = tmp_path / "build" / "programs"
    build.mkdir(parents=True)
    os.symlink(KV, build / "kv")
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))

    def fill(cmd):
        cmd = cmd.replace("127.0.0.1:8080", "127.0.0.1:%d" % port).replace("DIR", data)
        # A smaller fleet: the same command, a test's worth of ships.
        return cmd.replace("--count 100000", "--count 100")

    serve = fill(commands[0]).split("#")[0].split()
    assert serve[:2] == ["berth", "serve"]
    h = host_factory(serve[2:])
    h.data, h.port = data, port
    h.start()
    script = "set -e\n" + "\n".join(fill(c) for c in commands[1:]) + "\n"
    r = subprocess.run(["sh", "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "blue" in r.stdout


# --- make run's script. ---

def test_run_demo_stops_on_ctrl_c_with_success(tmp_path):
    """scripts/run-demo.sh, what make run starts: a host with demo ships,
    and Ctrl-C (SIGINT to its process group, as a terminal sends it) stops
    it with status 0 and no program left."""
    port = free_port()
    data = str(tmp_path / "demo")
    p = subprocess.Popen(["sh", os.path.join(ROOT, "scripts", "run-demo.sh"),
                          os.path.dirname(BERTH), data, "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         start_new_session=True)
    try:
        out = ""
        while "Ctrl-C stops the host." not in out:
            line = p.stdout.readline()
            assert line, out
            out += line
        assert "curl http://127.0.0.1:%d/s/ann/k/greeting" % port in out
        tag = data_tag(data)
        assert tagged_processes(tag)  # ann woke for its greeting
        os.killpg(p.pid, signal.SIGINT)
        assert p.wait(30) == 0
        assert wait_no_programs(tag) == []
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
