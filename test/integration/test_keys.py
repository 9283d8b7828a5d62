"""The master key: made at a host's first start in DATA/master.key (0600),
beside the data unless the operator gives a secret, which seals it; a
sealed key opens only with its secret, and the host says plainly how its
key is kept, at start and in its stats."""
import os
import subprocess

import pytest

from conftest import BERTH, KV


def key_path(h):
    return os.path.join(h.data, "master.key")


def test_zero_config_key_beside_the_data(host_factory):
    h = host_factory().start()
    st = os.stat(key_path(h))
    assert st.st_mode & 0o777 == 0o600
    assert st.st_size == 72 + 32
    assert h.cli_json("stats")["master_key"] == "beside the data"
    assert "master key:       beside the data" in h.cli("stats").stdout
    assert "the master key sits beside the data" in h.logs()


def test_passphrase_seals_the_key(host_factory, tmp_path):
    h = host_factory().start()
    h.new_ship(KV, "a")
    assert h.http("PUT", "/s/a/k/x", b"kept")[0] == 201
    plain = open(key_path(h), "rb").read()[72:]
    assert h.stop() == 0

    h.env = dict(os.environ, BERTH_PASSPHRASE="a long passphrase")
    h.start()
    assert h.cli_json("stats")["master_key"] == "sealed under a passphrase"
    with open("/proc/%d/environ" % h.proc.pid, "rb") as f:
        assert b"a long passphrase" not in f.read()
    assert h.http("GET", "/s/a/k/x")[2] == b"kept"
    sealed = open(key_path(h), "rb").read()
    assert len(sealed) == 72 + 32 + 16
    assert plain not in sealed
    assert h.stop() == 0

    # Without its passphrase, or with another, the host does not start,
    # and says why.
    base = [BERTH, "serve", "--data", h.data, "--listen", "127.0.0.1:0"]
    env = {k: v for k, v in os.environ.items() if k != "BERTH_PASSPHRASE"}
    out = subprocess.run(base, env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0
    assert "sealed under a passphrase" in out.stderr
    assert "BERTH_PASSPHRASE" in out.stderr
    out = subprocess.run(base, env=dict(env, BERTH_PASSPHRASE="another"),
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "does not open with this passphrase" in out.stderr

    # The same passphrase from a file (its line's end is not part of it).
    pf = tmp_path / "pass"
    pf.write_text("a long passphrase\n")
    h.env = env
    h.extra = ["--passphrase-file", str(pf)]
    h.start()
    assert h.http("GET", "/s/a/k/x")[2] == b"kept"


def test_key_file(host_factory, tmp_path):
    kf = tmp_path / "key"
    kf.write_text("ab" * 32 + "\n")
    h = host_factory(["--master-key-file", str(kf)]).start()
    assert h.cli_json("stats")["master_key"] == "sealed under a key file"
    assert h.stop() == 0
    base = [BERTH, "serve", "--data", h.data, "--listen", "127.0.0.1:0"]
    env = {k: v for k, v in os.environ.items() if k != "BERTH_PASSPHRASE"}
    out = subprocess.run(base, env=env, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode != 0 and "--master-key-file" in out.stderr
    bad = tmp_path / "bad"
    bad.write_text("not a key\n")
    out = subprocess.run(base + ["--master-key-file", str(bad)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "64 hex digits" in out.stderr
    out = subprocess.run(base + ["--master-key-file", str(kf),
                                 "--passphrase-file", str(kf)], env=env,
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "not both" in out.stderr
