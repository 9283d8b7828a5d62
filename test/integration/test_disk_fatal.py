"""A log write error ends the host (crash-only) with a message; a restart,
once there is room again, recovers every acknowledged write."""
import os
import subprocess

from conftest import Host, KV


def test_log_write_error_is_fatal_and_recoverable(tmpfs):
    # No reserve: the log itself meets the full disk.
    disk = tmpfs(64)
    h = Host(os.path.join(disk, "data"), ["--reserve-disk", "0"])
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
    subprocess.run(["mount", "-o", "remount,size=512m", disk], check=True)
    h.start()
    for i in acked:
        assert h.http("GET", "/s/big/k/v%d" % i)[0] == 200, i
    assert h.stop() == 0
