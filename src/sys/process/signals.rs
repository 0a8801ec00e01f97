//! `Process::forward_signals`: while a child a person waits on runs (`init`'s clone), the
//! SIGINT, SIGTERM or SIGHUP we get is noted here, passed on to the child's group by the
//! wait loop, and we die of it once the group is gone. The child's group is its own (so
//! that a timeout can stop all of it), which also keeps a terminal's Ctrl-C from reaching
//! it: without this, git died with us (`PR_SET_PDEATHSIG`) and its ssh or https helper
//! stayed on, blocked on the network.

use std::sync::atomic::{AtomicI32, Ordering};

/// The signal we got while a `forward_signals` child ran (0: none).
static CAUGHT: AtomicI32 = AtomicI32::new(0);

/// The signals a terminal, a service manager or a closed session stop a command with.
const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

extern "C" fn catch(sig: libc::c_int) {
    // A lock-free atomic store is all a handler may do here; the wait loop acts on it.
    CAUGHT.store(sig, Ordering::SeqCst);
}

/// Our handlers for `FORWARDED` while a `forward_signals` child runs: the signals whose
/// disposition was the default's.
pub(super) struct Forwarding {
    installed: Vec<libc::c_int>,
}

impl Forwarding {
    pub(super) fn install() -> Forwarding {
        CAUGHT.store(0, Ordering::SeqCst);
        let mut installed = Vec::new();
        for sig in FORWARDED {
            // SAFETY: sigaction(2) reads into and from zeroed structs we own; `catch` only
            // stores into an atomic, which is async-signal-safe.
            unsafe {
                let mut old: libc::sigaction = std::mem::zeroed();
                if libc::sigaction(sig, std::ptr::null(), &mut old) != 0 || old.sa_sigaction != libc::SIG_DFL {
                    continue;
                }
                let mut new: libc::sigaction = std::mem::zeroed();
                new.sa_sigaction = catch as extern "C" fn(libc::c_int) as libc::sighandler_t;
                new.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(sig, &new, std::ptr::null_mut()) == 0 {
                    installed.push(sig);
                }
            }
        }
        Forwarding { installed }
    }

    /// Gives the signals back their default, and dies of the one we got, if any.
    pub(super) fn end(self) {
        for sig in &self.installed {
            // SAFETY: signal(2) back to the default disposition, as it was.
            unsafe {
                libc::signal(*sig, libc::SIG_DFL);
            }
        }
        let sig = CAUGHT.swap(0, Ordering::SeqCst);
        if sig != 0 {
            // SAFETY: raise(2) of a signal whose disposition is now the default: we end.
            unsafe {
                libc::raise(sig);
            }
            std::process::exit(128 + sig);
        }
    }
}

/// The signal we got since `Forwarding::install`, or 0.
pub(super) fn caught() -> i32 {
    CAUGHT.load(Ordering::SeqCst)
}
