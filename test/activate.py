"""Run a command as systemd runs a socket-activated service: the socket is
descriptor 3, named by LISTEN_FDNAMES, and LISTEN_PID is the process that
execs the command.

usage: python3 activate.py PORT COMMAND [ARG...]
    binds 127.0.0.1:PORT and listens, as berth.socket does
usage: python3 activate.py --fd FD COMMAND [ARG...]
    passes descriptor FD, a socket listening already (a test that holds it
    across restarts)
"""
import os
import socket
import sys


def main():
    args = sys.argv[1:]
    if args[0] == "--fd":
        fd = int(args[1])
        args = args[2:]
    else:
        s = socket.socket()
        s.bind(("127.0.0.1", int(args[0])))
        s.listen(4096)
        fd = s.detach()
        args = args[1:]
    if fd != 3:
        os.dup2(fd, 3)
        os.close(fd)
    os.set_inheritable(3, True)
    os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS="1",
                      LISTEN_FDNAMES="front")
    os.execv(args[0], args)


main()
