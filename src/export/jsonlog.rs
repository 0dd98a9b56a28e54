//! Line-oriented writers: JSON-lines events (`--events PATH|-`) and the
//! `--all-names` TSV log of every extracted name, matched or not, in the
//! column order of the tshark truth files.
//!
//! Write errors are counted, never fatal: a full disk must not stop the
//! sensor. Lines are collected in a buffer and written whole; when the file
//! refuses a write (ENOSPC, EIO, ...) the unwritten bytes stay buffered, up
//! to [`MAX_PENDING_BYTES`], and lines that do not fit are dropped and
//! counted in `errors` (`kaswatch_limit_drops_total{limit="events_write_errors"}`
//! for events). The failure is logged once, not per line; writes are retried
//! at most every [`RETRY_EVERY`], and when one succeeds the buffered lines go
//! out and writing resumes, which is logged once too. What the kernel took
//! of a line is completed from the buffer before anything else, and a file
//! still refusing writes at exit is cut back to its last whole line, so the
//! file only ever holds whole lines.

use crate::error::{Error, Result};
use crate::event::Event;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes collected before they are written.
const WRITE_AT: usize = 1 << 16;
/// Most bytes kept for a file that refuses writes; further lines are dropped.
pub const MAX_PENDING_BYTES: usize = 1 << 16;
/// While writes fail, how often one is tried again.
pub const RETRY_EVERY: Duration = Duration::from_millis(500);

/// A buffered line sink: a file or stdout.
pub struct LineSink {
    out: Box<dyn Write + Send>,
    /// The path, for log lines.
    what: String,
    buf: Vec<u8>,
    /// Since when writes fail, and the drop count then.
    failing: Option<(Instant, u64)>,
    last_try: Option<Instant>,
    /// The file (not stdout), to cut a partial last line at exit.
    file: Option<std::fs::File>,
    /// Bytes written, and how many of them follow the last newline.
    written: u64,
    tail: u64,
    /// Lines dropped (not written and never will be).
    pub errors: u64,
    /// Lines accepted.
    pub lines: u64,
}

impl LineSink {
    /// `-` is stdout.
    pub fn open(path: &Path) -> Result<Self> {
        if path == Path::new("-") {
            return Ok(Self::with_writer(
                "standard output",
                Box::new(std::io::stdout()),
            ));
        }
        let f = std::fs::File::create(path)
            .map_err(|e| Error::input(path, crate::error::io_reason(&e)))?;
        let mut s = Self::with_writer(
            path.display().to_string(),
            Box::new(f.try_clone().map_err(|e| Error::input(path, e))?),
        );
        s.file = Some(f);
        Ok(s)
    }

    /// A sink over any writer; `what` names it in log lines.
    pub fn with_writer(what: impl Into<String>, out: Box<dyn Write + Send>) -> Self {
        LineSink {
            out,
            what: what.into(),
            buf: Vec::with_capacity(WRITE_AT),
            failing: None,
            last_try: None,
            file: None,
            written: 0,
            tail: 0,
            errors: 0,
            lines: 0,
        }
    }

    pub fn event(&mut self, e: &Event) {
        let start = self.buf.len();
        if serde_json::to_writer(&mut self.buf, e).is_err() {
            self.buf.truncate(start);
            self.errors += 1;
            return;
        }
        self.buf.push(b'\n');
        self.admit(start);
    }

    pub fn line(&mut self, s: &str) {
        let start = self.buf.len();
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(b'\n');
        self.admit(start);
    }

    /// Is the sink failing to write right now?
    pub fn failing(&self) -> bool {
        self.failing.is_some()
    }

    /// Keep the line just appended at `start..`, or drop it (counted) when
    /// the file refuses writes and the buffer is full; write out a full
    /// buffer. A line always fits an empty buffer, so nothing is lost while
    /// the file takes writes.
    fn admit(&mut self, start: usize) {
        if self.failing.is_some() && start > 0 && self.buf.len() > MAX_PENDING_BYTES {
            self.buf.truncate(start);
            self.errors += 1;
        } else {
            self.lines += 1;
        }
        if self.buf.len() >= WRITE_AT {
            self.write_out(false);
        }
    }

    /// Write what is buffered (retrying a failing file at most every
    /// [`RETRY_EVERY`]).
    pub fn flush(&mut self) {
        self.write_out(false);
    }

    fn write_out(&mut self, force: bool) {
        if self.failing.is_some()
            && !force
            && self.last_try.is_some_and(|t| t.elapsed() < RETRY_EVERY)
        {
            return;
        }
        self.last_try = Some(Instant::now());
        let mut err = None;
        let mut done = 0;
        while done < self.buf.len() {
            match self.out.write(self.buf.get(done..).unwrap_or_default()) {
                Ok(0) => {
                    err = Some(std::io::Error::from(std::io::ErrorKind::WriteZero));
                    break;
                }
                Ok(n) => {
                    let chunk = self.buf.get(done..done + n).unwrap_or_default();
                    self.written += n as u64;
                    self.tail = match chunk.iter().rposition(|&b| b == b'\n') {
                        Some(i) => (n - i - 1) as u64,
                        None => self.tail + n as u64,
                    };
                    done += n;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        self.buf.drain(..done);
        if err.is_none() {
            if let Err(e) = self.out.flush() {
                err = Some(e);
            }
        }
        match (err, self.failing) {
            (Some(e), None) => {
                self.failing = Some((Instant::now(), self.errors));
                eprintln!(
                    "kaswatch: {}: write failed: {}; keeping up to {} KiB and dropping (counting) \
                     further lines until writing works again",
                    self.what,
                    crate::error::io_reason(&e),
                    MAX_PENDING_BYTES / 1024
                );
            }
            (None, Some((since, before))) => {
                self.failing = None;
                eprintln!(
                    "kaswatch: {}: writing again after {} s; {} lines were dropped",
                    self.what,
                    since.elapsed().as_secs(),
                    self.errors - before
                );
            }
            _ => {}
        }
    }
}

impl LineSink {
    /// Last write at exit: lines the file still refuses are dropped and
    /// counted, and a line written in part is cut off the file.
    pub fn close(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        self.write_out(true);
        if self.buf.is_empty() {
            return;
        }
        let whole = self.buf.iter().filter(|&&b| b == b'\n').count() as u64;
        self.errors += whole;
        self.lines -= whole.min(self.lines);
        self.buf.clear();
        if self.tail > 0 {
            if let Some(f) = &self.file {
                if f.set_len(self.written - self.tail).is_ok() {
                    self.written -= self.tail;
                    self.tail = 0;
                }
            }
        }
    }
}

impl Drop for LineSink {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A "disk" that takes `room` more bytes, then fails with ENOSPC.
    #[derive(Clone, Default)]
    struct Disk(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Disk {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut g = self.0.lock().unwrap();
            if g.1 == 0 {
                return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = b.len().min(g.1);
            g.1 -= n;
            g.0.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn full_disk_drops_counts_and_resumes_with_whole_lines() {
        let disk = Disk::default();
        disk.0.lock().unwrap().1 = 1000;
        let mut s = LineSink::with_writer("disk", Box::new(disk.clone()));
        let line = "x".repeat(99); // 100 bytes with the newline
        for _ in 0..2000 {
            s.line(&line);
        }
        s.flush();
        assert!(s.failing());
        // 1000 bytes written, MAX_PENDING_BYTES held (at least), the rest dropped.
        assert!(s.errors > 0);
        assert_eq!(s.lines + s.errors, 2000);
        assert!(s.lines * 100 <= (1000 + MAX_PENDING_BYTES + WRITE_AT) as u64);

        // Space returns: the next retry writes everything held.
        disk.0.lock().unwrap().1 = usize::MAX;
        std::thread::sleep(RETRY_EVERY);
        s.line("after");
        s.flush();
        assert!(!s.failing());
        let text = String::from_utf8(disk.0.lock().unwrap().0.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, s.lines, "every accepted line written");
        assert!(lines[..lines.len() - 1].iter().all(|l| *l == line));
        assert_eq!(lines.last(), Some(&"after"));
    }

    #[test]
    fn no_retry_storm_while_failing() {
        let disk = Disk::default();
        let mut s = LineSink::with_writer("disk", Box::new(disk.clone()));
        s.line("a");
        s.flush();
        assert!(s.failing());
        disk.0.lock().unwrap().1 = usize::MAX;
        s.flush(); // within RETRY_EVERY: not tried
        assert!(s.failing());
        std::thread::sleep(RETRY_EVERY);
        s.flush();
        assert!(!s.failing());
        assert_eq!(disk.0.lock().unwrap().0, b"a\n");
    }
}
