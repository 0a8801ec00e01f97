//! Draining a child's stdout and stderr together, as cargo-util's `read2` does: both
//! pipes are non-blocking and read whenever poll(2) says either has something. Reading one
//! pipe to its end and then the other deadlocks with a child that fills the second pipe's
//! buffer (64 KiB) while we wait on the first; one thread per pipe costs two threads per
//! child. Unlike cargo's, each call waits at most `wait`, so that the caller can look at the
//! clock (a timeout) and at the child between reads.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Where the bytes read from one pipe go.
pub(super) enum Dest<'a> {
    /// Kept, up to `limit` bytes (the rest is read and dropped).
    Capture { buf: Vec<u8>, limit: usize, dropped: u64 },
    /// Handed over as they come.
    To(&'a mut dyn FnMut(&[u8])),
}

/// The read end of one of a child's pipes.
pub(super) struct Source<'a> {
    file: File,
    dest: Dest<'a>,
    open: bool,
}

impl<'a> Source<'a> {
    pub(super) fn new(read_end: OwnedFd, dest: Dest<'a>) -> io::Result<Source<'a>> {
        set_nonblocking(&read_end)?;
        Ok(Source {
            file: File::from(read_end),
            dest,
            open: true,
        })
    }

    /// What a `Capture` source kept, and how many bytes it dropped.
    pub(super) fn into_captured(self) -> (Vec<u8>, u64) {
        match self.dest {
            Dest::Capture { buf, dropped, .. } => (buf, dropped),
            Dest::To(_) => (Vec::new(), 0),
        }
    }

    fn take(&mut self, bytes: &[u8]) {
        match &mut self.dest {
            Dest::Capture { buf, limit, dropped } => {
                let room = limit.saturating_sub(buf.len()).min(bytes.len());
                buf.extend_from_slice(&bytes[..room]);
                *dropped += (bytes.len() - room) as u64;
            }
            Dest::To(f) => f(bytes),
        }
    }

    /// Reads what the pipe holds now; at most a few buffers, so that one chatty child
    /// cannot keep the caller from its clock.
    fn read_some(&mut self, buf: &mut [u8]) -> io::Result<()> {
        for _ in 0..16 {
            match self.file.read(buf) {
                Ok(0) => {
                    self.open = false;
                    return Ok(());
                }
                Ok(n) => self.take(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.open = false;
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// A pipe whose ends are closed on exec: the child gets its end as stdout or stderr (std
/// dup2s it there, which clears the flag), and no other child inherits either.
pub(super) fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and owned by nothing else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    let fd = fd.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; only its status flags change.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags == -1 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Whether every source has reached its end.
pub(super) fn all_closed(sources: &[Source]) -> bool {
    sources.iter().all(|s| !s.open)
}

/// Waits up to `wait` for any open source to have something, and reads what they have.
/// With no open source, it just waits. A read error closes that source: what the child
/// says is worth less than getting it stopped and reaped.
pub(super) fn pump(sources: &mut [Source], wait: Duration, buf: &mut [u8]) {
    let mut fds: Vec<libc::pollfd> = sources
        .iter()
        .filter(|s| s.open)
        .map(|s| libc::pollfd {
            fd: s.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    if fds.is_empty() {
        std::thread::sleep(wait);
        return;
    }
    let ms = wait.as_millis().min(i32::MAX as u128) as libc::c_int;
    // SAFETY: poll(2) on an array of pollfd we own, of the length given.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n <= 0 {
        return; // timed out, or interrupted by a signal: the caller comes back
    }
    for pfd in fds.iter().filter(|p| p.revents != 0) {
        if let Some(s) = sources.iter_mut().find(|s| s.open && s.file.as_raw_fd() == pfd.fd) {
            let _ = s.read_some(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn two_pipes_are_read_as_they_fill_and_a_capture_is_bounded() {
        let (r1, w1) = pipe().unwrap();
        let (r2, w2) = pipe().unwrap();
        let mut seen = Vec::new();
        let mut to = |b: &[u8]| seen.extend_from_slice(b);
        let mut sources = vec![
            Source::new(
                r1,
                Dest::Capture {
                    buf: Vec::new(),
                    limit: 4,
                    dropped: 0,
                },
            )
            .unwrap(),
            Source::new(r2, Dest::To(&mut to)).unwrap(),
        ];
        // More than a pipe holds, on the second pipe first: a reader that waited on the
        // first pipe's end would never get here.
        let writer = std::thread::spawn(move || {
            let (mut a, mut b) = (File::from(w1), File::from(w2));
            b.write_all(&vec![b'e'; 200_000]).unwrap();
            a.write_all(b"out-and-more").unwrap();
        });
        let mut buf = vec![0; 65536];
        while !all_closed(&sources) {
            pump(&mut sources, Duration::from_millis(50), &mut buf);
        }
        writer.join().unwrap();
        let second = sources.pop().unwrap();
        drop(second);
        let (kept, dropped) = sources.pop().unwrap().into_captured();
        assert_eq!((kept.as_slice(), dropped), (&b"out-"[..], 8));
        assert_eq!(seen.len(), 200_000);
    }
}
