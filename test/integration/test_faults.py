"""Bad input gets a clear error, loses nothing, and the host stays up:
malformed HTTP, oversized bodies, hostile programs, bad CLI input."""
import json
import os
import socket
import subprocess

import pytest

from conftest import BERTH, KV, MISBEHAVE


def raw(host, data, read=65536):
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as s:
        s.sendall(data)
        chunks = []
        while True:
            try:
                c = s.recv(read)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
        return b"".join(chunks)


def test_malformed_http_is_400(host):
    out = raw(host, b"GARBAGE \x00\x01 nonsense\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    assert host.http("GET", "/healthz")[0] == 200


def test_body_over_limit_is_413(host_factory):
    h = host_factory(["--max-body", "1024"]).start()
    h.new_ship(KV, "big")
    status, _, _ = h.http("PUT", "/s/big/k/x", b"x" * 2048)
    assert status == 413
    assert h.http("PUT", "/s/big/k/x", b"x" * 512)[0] in (200, 201)
    assert h.cli_json("ship", "show", "big")["last_event"] == 1


@pytest.fixture
def bad(host_factory):
    assert os.path.exists(MISBEHAVE), "misbehave test program not built: " + MISBEHAVE
    h = host_factory(["--event-timeout", "500"]).start()
    h.new_ship(MISBEHAVE, "bad")
    h.new_ship(KV, "good")
    h.http("PUT", "/s/good/k/a", b"1")
    assert h.http("POST", "/s/bad/count")[0] == 200
    return h


def check_recovered(h):
    # The crashed ship restarts from its last committed state; the other
    # ship never noticed.
    status, _, body = h.http("GET", "/s/bad/")
    assert status == 200 and body.strip() == b"1"
    assert h.http("GET", "/s/good/k/a")[2] == b"1"
    assert h.cli_json("ship", "show", "bad")["last_event"] == 1


@pytest.mark.parametrize("path,status", [
    ("/crash", 502), ("/exit", 502), ("/garbage", 502), ("/huge", 502),
    ("/hang", 504),
])
def test_hostile_program(bad, path, status):
    code, ctype, body = bad.http("POST", "/s/bad" + path)
    assert code == status
    err = json.loads(body)["error"]
    assert err["code"] in ("program_failed", "timeout")
    check_recovered(bad)


def test_rejected_event_is_422_and_not_logged(bad):
    code, _, body = bad.http("POST", "/s/bad/reject")
    assert code == 422
    assert "asked to reject" in json.loads(body)["error"]["message"]
    check_recovered(bad)


def test_bad_program_path_fails_wake(host, tmp_path):
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\nexit 3\n")
    prog.chmod(0o755)
    host.new_ship(str(prog), "dud")
    code, _, body = host.http("GET", "/s/dud/")
    assert code == 502
    assert json.loads(body)["error"]["code"] == "wake_failed"
    assert host.http("GET", "/healthz")[0] == 200


def test_bad_cli_input(host):
    r = subprocess.run([BERTH, "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown command" in r.stderr
    r = subprocess.run([BERTH, "ship", "new"], capture_output=True, text=True)
    assert r.returncode == 2 and "--program" in r.stderr
    r = subprocess.run([BERTH, "ship", "show"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([BERTH, "serve", "--idle-timeout", "soon"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([BERTH, "ship", "ls", "--data", "/nonexistent"], capture_output=True, text=True)
    assert r.returncode == 1 and "cannot connect" in r.stderr
    r = subprocess.run([BERTH, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "ship new" in r.stdout


def test_bad_admin_requests(host):
    sock = os.path.join(host.data, "admin.sock")
    def admin(method, path, body=None):
        r = subprocess.run(["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket", sock,
                            "-X", method, "http://berth" + path] + (["--data-binary", body] if body else []),
                           capture_output=True, text=True)
        text, code = r.stdout.rsplit("\n", 1)
        return int(code), text
    code, text = admin("POST", "/v1/ships", "{not json")
    assert code == 400 and json.loads(text)["error"]["code"] == "invalid"
    code, text = admin("POST", "/v1/ships", '{"program": 7}')
    assert code == 400
    code, _ = admin("PATCH", "/v1/ships")
    assert code == 405
    code, _ = admin("GET", "/v1/nothing")
    assert code == 404
    assert host.http("GET", "/healthz")[0] == 200


def test_one_host_per_data_dir(host):
    r = subprocess.run([BERTH, "serve", "--data", host.data, "--listen", "127.0.0.1:0"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "in use by another berth host" in r.stderr
    assert host.http("GET", "/healthz")[0] == 200


def test_wake_of_a_broken_program_is_an_error(host, tmp_path):
    prog = tmp_path / "prog"
    prog.write_text("#!/bin/sh\necho broken >&2\nexit 3\n")
    prog.chmod(0o755)
    host.new_ship(str(prog), "dud")
    r = host.cli("ship", "wake", "dud", check=False)
    assert r.returncode == 1
    assert "did not wake" in r.stderr and "status 3" in r.stderr
