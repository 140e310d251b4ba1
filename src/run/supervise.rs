//! A networked `capgate run`: capgate stays as the sandbox's parent, because
//! the network it provides (namespace, veth, ruleset, squid; [`super::net`])
//! must be set up before the server starts and removed after it ends.
//!
//! ```text
//! capgate run (root)
//!  ├─ capgate __run-wait   new netns; waits on fd 3, then execs
//!  │    └─ env -i setpriv ... bwrap ... -- SERVER   (the same process, exec'd)
//!  └─ squid -N (private instance, host end of the veth)
//! ```
//!
//! The first child unshares its network namespace before it executes
//! `capgate __run-wait`, which blocks until capgate has wired the namespace
//! and started squid, then performs the host duties and executes the
//! launcher. stdin, stdout and stderr are the client's own descriptors in
//! the sandbox (never copied). SIGTERM, SIGINT, SIGHUP and SIGQUIT to capgate
//! are forwarded to the sandbox; when it exits, capgate stops squid, reports
//! the denied requests as capabilities and removes the network. A SIGKILLed
//! capgate takes the sandbox with it (`--die-with-parent`, and the first
//! child's own parent-death signal); the next run removes the rest.

use std::ffi::OsString;
use std::io::Write as _;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{fail, host_duties, Plan};
use crate::diag::{Code, Diagnostic};

/// The descriptor `__run-wait` reads its go-ahead from.
const GO_FD: libc::c_int = 3;

const FORWARDED: [libc::c_int; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT];

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Runs the plan's sandbox under its network; returns the server's exit status.
pub fn supervise(mut plan: Plan, report: Option<&Path>) -> ExitCode {
    let Some(mut net) = plan.net.take() else {
        unreachable!("supervise runs only plans with a network")
    };
    let set = signal_set();
    // Blocked from here on, so a signal before the forwarder runs stays pending.
    // SAFETY: pthread_sigmask on a set built above.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };

    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 fills two descriptors, both close-on-exec.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fail(Diagnostic::new(
            Code::RunStart,
            format!("cannot create a pipe: {}", std::io::Error::last_os_error()),
        ));
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let rfd = read_end.as_raw_fd();
    let parent = std::process::id() as libc::pid_t;
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return fail(Diagnostic::new(
                Code::RunStart,
                format!("cannot find capgate's own executable: {e}"),
            ))
        }
    };
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__run-wait").arg("--").args(&plan.argv);
    // SAFETY: only system calls between fork and exec, on values prepared before.
    unsafe {
        cmd.pre_exec(move || {
            let empty = {
                let mut s: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut s);
                s
            };
            libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            // Dies with capgate even before bwrap's --die-with-parent is in place.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0
                || libc::getppid() != parent
            {
                return Err(std::io::Error::other(
                    "capgate ended before the sandbox started",
                ));
            }
            if libc::unshare(libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if rfd == GO_FD {
                libc::fcntl(GO_FD, libc::F_SETFD, 0);
            } else if libc::dup2(rfd, GO_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return fail(Diagnostic::new(
                Code::RunStart,
                format!("cannot start the sandbox's network namespace: {e}"),
            ))
        }
    };
    drop(read_end);
    let pid = child.id();
    // Signals go through a pidfd: once the child is reaped, they reach
    // nothing, never a process that took its pid.
    // SAFETY: pidfd_open on our own, unreaped child.
    let pidfd =
        unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) } as libc::c_int;
    let done = Arc::new(AtomicBool::new(false));
    {
        let done = Arc::clone(&done);
        std::thread::spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: sigwait on the blocked set; the signal goes to the pidfd
            // (or, on kernels without pidfds, to the pid while unreaped).
            unsafe {
                if libc::sigwait(&set, &mut sig) != 0 || done.load(Ordering::SeqCst) {
                    continue;
                }
                if pidfd >= 0 {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd,
                        sig,
                        std::ptr::null::<libc::siginfo_t>(),
                        0,
                    );
                } else {
                    libc::kill(pid as libc::pid_t, sig);
                }
            }
        });
    }

    if let Err(d) = net.start(pid) {
        let _ = child.kill();
        let _ = child.wait();
        drop(net);
        return fail(d);
    }
    if let Err(e) = super::net::release(write_end) {
        let _ = child.kill();
        let _ = child.wait();
        drop(net);
        return fail(Diagnostic::new(
            Code::RunStart,
            format!("cannot start the sandbox: {e}"),
        ));
    }
    // The host's addresses are denied to the proxy as they were at start; one
    // the host gains during the run (DHCP, a VPN, an IPv6 privacy address) is
    // added within about a second: squid is reconfigured with the new list.
    let refresher = plan.proxy_conf.take().map(|(conf, mut hosts)| {
        let done = Arc::clone(&done);
        let squid = net.reconfigurer();
        std::thread::spawn(move || {
            'run: while !done.load(Ordering::SeqCst) {
                // Half a second between reads, in ticks short enough that
                // the run's exit never waits long for this thread.
                for _ in 0..5 {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if done.load(Ordering::SeqCst) {
                        break 'run;
                    }
                }
                let now = super::host_addresses();
                if now != hosts {
                    if let Ok(text) = conf.compile(&now) {
                        let _ = squid.apply(&text);
                    }
                    hosts = now;
                }
            }
        })
    });
    let status = child.wait();
    done.store(true, Ordering::SeqCst);
    if let Some(thread) = refresher {
        let _ = thread.join();
    }

    let log = net.read_access_log();
    net.stop_squid();
    let sandbox = net.sandbox_ip.to_string();
    let (denials, more) = super::suggest::denials(&log, &plan.egress, Some(&sandbox));
    plan.denials = denials;
    plan.denials_not_listed = more;
    drop(net);

    let mut err = std::io::stderr().lock();
    for d in &plan.denials {
        let _ = writeln!(err, "capgate: {}", d.line());
    }
    if more > 0 {
        let _ = writeln!(
            err,
            "capgate: and {more} more denied destinations, not listed (the first {} are)",
            super::suggest::MAX_REPORTED
        );
    }
    drop(err);
    if let Some(path) = report {
        if let Err(d) = super::write_report(&plan, path) {
            return fail(d);
        }
    }
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => ExitCode::from(c as u8),
            (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
            _ => ExitCode::from(125),
        },
        Err(e) => fail(Diagnostic::new(
            Code::RunStart,
            format!("cannot wait for the sandbox: {e}"),
        )),
    }
}

/// `capgate __run-wait -- ARGV`: waits for the go-ahead byte on fd 3, then
/// performs the host duties and executes ARGV. EOF on fd 3 (capgate gave up
/// or died) ends it without running anything.
pub fn wait_then_exec(argv: &[OsString]) -> ExitCode {
    // SAFETY: fd 3 was placed by capgate's pre_exec for exactly this read.
    let go = unsafe { std::fs::File::from_raw_fd(GO_FD) };
    let mut byte = [0u8; 1];
    let got = std::io::Read::read(&mut &go, &mut byte);
    drop(go);
    if !matches!(got, Ok(1)) {
        return ExitCode::from(125);
    }
    if let Err(e) = host_duties() {
        return fail(Diagnostic::new(
            Code::RunStart,
            format!("cannot isolate the launcher from capgate's own process state: {e}"),
        ));
    }
    let Some((program, rest)) = argv.split_first() else {
        return ExitCode::from(crate::diag::exit::USAGE);
    };
    let e = std::process::Command::new(program).args(rest).exec();
    fail(Diagnostic::new(
        Code::RunStart,
        format!("cannot start {}: {e}", Path::new(program).display()),
    ))
}
