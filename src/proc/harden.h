/* Hardening: what a program gives up before its exec.
 *
 * A host runs strangers' programs, and a program talks to the world only
 * through its frames and effects. So, between the clone and the exec (see
 * spawn.h), each program's child process:
 *
 *   - sets rlimits: no core files (RLIMIT_CORE 0), at most 1,024 open
 *     descriptors (RLIMIT_NOFILE) and files of at most 1 GiB
 *     (RLIMIT_FSIZE);
 *   - joins one empty network namespace, made once when the host starts
 *     (a helper process unshares it and the host keeps a descriptor of
 *     it), unless its ship may use the network: it then has no interface
 *     but a loopback that is down. Making and tearing down a namespace per
 *     program would cost the kernel milliseconds on every wake;
 *   - changes to a private, empty working directory of its own,
 *     DATA/programs/run.N, for this run alone: once the program is gone
 *     it is removed, or, found empty, made ready for another run. A few
 *     dozen are made ahead on a worker thread, so that a wake waits for
 *     no mkdir;
 *   - drops every capability from its bounding set, so that a program run
 *     as root gets none at its exec, and takes the uid of its run (below)
 *     with no supplementary groups;
 *   - sets no_new_privs, and loads a seccomp filter that answers EPERM to
 *     the system calls below (ENOSYS to clone3, so that libc falls back to
 *     clone, whose namespace flags the filter can see), so that a program
 *     can fall back; a system call of another architecture kills it.
 *
 * The filter is built once in the host with libseccomp and exported as a
 * BPF program into static memory: the child shares the starter's memory
 * and must not allocate. Everything the child needs is computed here
 * beforehand; the child only makes system calls (harden_child).
 *
 * Denied: ptrace, process_vm_readv/writev, kcmp; mount, umount2,
 * pivot_root, chroot, the new mount API (open_tree, move_mount, fsopen,
 * fsconfig, fsmount, fspick, mount_setattr), open_by_handle_at,
 * name_to_handle_at; unshare, clone with a CLONE_NEW* flag, and setns
 * but into the empty network namespace by the host's own descriptor of
 * it (the launcher's children join it after the launcher has loaded the
 * filter; a program has no such descriptor and, without CAP_SYS_ADMIN,
 * could not use one);
 * kexec_load, kexec_file_load, reboot, init_module, finit_module,
 * delete_module, swapon, swapoff, acct, quotactl; bpf, perf_event_open,
 * userfaultfd, keyctl, add_key, request_key; settimeofday,
 * clock_settime, clock_adjtime, adjtimex, sethostname, setdomainname,
 * syslog, iopl, ioperm, vhangup, lookup_dcookie; io_uring_setup,
 * io_uring_enter, io_uring_register.
 *
 * A run's uid: the host's own by default; with --program-user, that
 * user's for every program; with --program-uids FIRST-LAST, one of that
 * range that no other running program holds, with the group of the same
 * number, taken at the start and given back once the program is gone. So
 * two programs running at once never share a uid, and one cannot signal,
 * or read the files of, another. The range is taken round, so that a uid
 * given back is taken again last. The working directory of a run is its
 * uid's.
 *
 * Process-wide, set up once before the launcher starts (it inherits the
 * filter and the namespace's descriptor at its fork). */
#ifndef BERTH_PROC_HARDEN_H
#define BERTH_PROC_HARDEN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The parts of hardening, one bit each. */
#define HARDEN_SECCOMP 0x01 /* no_new_privs and the seccomp filter */
#define HARDEN_RLIMITS 0x02 /* core, nofile, fsize */
#define HARDEN_DIR 0x04     /* a private working directory */
#define HARDEN_NETNS 0x08   /* the empty network namespace */
#define HARDEN_CAPS 0x10    /* no capabilities at exec */
#define HARDEN_ALL 0x1f

/* The descriptors a program may hold at most (RLIMIT_NOFILE), and the
 * bytes of a file it may write at most (RLIMIT_FSIZE). */
#define HARDEN_NOFILE 1024
#define HARDEN_FSIZE (1024ull * 1024 * 1024)

struct harden_config {
    unsigned parts;       /* HARDEN_* bits; 0: none (serve --no-harden) */
    const char *data_dir; /* programs' directories go in DATA/programs */
    const char *user;     /* a user name or uid to run programs as; NULL:
                             the host's own */
    const char *uids;     /* "FIRST-LAST": a uid of its own for each running
                             program; NULL: none (not with user) */
};

/* The most uids a --program-uids range may hold. */
#define HARDEN_UIDS_MAX (1u << 20)

/* Set hardening up for this process: build and export the filter, look
 * the user up, make the empty network namespace, and empty
 * DATA/programs of what an earlier run left. Where namespaces are not
 * available (no CAP_SYS_ADMIN), programs keep the host's network and
 * harden_network() says why; that is not an error. Call it before the
 * first spawn and before launcher_start, from a process with one thread.
 * Returns 0, or BERTH_EINVAL (an unknown user, or a user other than the
 * host's when the host is not root; a bad range of uids, or one given
 * with a user or to a host that is not root) or BERTH_EIO (the filter could not
 * be built, the directory not made), with errmsg set (ERRMSG_SIZE bytes). */
int harden_setup(const struct harden_config *cfg, char *errmsg);

/* Return the HARDEN_* parts in force: 0 before harden_setup. */
unsigned harden_parts(void);

/* Return how programs' network is kept: "none" (the empty namespace),
 * "host" (hardening of the network is off), or "host (...)" saying why no
 * namespace could be made. The string is static. */
const char *harden_network(void);

/* Return the uid programs run as, or -1 for the host's own or for a uid
 * each from a range (then harden_uids says which). */
long harden_uid(void);

/* Return the number of uids of the --program-uids range, 0 for none, with
 * *first set to its first. */
unsigned harden_uids(long *first);

/* Take the uid of a run of a program into *uid: one of the range no
 * running program holds, the --program-user's, or -1 (the host's own).
 * Returns 0, or EUSERS when every uid of the range is held. Any thread. */
int harden_uid_take(long *uid);

/* Give back a uid harden_uid_take gave (-1 and the --program-user's are
 * not held: giving them is nothing), once its run's program is gone. Any
 * thread. */
void harden_uid_give(long uid);

/* Return the descriptor of the empty network namespace, or -1: the
 * launcher keeps it open. */
int harden_netns_fd(void);

/* Take a fresh, empty working directory for a run of a program, owned by
 * the run's uid (from harden_uid_take; -1: the host's) and its group,
 * into path (PATH_MAX bytes): one made ahead when there is one, else made
 * now. Returns 0 with path set, 0 with path "" when
 * directories are off or not set up, or an errno. On the loop thread. */
int harden_dir_take(char *path, long uid);

/* Return whether fewer directories than half the pool are ready, so that
 * the caller should run harden_dir_refill on a worker thread. */
bool harden_dir_low(void);

/* Make directories ahead until the pool is full; it blocks, so the host
 * calls it on a worker thread (harden_setup fills the pool once). */
void harden_dir_refill(void);

/* Give back a run's directory once its program is gone: an empty one goes
 * back to the pool (its mode and owner reset), one the program left
 * something in is removed with all of it, without following links. It
 * blocks: the host calls it on a worker thread. Best effort: what stays
 * is removed by the next start. */
void harden_dir_give(const char *path);

/* In the launcher, once, after its fork: drop the bounding set and load
 * the filter on the launcher itself, which every program it starts then
 * inherits, so that no start pays for them (loading the filter cost about
 * 150 us a start here, the largest part of hardening on the wake path).
 * What fails here is left to each child. */
void harden_launcher(void);

/* In the child, before its exec: apply every part in force, with dir as
 * the working directory (NULL or "": none), network saying whether it
 * keeps the host's network and uid the run's (-1: the host's). System calls
 * only, no allocation, no libc state: it runs on the starter's memory. Returns
 * 0 or an errno. */
int harden_child(const char *dir, bool network, long uid);

/* Free what harden_setup made (the namespace's descriptor); for tests and
 * the host's exit. */
void harden_cleanup(void);

#endif
