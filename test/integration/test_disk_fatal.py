"""A log write error ends the host (crash-only) with a message; a restart,
once there is room again, recovers every acknowledged write."""
import os
import subprocess
import tempfile

import pytest

from conftest import Host, KV


@pytest.fixture
def tiny_disk():
    d = tempfile.mkdtemp(prefix="berth-fatal-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", d],
                       capture_output=True)
    if r.returncode != 0:
        os.rmdir(d)
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield d
    subprocess.run(["umount", "-l", d])
    os.rmdir(d)


def test_log_write_error_is_fatal_and_recoverable(tiny_disk):
    # No reserve: the log itself meets the full disk.
    h = Host(os.path.join(tiny_disk, "data"), ["--reserve-disk", "0"])
    h.start()
    h.new_ship(KV, "big")
    value = b"y" * (1 << 20)
    acked, seen = [], []
    for i in range(200):
        try:
            status, _, body = h.http("PUT", "/s/big/k/v%d" % i, value, timeout=10)
        except OSError:
            break
        seen.append((status, body[:120]))
        if status in (200, 201):
            acked.append(i)
        if h.proc.poll() is not None:
            break
    try:
        h.proc.wait(40)
    except subprocess.TimeoutExpired:
        h.proc.kill()
        h.proc.wait()
        raise AssertionError("host did not exit; answers %s\n%s" % (seen[-5:], h.logs()))
    assert h.proc.returncode == 70, h.logs()
    assert "exiting so that a restart recovers" in h.logs()
    h.proc = None
    h.log.close()
    assert len(acked) > 0
    # Make room, start again: nothing acknowledged is missing.
    subprocess.run(["mount", "-o", "remount,size=512m", tiny_disk], check=True)
    h.start()
    for i in acked:
        assert h.http("GET", "/s/big/k/v%d" % i)[0] == 200, i
    assert h.stop() == 0
