/* Namespace probe for the podman enforcement tests, adapted from the `userns` mode of the
 * second security review's probe (security-review-2/probe.c). Built at test time with
 * `gcc -static -O1` and copied into the test image as /bin/nsprobe.
 *
 *   nsprobe unshare FLAGS        unshare(FLAGS)
 *   nsprobe clone FLAGS          raw clone(FLAGS|SIGCHLD); the child exits at once
 *   nsprobe clone3 FLAGS         raw clone3 with flags FLAGS; the child exits at once
 *   nsprobe setns PATH NSTYPE    setns(open(PATH), NSTYPE)
 *
 * FLAGS and NSTYPE are C integers (0x10000000 = CLONE_NEWUSER). Prints `OK` or the errno
 * name (EPERM, ENOSYS, ...) and exits 0 either way; 2 on a usage error. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_clone3
#define SYS_clone3 435
#endif

struct clone3_args {
  uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
      set_tid_size, cgroup;
};

static int report(long rc) {
  if (rc < 0) {
    const char *name = strerrorname_np(errno);
    printf("%s\n", name ? name : "E?");
  } else {
    printf("OK\n");
  }
  return 0;
}

static int reap(long pid) {
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, NULL, __WALL);
  return report(pid);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  const char *c = argv[1];
  unsigned long flags = strtoul(argv[2], NULL, 0);
  if (!strcmp(c, "unshare")) return report(unshare((int)flags));
  if (!strcmp(c, "clone")) {
    fflush(stdout);
    return reap(syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0));
  }
  if (!strcmp(c, "clone3")) {
    struct clone3_args a;
    memset(&a, 0, sizeof a);
    a.flags = flags;
    a.exit_signal = SIGCHLD;
    fflush(stdout);
    return reap(syscall(SYS_clone3, &a, sizeof a));
  }
  if (!strcmp(c, "setns") && argc > 3) {
    int fd = open(argv[2], O_RDONLY);
    if (fd < 0) return report(-1);
    return report(setns(fd, (int)strtol(argv[3], NULL, 0)));
  }
  return 2;
}
