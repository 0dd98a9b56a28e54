//! Line-oriented writers: JSON-lines events (`--events PATH|-`) and the
//! `--all-names` TSV log of every extracted name, matched or not, in the
//! column order of the tshark truth files. Write errors are counted, never
//! fatal (a full disk must not stop the sensor).

use crate::error::{Error, Result};
use crate::event::Event;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A buffered line sink: a file or stdout.
pub struct LineSink {
    out: BufWriter<Box<dyn Write + Send>>,
    pub errors: u64,
    pub lines: u64,
}

impl LineSink {
    /// `-` is stdout.
    pub fn open(path: &Path) -> Result<Self> {
        let w: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(std::io::stdout())
        } else {
            Box::new(
                std::fs::File::create(path)
                    .map_err(|e| Error::input(path, crate::signatures::io_reason(&e)))?,
            )
        };
        Ok(LineSink {
            out: BufWriter::with_capacity(1 << 16, w),
            errors: 0,
            lines: 0,
        })
    }

    pub fn event(&mut self, e: &Event) {
        let r = serde_json::to_writer(&mut self.out, e)
            .map_err(std::io::Error::other)
            .and_then(|_| self.out.write_all(b"\n"));
        self.account(r);
    }

    pub fn line(&mut self, s: &str) {
        let r = self
            .out
            .write_all(s.as_bytes())
            .and_then(|_| self.out.write_all(b"\n"));
        self.account(r);
    }

    fn account(&mut self, r: std::io::Result<()>) {
        match r {
            Ok(()) => self.lines += 1,
            Err(_) => self.errors += 1,
        }
    }

    pub fn flush(&mut self) {
        if self.out.flush().is_err() {
            self.errors += 1;
        }
    }
}
