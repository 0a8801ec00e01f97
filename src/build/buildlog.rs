//! The one writer of a build's log (`<state>/builds/<id>.log`). Everything that goes into
//! the log goes through here: the pipeline's own lines, the web hosts' upload threads,
//! the notifications.
//!
//! Each line is written with one write(2) on a file opened `O_APPEND`: the kernel appends
//! a write whole, so lines written at once by several threads (one per web host) never
//! interleave. `writeln!` on an unbuffered `File` is two writes (the text, then the
//! newline), and two upload threads' lines came out as `web3: uploaded ... bytesweb1: ...`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

/// A build's log, shared by every thread of the build (a clone is the same log).
#[derive(Clone)]
pub struct BuildLog {
    inner: Arc<Inner>,
}

struct Inner {
    file: File,
}

impl BuildLog {
    /// Creates the log of a new build (never an existing file: build ids are unique).
    pub fn create(path: &Path) -> io::Result<BuildLog> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o640)
            .open(path)?;
        Ok(BuildLog::from_file(file))
    }

    /// A log that keeps nothing, for the commands that talk to web hosts outside a build
    /// (`status`, `rollback`, `check`): they share the publish code, which writes a log.
    pub fn discard() -> io::Result<BuildLog> {
        let file = OpenOptions::new().append(true).open("/dev/null")?;
        Ok(BuildLog::from_file(file))
    }

    fn from_file(file: File) -> BuildLog {
        BuildLog {
            inner: Arc::new(Inner { file }),
        }
    }

    /// The open file, for a child's output to go into directly.
    pub fn file(&self) -> &File {
        &self.inner.file
    }

    /// Appends `text` and a newline, in one write(2). `text` may hold several lines: they
    /// stay together.
    pub fn line(&self, text: &str) {
        let mut buf = Vec::with_capacity(text.len() + 1);
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
        self.append(&buf);
    }

    /// One write(2) of whole lines. A log that cannot be written (a full disk) must not
    /// stop the build: the state folder's status still says how it went.
    fn append(&self, bytes: &[u8]) {
        // write_all, not write: a short write (a signal, a full disk) leaves the rest to a
        // second write rather than losing it; on a regular file the first is whole.
        let _ = (&self.inner.file).write_all(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dh-buildlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("b.log")
    }

    #[test]
    fn lines_written_at_once_by_many_threads_stay_whole() {
        let path = temp("threads");
        let log = BuildLog::create(&path).unwrap();
        let (threads, lines) = (8, 2000);
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = log.clone();
                s.spawn(move || {
                    for i in 0..lines {
                        log.line(&format!("web{t}: uploaded release {i} in 0.01s; rsync sent {i} bytes"));
                    }
                });
            }
        });
        let text = std::fs::read_to_string(&path).unwrap();
        let mut seen = 0;
        for l in text.lines() {
            let ok = l.starts_with("web") && l.ends_with(" bytes") && l.matches("web").count() == 1;
            assert!(ok, "a line was torn: {l:?}");
            seen += 1;
        }
        assert_eq!(seen, threads * lines);
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_text_of_several_lines_stays_together() {
        let path = temp("block");
        let log = BuildLog::create(&path).unwrap();
        log.line("one\ntwo");
        log.line("three");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\nthree\n");
        assert!(BuildLog::create(&path).is_err(), "an existing log is never reopened");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
