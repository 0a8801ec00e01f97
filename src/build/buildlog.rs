//! The one writer of a build's log (`<state>/builds/<id>.log`). Everything that goes into
//! the log goes through here: the pipeline's own lines, the output of every child (steps,
//! git, rsync, the web hosts' ssh), the notifications. And the logs' end: `prune` keeps a
//! hook's newest `keep_logs`.
//!
//! Each line is written with one write(2) on a file opened `O_APPEND`: the kernel appends
//! a write whole, so lines written at once by several threads (one per web host) never
//! interleave. `writeln!` on an unbuffered `File` is two writes (the text, then the
//! newline), and two upload threads' lines came out as `web3: uploaded ... bytesweb1: ...`.
//!
//! A log is capped at `log_max_bytes` (a step that printed 3 GB wrote a 3 GB log, and 30
//! are kept), keeping its start and its end, which is where a failure shows:
//!
//! - a child's output (`Stream`) goes into the log, whole lines at a time, as it comes,
//!   until the log holds half the cap. After that, a child's output is held back, its last
//!   quarter of the cap in memory, and written when the child ends, after a line that says
//!   how many bytes were cut and where (`[deploy-hook: ... cut here ...]`);
//! - our own lines are always written (there are few);
//! - when the build ends (`seal`), a log still over the cap (several children cut) is cut
//!   once more in its middle, with such a line, to the cap: into a copy that is renamed
//!   over it, so that a worker killed meanwhile leaves the whole log, not a garbled one.
//!
//! A child's output that is held back (at most a quarter of the cap, and the unfinished
//! last line, at most `LINE_MAX`) is lost if the worker dies; everything before it is in
//! the file already.
//!
//! Every `Stream` keeps the last `TAIL` bytes of its child's output whatever the cap did
//! (`Stream::finish`): the lines that say why a step failed, without reading the log.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::MIN_LOG_MAX_BYTES as MIN_MAX;

/// A line longer than this is written in pieces: the unfinished line of a child is held in
/// memory.
const LINE_MAX: usize = 64 << 10;

/// What a `Stream` keeps of its child's last output for the caller.
pub const TAIL: usize = 8 << 10;

/// A build's log, shared by every thread of the build (a clone is the same log).
#[derive(Clone)]
pub struct BuildLog {
    inner: Arc<Inner>,
}

struct Inner {
    file: File,
    /// `None` for a log that keeps nothing.
    path: Option<PathBuf>,
    max: u64,
    /// The bytes written so far: the file's size (we are its only writer).
    size: AtomicU64,
}

impl BuildLog {
    /// Creates the log of a new build (never an existing file: build ids are unique),
    /// capped at `max` bytes.
    pub fn create(path: &Path, max: u64) -> io::Result<BuildLog> {
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .mode(0o640)
            .open(path)?;
        Ok(BuildLog::from_file(file, Some(path.to_path_buf()), max))
    }

    /// The log of a build whose worker died, to add what its recovery did
    /// (`queue::recover`); the size it has counts toward the cap. Never through a symlink.
    pub fn reopen(path: &Path, max: u64) -> io::Result<BuildLog> {
        let file = OpenOptions::new()
            .append(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let size = file.metadata()?.len();
        let log = BuildLog::from_file(file, Some(path.to_path_buf()), max);
        log.inner.size.store(size, Ordering::Relaxed);
        Ok(log)
    }

    /// A log that keeps nothing, for the commands that talk to web hosts outside a build
    /// (`status`, `rollback`, `check`): they share the publish code, which writes a log.
    pub fn discard() -> io::Result<BuildLog> {
        let file = OpenOptions::new().append(true).open("/dev/null")?;
        Ok(BuildLog::from_file(file, None, u64::MAX))
    }

    fn from_file(file: File, path: Option<PathBuf>, max: u64) -> BuildLog {
        BuildLog {
            inner: Arc::new(Inner {
                file,
                path,
                max: max.max(MIN_MAX),
                size: AtomicU64::new(0),
            }),
        }
    }

    /// Appends `text` and a newline, in one write(2). `text` may hold several lines: they
    /// stay together. Our own lines are never held back or cut.
    pub fn line(&self, text: &str) {
        let mut buf = Vec::with_capacity(text.len() + 1);
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'\n');
        self.append(&buf);
    }

    /// A writer for one child's output (its stdout and stderr as one stream), every line
    /// prefixed with `prefix` (`[web1] `).
    pub fn stream(&self, prefix: &str) -> Stream {
        Stream {
            log: self.clone(),
            prefix: prefix.as_bytes().to_vec(),
            partial: Vec::new(),
            held: Ring::new((self.inner.max / 4) as usize),
            written: 0,
            tail: Ring::new(TAIL),
            done: false,
        }
    }

    /// One write(2) of whole lines. A log that cannot be written (a full disk) must not
    /// stop the build: the state folder's status still says how it went.
    fn append(&self, bytes: &[u8]) {
        // write_all, not write: a short write (a signal, a full disk) leaves the rest to a
        // second write rather than losing it; on a regular file the first is whole.
        if (&self.inner.file).write_all(bytes).is_ok() {
            self.inner.size.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }

    /// How much more of children's output goes into the log before it is held back: the
    /// log's first half is its head.
    fn head_room(&self) -> usize {
        let head = self.inner.max / 2;
        head.saturating_sub(self.inner.size.load(Ordering::Relaxed)) as usize
    }

    /// Ends the log: when it is over its cap, its middle is cut out, so that it keeps its
    /// first half and its end, with a line that says what was cut. Call it when nothing
    /// writes any more (after the notifications).
    ///
    /// The cut log is written beside the log (`<id>.sealing`), synced, and renamed over
    /// it, never rewritten in place: a worker killed meanwhile leaves the whole log (and a
    /// `.sealing` file that the next build's log pruning removes), and a reader that holds
    /// the log open (`status --follow`) reads on to the end of the file it opened. A line
    /// written after this goes into that old file, which no name leads to any more: it is
    /// lost, never written into the sealed log.
    pub fn seal(&self) -> io::Result<()> {
        let Some(path) = &self.inner.path else { return Ok(()) };
        let max = self.inner.max;
        // Never through a symlink, as `reopen`.
        let mut f = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let size = f.metadata()?.len();
        if size <= max {
            return Ok(());
        }
        // The head ends at the end of a line, the kept end starts at the start of one.
        let head = after_last_newline(&mut f, max / 2)?;
        let room = max - head - 256; // the cut line is shorter than 256 bytes
        let end = after_next_newline(&mut f, size - room, size)?;
        let note = format!(
            "[deploy-hook: {} bytes of this log cut here (bytes {head} to {end}): a log keeps its first {head} and its last {} bytes (log_max_bytes = {max})]\n",
            end - head,
            size - end,
        );
        let tmp = sealing_path(path);
        let sealed = write_cut(&mut f, &tmp, head, note.as_bytes(), end..size).and_then(|()| fs::rename(&tmp, path));
        // A half-written copy (a full disk) goes; the log stays as it was, whole.
        if sealed.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        sealed
    }
}

/// Where `seal` writes the cut log before it takes the log's place (`<id>.sealing`). Not a
/// `.log`: the build ids and the log pruning never take it for a log.
fn sealing_path(log: &Path) -> PathBuf {
    log.with_extension("sealing")
}

/// Writes to `to` the first `head` bytes of `from`, `note`, then its bytes `tail`, and
/// waits for the disk.
fn write_cut(from: &mut File, to: &Path, head: u64, note: &[u8], tail: Range<u64>) -> io::Result<()> {
    // A new file (O_EXCL): what a killed worker left there goes first, and a symlink
    // planted there is removed, never followed.
    let _ = fs::remove_file(to);
    let mut out = OpenOptions::new().write(true).create_new(true).mode(0o640).open(to)?;
    for (start, len, then) in [(0, head, note), (tail.start, tail.end - tail.start, &[][..])] {
        from.seek(SeekFrom::Start(start))?;
        // Copied with copy_file_range(2) where it can be: no pass through our memory.
        if io::copy(&mut (&mut *from).take(len), &mut out)? != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the log shrank while it was cut",
            ));
        }
        out.write_all(then)?;
    }
    out.sync_data()
}

/// Keeps the newest `keep` build logs in `dir` (a hook's `builds/`), and removes the copy a
/// seal left half written (`<id>.sealing`: its worker was killed; this build's seal is
/// over). Logs go by id, oldest first.
pub fn prune(dir: &Path, keep: usize) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut logs: Vec<PathBuf> = Vec::new();
    for path in entries.flatten().map(|e| e.path()) {
        match path.extension() {
            Some(e) if e == "log" => logs.push(path),
            Some(e) if e == "sealing" => {
                let _ = fs::remove_file(&path);
            }
            _ => {}
        }
    }
    // By id, not by file name: `X.log` sorts after `X-02.log` (`.` > `-`).
    logs.sort_by(|a, b| a.file_stem().cmp(&b.file_stem()));
    let excess = logs.len().saturating_sub(keep);
    for old in &logs[..excess] {
        let _ = fs::remove_file(old);
    }
}

/// The offset just after the last newline before `at` (or `at` when there is none in the
/// 4 KiB before it).
fn after_last_newline(f: &mut File, at: u64) -> io::Result<u64> {
    let start = at.saturating_sub(4096);
    let mut buf = vec![0u8; (at - start) as usize];
    f.seek(SeekFrom::Start(start))?;
    f.read_exact(&mut buf)?;
    Ok(match buf.iter().rposition(|b| *b == b'\n') {
        Some(i) => start + i as u64 + 1,
        None => at,
    })
}

/// The offset just after the first newline at or after `at` (or `at` when there is none
/// in the 4 KiB after it).
fn after_next_newline(f: &mut File, at: u64, size: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; (size - at).min(4096) as usize];
    f.seek(SeekFrom::Start(at))?;
    f.read_exact(&mut buf)?;
    Ok(match buf.iter().position(|b| *b == b'\n') {
        Some(i) => at + i as u64 + 1,
        None => at,
    })
}

/// One child's output on its way into the log: whole lines, one write(2) each batch, held
/// back past the log's head (see the module's comment). Ends with `finish` (or when
/// dropped).
pub struct Stream {
    log: BuildLog,
    prefix: Vec<u8>,
    /// The last line, not finished yet.
    partial: Vec<u8>,
    /// Output held back since the log passed its head; what fell out of it was cut.
    held: Ring,
    /// Bytes written into the log before any was held back.
    written: u64,
    tail: Ring,
    done: bool,
}

impl Stream {
    /// Takes what the child wrote: its finished lines go on, the unfinished one waits.
    pub fn write(&mut self, bytes: &[u8]) {
        self.tail.push(bytes);
        self.partial.extend_from_slice(bytes);
        let whole = match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if self.partial.len() >= LINE_MAX => self.partial.len(),
            None => return,
        };
        let lines: Vec<u8> = self.partial.drain(..whole).collect();
        self.lines(&lines);
    }

    fn lines(&mut self, lines: &[u8]) {
        let text = if self.prefix.is_empty() {
            lines.to_vec()
        } else {
            let mut t = Vec::with_capacity(lines.len() + self.prefix.len() * 4);
            for line in lines.split_inclusive(|b| *b == b'\n') {
                t.extend_from_slice(&self.prefix);
                t.extend_from_slice(line);
            }
            t
        };
        // Into the log up to its head (whole lines), then held back, in order.
        let room = if self.held.seen == 0 { self.log.head_room() } else { 0 };
        let upto = if text.len() <= room {
            text.len()
        } else {
            text[..room].iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
        };
        if upto > 0 {
            self.log.append(&text[..upto]);
            self.written += upto as u64;
        }
        if upto < text.len() {
            self.held.push(&text[upto..]);
        }
    }

    /// Writes what is left (what was held back, after the line that says what was cut),
    /// and returns the end of the child's output: its last lines, up to `TAIL` bytes.
    pub fn finish(mut self) -> String {
        self.end();
        let mut tail = self.tail.contents();
        if self.tail.dropped() > 0 {
            // Start at a line: the first one was cut in its middle.
            if let Some(i) = tail.iter().position(|b| *b == b'\n') {
                tail.drain(..=i);
            }
        }
        String::from_utf8_lossy(&tail).into_owned()
    }

    fn end(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.partial.is_empty() {
            let mut last = std::mem::take(&mut self.partial);
            last.push(b'\n');
            self.lines(&last);
        }
        let mut held = self.held.contents();
        let mut cut = self.held.dropped();
        if cut > 0 {
            if let Some(i) = held.iter().position(|b| *b == b'\n') {
                held.drain(..=i);
                cut += i as u64 + 1;
            }
            let note = format!(
                "[deploy-hook: {cut} bytes of this output cut here (bytes {} to {} of it): the log is capped at {} bytes (log_max_bytes)]\n",
                self.written,
                self.written + cut,
                self.log.inner.max
            );
            let mut text = note.into_bytes();
            text.extend_from_slice(&held);
            self.log.append(&text);
        } else if !held.is_empty() {
            self.log.append(&held);
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.end();
    }
}

/// The last `cap` bytes pushed into it.
struct Ring {
    buf: Vec<u8>,
    cap: usize,
    /// Where the oldest byte is, once the ring is full.
    start: usize,
    /// Every byte pushed.
    seen: u64,
}

impl Ring {
    fn new(cap: usize) -> Ring {
        Ring {
            buf: Vec::new(),
            cap: cap.max(1),
            start: 0,
            seen: 0,
        }
    }

    fn push(&mut self, mut bytes: &[u8]) {
        self.seen += bytes.len() as u64;
        if bytes.len() >= self.cap {
            bytes = &bytes[bytes.len() - self.cap..];
            self.buf.clear();
            self.start = 0;
        }
        // Fill up to the cap, then overwrite the oldest bytes.
        let fill = (self.cap - self.buf.len()).min(bytes.len());
        self.buf.extend_from_slice(&bytes[..fill]);
        let mut rest = &bytes[fill..];
        while !rest.is_empty() {
            let n = (self.cap - self.start).min(rest.len());
            self.buf[self.start..self.start + n].copy_from_slice(&rest[..n]);
            self.start = (self.start + n) % self.cap;
            rest = &rest[n..];
        }
    }

    /// How many bytes fell out.
    fn dropped(&self) -> u64 {
        self.seen - self.buf.len() as u64
    }

    fn contents(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.buf.len());
        v.extend_from_slice(&self.buf[self.start..]);
        v.extend_from_slice(&self.buf[..self.start]);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT_MAX: u64 = 8 << 20;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dh-buildlog-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("b.log")
    }

    #[test]
    fn lines_written_at_once_by_many_threads_stay_whole() {
        let path = temp("threads");
        let log = BuildLog::create(&path, DEFAULT_MAX).unwrap();
        let (threads, lines) = (8, 2000);
        std::thread::scope(|s| {
            for t in 0..threads {
                let log = log.clone();
                s.spawn(move || {
                    // Half our own lines, half a child's output in uneven pieces.
                    let mut out = log.stream("");
                    for i in 0..lines {
                        let line = format!("web{t}: uploaded release {i} in 0.01s; rsync sent {i} bytes");
                        if i % 2 == 0 {
                            log.line(&line);
                        } else {
                            let bytes = format!("{line}\n").into_bytes();
                            let (a, b) = bytes.split_at(i % bytes.len());
                            out.write(a);
                            out.write(b);
                        }
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
        let log = BuildLog::create(&path, DEFAULT_MAX).unwrap();
        log.line("one\ntwo");
        log.line("three");
        let mut s = log.stream("[web1] ");
        s.write(b"a\nb");
        assert_eq!(s.finish(), "a\nb");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "one\ntwo\nthree\n[web1] a\n[web1] b\n"
        );
        assert!(
            BuildLog::create(&path, DEFAULT_MAX).is_err(),
            "an existing log is never reopened"
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[test]
    fn output_over_the_cap_keeps_its_start_and_its_end_and_says_what_was_cut() {
        let path = temp("cap");
        let max = MIN_MAX;
        let log = BuildLog::create(&path, max).unwrap();
        log.line("build start");
        let mut total = 0;
        for round in 0..3 {
            let mut s = log.stream("");
            for i in 0..20_000 {
                let line = format!("step {round} line {i}\n");
                total += line.len();
                s.write(line.as_bytes());
            }
            let tail = s.finish();
            assert!(tail.ends_with(&format!("step {round} line 19999\n")), "{tail}");
            assert!(tail.len() <= TAIL && tail.starts_with("step"), "{tail}");
            log.line(&format!("-> step {round} done"));
        }
        log.line("result: succeeded");
        assert!(total as u64 > 10 * max);
        log.seal().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() as u64 <= max, "{} bytes", text.len());
        assert!(text.starts_with("build start\nstep 0 line 0\n"), "{}", &text[..100]);
        assert!(text.ends_with("step 2 line 19999\n-> step 2 done\nresult: succeeded\n"));
        assert!(text.contains("bytes of this log cut here"), "{text}");
        assert!(text.contains("bytes of this output cut here"), "{text}");
        // Every line is whole: cut at line ends only.
        for l in text.lines() {
            assert!(
                l.starts_with("step ")
                    || l.starts_with("-> ")
                    || l.starts_with("[deploy-hook: ")
                    || l == "build start"
                    || l == "result: succeeded",
                "{l:?}"
            );
        }
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    /// A log over its cap, as three cut children leave it.
    fn over_the_cap(path: &Path, max: u64) -> BuildLog {
        let log = BuildLog::create(path, max).unwrap();
        log.line("build start");
        for round in 0..3 {
            let mut s = log.stream("");
            for i in 0..20_000 {
                s.write(format!("step {round} line {i}\n").as_bytes());
            }
            s.finish();
        }
        log.line("result: succeeded");
        log
    }

    /// `status --follow` holds the log open while the build seals it: what it reads on is
    /// the rest of the log it was reading, not the sealed log from the same offset.
    #[test]
    fn a_reader_holding_the_log_open_reads_it_whole_through_the_seal() {
        let path = temp("held");
        let max = MIN_MAX;
        let log = over_the_cap(&path, max);
        let before = std::fs::read(&path).unwrap();
        assert!(before.len() as u64 > max);
        let mut held = File::open(&path).unwrap();
        let mut read = vec![0u8; before.len() / 2];
        held.read_exact(&mut read).unwrap();
        log.seal().unwrap();
        held.read_to_end(&mut read).unwrap();
        assert!(read == before, "a reader that held the log open read it garbled");
        // The sealed log took its place, whole; nothing is left beside it.
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.len() as u64 <= max, "{} bytes", text.len());
        assert!(text.starts_with("build start\nstep 0 line 0\n"), "{}", &text[..100]);
        assert!(text.ends_with("step 2 line 19999\nresult: succeeded\n"));
        assert!(text.contains("bytes of this log cut here"));
        let dir = path.parent().unwrap();
        let names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["b.log"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_ring_keeps_the_last_bytes() {
        let mut r = Ring::new(5);
        r.push(b"abc");
        assert_eq!((r.contents(), r.dropped()), (b"abc".to_vec(), 0));
        r.push(b"defg");
        assert_eq!((r.contents(), r.dropped()), (b"cdefg".to_vec(), 2));
        r.push(b"0123456789");
        assert_eq!((r.contents(), r.dropped()), (b"56789".to_vec(), 12));
        r.push(b"x");
        assert_eq!(r.contents(), b"6789x".to_vec());
    }
}
