//! Capture files: pcap (both byte orders, µs and ns) and pcapng (several
//! sections and interfaces with different link types), plain or gzip, from a
//! file, standard input or memory (one reading path for all three). Reads
//! with pcap-parser into one reusable buffer (each read sized to about
//! `READ_RECORDS` records of the file's frames) and calls back once per packet
//! with a borrowed [`RawPacket`]; classic pcap records lying whole in the
//! buffer are read by a 16-byte header parse of our own (pcap-parser's
//! generic block path cost ~80 instructions a packet), everything else
//! (pcapng, records cut by the buffer's end, the end of the file, errors)
//! by pcap-parser. A truncated or damaged file yields everything before the
//! damage and reports where it stopped.

use super::RawPacket;
use crate::error::{io_reason, Error, Result};
use pcap_parser::traits::PcapReaderIterator;
use pcap_parser::{PcapBlockOwned, PcapError};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The capture stream, each read capped at a size the walk sets
/// ([`READ_RECORDS`]).
struct Capped {
    inner: Box<dyn Read + Send>,
    cap: Arc<AtomicUsize>,
}

impl Read for Capped {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.cap.load(Ordering::Relaxed).max(1));
        match buf.get_mut(..n) {
            Some(b) => self.inner.read(b),
            None => self.inner.read(buf),
        }
    }
}

/// Read buffer; also the largest block we accept (a pcapng block claiming
/// more is "absurd" and ends the file with a warning).
pub const MAX_BLOCK_BYTES: usize = 16 << 20;
/// Initial buffer size (grown for a larger block).
const INITIAL_BUFFER: usize = 1 << 20;
/// Records a read brings in: each read is capped near this many records of
/// the capture's average size (between [`MIN_READ`] and [`INITIAL_BUFFER`]).
/// The kernel's copy leaves the bytes in this core's L2 cache; a buffer of
/// small packets parsed while a flood fills the state tables is evicted
/// before it is read (1 MiB of 100-byte packets: a cache miss a packet on
/// DNS floods), while big frames want big reads (fewer system calls).
const READ_RECORDS: usize = 1024;
/// Smallest capped read.
const MIN_READ: usize = 64 << 10;
/// Reads while one block is incomplete (each brings at least one byte or
/// ends the file; 16 MiB in 4 KiB pipe reads is 4,096).
const MAX_REFILLS_PER_BLOCK: usize = 8192;
/// Interfaces per pcapng section.
pub const MAX_INTERFACES: usize = 4096;
/// What [`CaptureFile::from_bytes`] calls its capture in errors and `path()`.
pub const MEMORY_NAME: &str = "(capture in memory)";
/// Files found when expanding directories.
pub const MAX_DIR_FILES: usize = 100_000;

/// How reading a file ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Complete,
    /// Stopped early: reason, including the byte offset and last good frame.
    Damaged(String),
}

/// Summary of one file.
#[derive(Debug, Clone)]
pub struct FileSummary {
    pub frames: u64,
    pub end: End,
}

#[derive(Clone, Copy)]
struct Iface {
    linktype: u32,
    /// Units per second of timestamps.
    resol: u64,
    offset_s: i64,
}

/// Expand the command-line inputs: files as given, directories walked
/// (recursively, sorted) for capture files.
pub fn expand_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in inputs {
        if is_stdin(p) {
            out.push(p.clone());
            continue;
        }
        let md = std::fs::metadata(p).map_err(|e| Error::input(p, io_reason(&e)))?;
        if md.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found, 0)?;
            found.sort();
            if found.is_empty() {
                return Err(Error::input(
                    p,
                    "no capture files (*.pcap, *.pcapng, *.cap, optionally .gz) in this directory",
                ));
            }
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

fn is_capture_name(p: &Path) -> bool {
    let name = p
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    [".pcap", ".pcapng", ".cap", ".dmp", ".ntar"]
        .iter()
        .any(|e| name.ends_with(e))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, depth: usize) -> Result<()> {
    if depth > 16 {
        return Ok(());
    }
    let rd = std::fs::read_dir(dir).map_err(|e| Error::input(dir, io_reason(&e)))?;
    for e in rd.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, out, depth + 1)?;
        } else if is_capture_name(&p) {
            if out.len() >= MAX_DIR_FILES {
                return Err(Error::input(
                    dir,
                    format!("more than {MAX_DIR_FILES} capture files"),
                ));
            }
            out.push(p);
        }
    }
    Ok(())
}

/// `-` reads the capture from standard input (`tcpdump -w - | kaswatch read -`).
pub fn is_stdin(path: &Path) -> bool {
    path == Path::new("-")
}

/// The first two bytes of a gzip member.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The stream as the capture reader sees it: gunzipped when `head` (the
/// first bytes of `r`, still unread by the caller) is the gzip magic. Shared
/// by files, standard input and [`CaptureFile::from_bytes`].
fn decompressing<R: Read + Send + 'static>(head: &[u8], r: R) -> Box<dyn Read + Send> {
    if head.starts_with(&GZIP_MAGIC) {
        Box::new(flate2::read::MultiGzDecoder::new(r))
    } else {
        Box::new(r)
    }
}

fn open_stream(path: &Path) -> Result<Box<dyn Read + Send>> {
    if is_stdin(path) {
        use std::io::BufRead;
        let mut r = std::io::BufReader::with_capacity(1 << 16, std::io::stdin());
        let head = r
            .fill_buf()
            .map_err(|e| Error::input("standard input", io_reason(&e)))?;
        let head: Vec<u8> = head.iter().take(GZIP_MAGIC.len()).copied().collect();
        return Ok(decompressing(&head, r));
    }
    let mut f = std::fs::File::open(path).map_err(|e| Error::input(path, io_reason(&e)))?;
    if f.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(Error::input(path, "is a directory"));
    }
    let mut magic = [0u8; 2];
    let n = f
        .read(&mut magic)
        .map_err(|e| Error::input(path, io_reason(&e)))?;
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(0))
        .map_err(|e| Error::input(path, io_reason(&e)))?;
    let head = magic.get(..n).unwrap_or_default();
    Ok(if head.starts_with(&GZIP_MAGIC) {
        decompressing(head, std::io::BufReader::with_capacity(1 << 16, f))
    } else {
        decompressing(head, f)
    })
}

/// A capture file opened and recognised, ready to read.
pub struct CaptureFile {
    path: PathBuf,
    reader: Box<dyn PcapReaderIterator + Send>,
    /// Bytes a read may bring (shared with the reader's stream).
    read_cap: Arc<AtomicUsize>,
}

impl CaptureFile {
    /// Open and recognise a capture; a clear error for missing, empty,
    /// unreadable or non-capture files.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = if is_stdin(path) {
            Path::new("standard input")
        } else {
            path
        };
        let stream = open_stream(path)?;
        Self::recognise(path, shown, stream)
    }

    /// A capture held in memory (pcap or pcapng, either gzipped), read by
    /// the same code as [`CaptureFile::open`] on a file with these bytes:
    /// same recognition, same frames, same end. [`CaptureFile::path`] and
    /// errors name it [`MEMORY_NAME`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self> {
        let name = Path::new(MEMORY_NAME);
        let head: Vec<u8> = bytes.iter().take(GZIP_MAGIC.len()).copied().collect();
        let stream = decompressing(&head, std::io::Cursor::new(bytes));
        Self::recognise(name, name, stream)
    }

    /// Recognise pcap or pcapng at the start of `stream` (already gunzipped
    /// if need be); `shown` names it in errors.
    fn recognise(path: &Path, shown: &Path, stream: Box<dyn Read + Send>) -> Result<Self> {
        let read_cap = Arc::new(AtomicUsize::new(INITIAL_BUFFER));
        let stream = Capped {
            inner: stream,
            cap: Arc::clone(&read_cap),
        };
        let reader = match pcap_parser::create_reader(INITIAL_BUFFER, stream) {
            Ok(r) => r,
            Err(PcapError::Eof) => return Err(Error::input(shown, "empty file, not a capture")),
            Err(PcapError::ReadError) => {
                return Err(Error::input(
                    shown,
                    "read error (corrupt gzip data or unreadable file)",
                ))
            }
            Err(PcapError::HeaderNotRecognized) => {
                return Err(Error::input(
                    shown,
                    "not a pcap or pcapng capture (unknown file header)",
                ))
            }
            Err(e) => {
                return Err(Error::input(
                    shown,
                    format!("not a readable capture: {e:?}"),
                ))
            }
        };
        Ok(CaptureFile {
            path: path.to_path_buf(),
            reader,
            read_cap,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read every packet, calling `f` for each. Frames are numbered from 1.
    pub fn for_each(mut self, mut f: impl FnMut(u64, RawPacket<'_>)) -> FileSummary {
        let mut w = Walk {
            capacity: INITIAL_BUFFER,
            ..Walk::default()
        };
        let end = loop {
            if let Some(why) =
                short_ng_block(self.reader.data(), w.ng_big_endian, w.offset, w.frames)
            {
                break End::Damaged(why);
            }
            // Classic pcap: every whole record in the buffer is read here in
            // one pass (16-byte header, then the data; one look at the buffer
            // and one consume per fill, not per packet; each record takes at
            // least 16 bytes, so the pass ends within the buffer), without
            // the generic block parser. A record cut by the buffer's end, the
            // end of the file and every error take the general path below.
            if let Some(big_endian) = w.fast {
                let data = self.reader.data();
                let mut taken = 0usize;
                while let Some(consumed) =
                    w.legacy_record(data.get(taken..).unwrap_or_default(), big_endian, &mut f)
                {
                    taken += consumed;
                    w.offset += consumed as u64;
                }
                if taken > 0 {
                    self.reader.consume_noshift(taken);
                    continue;
                }
            }
            match self.reader.next() {
                Ok((consumed, block)) => {
                    if let Err(end) = w.block(block, &mut f) {
                        break end;
                    }
                    w.offset += consumed as u64;
                    // No shift here: refill() moves only the partial tail block.
                    self.reader.consume_noshift(consumed);
                }
                Err(PcapError::Incomplete(_)) => {
                    if let Some(avg) = w.offset.checked_div(w.frames) {
                        let want = usize::try_from(avg)
                            .unwrap_or(usize::MAX)
                            .saturating_mul(READ_RECORDS)
                            .clamp(MIN_READ, INITIAL_BUFFER);
                        self.read_cap.store(want, Ordering::Relaxed);
                    }
                    if let Some(end) = refill(self.reader.as_mut(), &mut w, &self.read_cap) {
                        break end;
                    }
                }
                // A block larger than the buffer (jumbo or TSO frames, big
                // pcapng blocks): grow it, at most to MAX_BLOCK_BYTES.
                Err(PcapError::BufferTooSmall) if w.capacity < MAX_BLOCK_BYTES => {
                    if !w.grow(self.reader.as_mut()) {
                        break w.stop(&PcapError::<&[u8]>::BufferTooSmall);
                    }
                    if let Err(e) = self.reader.refill() {
                        break End::Damaged(format!("read error at byte {}: {e:?}", w.offset));
                    }
                }
                Err(e) => break w.stop(&e),
            }
        };
        FileSummary {
            frames: w.frames,
            end,
        }
    }
}

/// Where reading a file has got to: the interfaces described so far and
/// the frame count, byte offset and timestamp of the last packet.
#[derive(Default)]
struct Walk {
    ifaces: Vec<Iface>,
    legacy: Option<Iface>,
    frames: u64,
    offset: u64,
    last_ts: u64,
    /// Byte order of the current pcapng section (None: legacy pcap).
    ng_big_endian: Option<bool>,
    /// A classic pcap file of standard records, big-endian or not: read
    /// by [`Walk::legacy_record`].
    fast: Option<bool>,
    /// The reader's buffer size: [`INITIAL_BUFFER`], grown for larger
    /// blocks up to [`MAX_BLOCK_BYTES`].
    capacity: usize,
}

impl Walk {
    /// Grow the reader's buffer fourfold, at most to [`MAX_BLOCK_BYTES`];
    /// false when it is that big already or cannot grow.
    fn grow(&mut self, reader: &mut (dyn PcapReaderIterator + Send)) -> bool {
        if self.capacity >= MAX_BLOCK_BYTES {
            return false;
        }
        self.capacity = self.capacity.saturating_mul(4).min(MAX_BLOCK_BYTES);
        reader.grow(self.capacity)
    }

    /// Take in one block, calling `f` for a packet; `Err` ends the file.
    fn block(
        &mut self,
        block: PcapBlockOwned<'_>,
        f: &mut impl FnMut(u64, RawPacket<'_>),
    ) -> std::result::Result<(), End> {
        let offset = self.offset;
        match block {
            PcapBlockOwned::LegacyHeader(h) => {
                // The "modified" format's records are longer: general path.
                self.fast = (!h.is_modified_format()).then(|| h.is_bigendian());
                self.legacy = Some(Iface {
                    linktype: h.network.0 as u32,
                    resol: if h.is_nanosecond_precision() {
                        1_000_000_000
                    } else {
                        1_000_000
                    },
                    offset_s: 0,
                });
            }
            PcapBlockOwned::Legacy(b) => {
                let Some(i) = self.legacy else {
                    return Err(End::Damaged(format!(
                        "packet before file header at byte {offset}"
                    )));
                };
                self.frames += 1;
                let ts = to_ns(u64::from(b.ts_sec), u64::from(b.ts_usec), i);
                self.last_ts = ts;
                let data = b.data.get(..b.caplen as usize).unwrap_or(b.data);
                let raw = RawPacket {
                    ts,
                    linktype: i.linktype,
                    interface: 0,
                    data,
                    wire_len: b.origlen,
                };
                f(self.frames, raw);
            }
            PcapBlockOwned::NG(blk) => self.ng_block(blk, f)?,
        }
        Ok(())
    }

    /// One classic pcap record at the start of `data` (the reader's
    /// buffered bytes), if it is there whole: calls `f` and returns the
    /// bytes it took. The same frame as pcap-parser's record parser gives.
    #[inline]
    fn legacy_record(
        &mut self,
        data: &[u8],
        big_endian: bool,
        f: &mut impl FnMut(u64, RawPacket<'_>),
    ) -> Option<usize> {
        let i = self.legacy?;
        let head: [u8; 16] = data.get(..16)?.try_into().ok()?;
        let word = |at: usize| {
            let b = [0, 1, 2, 3].map(|k| head.get(at + k).copied().unwrap_or(0));
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        let (ts_sec, ts_frac, caplen, origlen) = (word(0), word(4), word(8), word(12));
        let end = 16usize.checked_add(caplen as usize)?;
        let packet = data.get(16..end)?;
        self.frames += 1;
        let ts = to_ns(u64::from(ts_sec), u64::from(ts_frac), i);
        self.last_ts = ts;
        f(
            self.frames,
            RawPacket {
                ts,
                linktype: i.linktype,
                interface: 0,
                data: packet,
                wire_len: origlen,
            },
        );
        Some(end)
    }

    /// A pcapng block: section and interface descriptions, packets.
    fn ng_block(
        &mut self,
        blk: pcap_parser::Block<'_>,
        f: &mut impl FnMut(u64, RawPacket<'_>),
    ) -> std::result::Result<(), End> {
        use pcap_parser::Block;
        let offset = self.offset;
        match blk {
            Block::SectionHeader(shb) => {
                self.ng_big_endian = Some(shb.big_endian());
                self.ifaces.clear();
            }
            Block::InterfaceDescription(idb) => {
                if self.ifaces.len() >= MAX_INTERFACES {
                    return Err(End::Damaged(format!(
                        "more than {MAX_INTERFACES} interfaces at byte {offset}"
                    )));
                }
                self.ifaces.push(Iface {
                    linktype: idb.linktype.0 as u32,
                    resol: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                    offset_s: idb.ts_offset(),
                });
            }
            Block::EnhancedPacket(epb) => {
                self.frames += 1;
                let Some(i) = self.ifaces.get(epb.if_id as usize).copied() else {
                    return Err(End::Damaged(format!(
                        "frame {} names interface {} which was never described (byte {offset})",
                        self.frames, epb.if_id
                    )));
                };
                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                let ts = to_ns(raw / i.resol, raw % i.resol, i);
                self.last_ts = ts;
                let data = epb.data.get(..epb.caplen as usize).unwrap_or(epb.data);
                let raw = RawPacket {
                    ts,
                    linktype: i.linktype,
                    interface: epb.if_id,
                    data,
                    wire_len: epb.origlen,
                };
                f(self.frames, raw);
            }
            Block::SimplePacket(spb) => {
                self.frames += 1;
                let Some(i) = self.ifaces.first().copied() else {
                    return Err(End::Damaged(format!(
                        "simple packet without interface at byte {offset}"
                    )));
                };
                let raw = RawPacket {
                    ts: self.last_ts,
                    linktype: i.linktype,
                    interface: 0,
                    data: spb.data,
                    wire_len: spb.origlen,
                };
                f(self.frames, raw);
            }
            _ => {}
        }
        Ok(())
    }

    /// How an error other than `Incomplete` ends the file.
    fn stop<I>(&self, e: &PcapError<I>) -> End {
        let (offset, frames) = (self.offset, self.frames);
        match e {
            PcapError::Eof => End::Complete,
            PcapError::UnexpectedEof => truncated(offset, frames),
            PcapError::BufferTooSmall => End::Damaged(format!(
                "block at byte {offset} is larger than {MAX_BLOCK_BYTES} bytes (corrupt length?); stopped after frame {frames}"
            )),
            PcapError::ReadError => End::Damaged(format!(
                "read error at byte {offset} (corrupt gzip data?); stopped after frame {frames}"
            )),
            e => End::Damaged(format!(
                "damaged block at byte {offset} ({}); stopped after frame {frames}",
                short_err(e)
            )),
        }
    }
}

/// More bytes for an incomplete block: refill (a capped read first, then
/// uncapped reads until the block is whole: a pipe or a gzip stream may
/// return less than asked), growing the buffer (up to [`MAX_BLOCK_BYTES`])
/// when it is full. `Some` ends the file.
fn refill(
    reader: &mut (dyn PcapReaderIterator + Send),
    w: &mut Walk,
    cap: &AtomicUsize,
) -> Option<End> {
    for _ in 0..MAX_REFILLS_PER_BLOCK {
        let before = reader.data().len();
        if let Err(e) = reader.refill() {
            return Some(End::Damaged(format!(
                "read error at byte {}: {e:?}",
                w.offset
            )));
        }
        // refill made no progress: the last block is cut short.
        if let Some(why) = short_ng_block(reader.data(), w.ng_big_endian, w.offset, w.frames) {
            return Some(End::Damaged(why));
        }
        match reader.next() {
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    return Some(truncated(w.offset, w.frames));
                }
                cap.store(usize::MAX, Ordering::Relaxed);
                // No room was left to read into: a bigger buffer.
                if reader.data().len() <= before && !w.grow(reader) {
                    return Some(truncated(w.offset, w.frames));
                }
            }
            Err(PcapError::Eof) => return Some(End::Complete),
            _ => return None,
        }
    }
    Some(truncated(w.offset, w.frames))
}

/// Every pcapng block is at least 12 bytes (type and two lengths), but
/// pcap-parser 0.17 subtracts 12 from the declared length unchecked for
/// blocks whose fixed header is shorter (a Process Information Block
/// declaring 4..=11 bytes: a panic with overflow checks, a 4 GiB block
/// without). Such a block at the front of `data` ends the file here.
fn short_ng_block(
    data: &[u8],
    big_endian: Option<bool>,
    offset: u64,
    frames: u64,
) -> Option<String> {
    let be = big_endian?;
    let typ = data.get(..4)?;
    if typ == [0x0a, 0x0d, 0x0d, 0x0a] {
        return None; // a new section: its own parser checks its length
    }
    let raw: [u8; 4] = data.get(4..8)?.try_into().ok()?;
    let len = if be {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    };
    (len < 12).then(|| {
        format!("damaged block at byte {offset} (length {len} is less than 12); stopped after frame {frames}")
    })
}

fn short_err<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, k) => format!("{k:?}"),
        PcapError::OwnedNomError(_, k) => format!("{k:?}"),
        PcapError::HeaderNotRecognized => "unrecognised header".into(),
        _ => "parse error".into(),
    }
}

fn truncated(offset: u64, frames: u64) -> End {
    End::Damaged(format!(
        "truncated: the file ends inside a block at byte {offset}; read {frames} frames before it"
    ))
}

fn to_ns(secs: u64, frac: u64, i: Iface) -> u64 {
    let secs = (secs as i64).saturating_add(i.offset_s).max(0) as u64;
    let frac_ns = if i.resol == 1_000_000_000 {
        frac
    } else {
        (frac as u128 * 1_000_000_000u128 / i.resol as u128) as u64
    };
    secs.saturating_mul(1_000_000_000).saturating_add(frac_ns)
}

#[cfg(test)]
mod tests;
