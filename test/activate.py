"""Run a command as systemd runs a socket-activated service: the sockets are
descriptors 3 on, named by LISTEN_FDNAMES, and LISTEN_PID is the process
that execs the command.

usage: python3 activate.py PORT COMMAND [ARG...]
    binds 127.0.0.1:PORT and listens, as berth.socket does, named front
usage: python3 activate.py --fd FD [--tls-fd FD] COMMAND [ARG...]
    passes descriptor FD (named front), and a second one named tls when
    given, sockets listening already (a test that holds them across
    restarts); front is descriptor 3, tls 4
"""
import fcntl
import os
import socket
import sys


def main():
    args = sys.argv[1:]
    fds = []
    if args[0] == "--fd":
        fds.append(int(args[1]))
        args = args[2:]
        if args[0] == "--tls-fd":
            fds.append(int(args[1]))
            args = args[2:]
    else:
        s = socket.socket()
        s.bind(("127.0.0.1", int(args[0])))
        s.listen(4096)
        fds.append(s.detach())
        args = args[1:]
    # Copies first, above every descriptor in play, so that moving one
    # into place cannot close another.
    copies = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
    for i, fd in enumerate(copies):
        os.dup2(fd, 3 + i)
        os.set_inheritable(3 + i, True)
        os.close(fd)
    for fd in fds:
        if fd >= 3 + len(fds):
            os.close(fd)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)),
                      LISTEN_FDNAMES=":".join(["front", "tls"][:len(fds)]))
    os.execv(args[0], args)


main()
