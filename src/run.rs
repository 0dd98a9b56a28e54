//! Drivers for the subcommands: validate flags into settings, load
//! signatures, open inputs, push packets through the pipeline (inline for
//! one worker, threads for several) and print the report and summary.

use crate::capture::bpf::Filter;
use crate::capture::file::{expand_inputs, CaptureFile, End};
use crate::capture::RawPacket;
use crate::cli::{CheckArgs, Common, ReadArgs};
use crate::error::{Error, Result};
use crate::evidence::{EvidenceSet, Selection};
use crate::export::jsonlog::LineSink;
use crate::export::metrics::{self, Backfill, IfaceStats};
use crate::export::report;
use crate::hosts::HostTable;
use crate::matcher::Matcher;
use crate::pipeline::shard::Sharder;
use crate::pipeline::{Merger, PktMeta, Worker, WorkerConfig};
use crate::signatures::{Category, SignatureSet};
use crate::stats::Counters;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Most worker threads.
pub const MAX_WORKERS: usize = 64;

/// Signature paths: as given, else $KASWATCH_SIGNATURES, ./signatures, the
/// installed share directory, or the source tree's set.
pub fn signature_paths(given: &[PathBuf]) -> Vec<PathBuf> {
    if !given.is_empty() {
        return given.to_vec();
    }
    if let Some(p) = std::env::var_os("KASWATCH_SIGNATURES") {
        return vec![PathBuf::from(p)];
    }
    let local = PathBuf::from("signatures");
    if local.is_dir() {
        return vec![local];
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(share) = exe
            .parent()
            .and_then(Path::parent)
            .map(|p| p.join("share/kaswatch/signatures"))
        {
            if share.is_dir() {
                return vec![share];
            }
        }
    }
    vec![PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/signatures"
    ))]
}

pub fn load_matcher(given: &[PathBuf]) -> Result<(SignatureSet, Arc<Matcher>)> {
    let set = SignatureSet::load_paths(&signature_paths(given))?;
    let m = Arc::new(Matcher::new(&set));
    Ok((set, m))
}

/// Settings shared by read and live.
pub struct Settings {
    pub max_hosts: usize,
    pub host_idle: Option<u64>,
    pub workers: usize,
    /// Which hosts are devices (`--evidence`, `--count-resolvers`).
    pub selection: Selection,
    /// `--group-by mac`.
    pub group_by_mac: bool,
}

impl Settings {
    /// An empty host table with these settings.
    pub fn host_table(&self) -> HostTable {
        let mut t = HostTable::new(self.max_hosts, self.host_idle);
        t.selection = self.selection;
        t.group_by_mac = self.group_by_mac;
        t
    }
}

pub fn settings(c: &Common) -> Result<Settings> {
    let host_idle = match &c.host_idle {
        Some(s) => Some(
            crate::timefmt::parse_duration(s)
                .map_err(|e| Error::Usage(format!("--host-idle: {e}")))?,
        ),
        None => None,
    };
    if c.max_hosts == 0 {
        return Err(Error::Usage("--max-hosts must be at least 1".into()));
    }
    // Default: half the cores (at least one). The reading thread is worker 0 and
    // also does the I/O; on a 2-core box one worker is fastest for files.
    let workers = c.workers.unwrap_or_else(|| {
        (std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            / 2)
        .max(1)
    });
    if workers == 0 || workers > MAX_WORKERS {
        return Err(Error::Usage(format!(
            "--workers must be between 1 and {MAX_WORKERS}"
        )));
    }
    let evidence = match &c.evidence {
        Some(s) => EvidenceSet::parse(s).map_err(|e| Error::Usage(format!("--evidence: {e}")))?,
        None => EvidenceSet::DEFAULT,
    };
    Ok(Settings {
        max_hosts: c.max_hosts,
        host_idle,
        workers,
        selection: Selection {
            evidence,
            count_resolvers: c.count_resolvers,
        },
        group_by_mac: c.group_by == crate::cli::GroupBy::Mac,
    })
}

/// Result of a read run, for the summary line and tests.
pub struct ReadOutcome {
    pub merger: Merger,
    pub counters: Counters,
    pub files: usize,
    pub warnings: Vec<String>,
    pub elapsed: f64,
}

/// Everything `read` needs, already validated.
pub struct ReadJob {
    pub files: Vec<PathBuf>,
    pub matcher: Arc<Matcher>,
    pub settings: Settings,
    pub filter: Option<Filter>,
    pub events: Option<LineSink>,
    pub all_names: Option<LineSink>,
    /// Signatures loaded per category (for metrics).
    pub signature_counts: Vec<(Category, usize)>,
    /// `--backfill FILE --step DUR`.
    pub backfill: Option<Backfill>,
    /// `--inventory FILE`.
    pub inventory: Option<Arc<crate::inventory::Inventory>>,
    /// Show progress on stderr (a terminal, without -q).
    pub progress: bool,
}

impl ReadJob {
    pub fn from_args(a: &ReadArgs) -> Result<Self> {
        let settings = settings(&a.common)?;
        let filter = a.filter.as_deref().map(Filter::new).transpose()?;
        let (set, matcher) = load_matcher(&a.common.signatures)?;
        let files = expand_inputs(&a.inputs)?;
        // Recognise every named input before reading any, so a typo fails fast.
        // (Standard input can be read only once: it is recognised when read.)
        if files
            .iter()
            .filter(|f| crate::capture::file::is_stdin(f))
            .count()
            > 1
        {
            return Err(Error::Usage(
                "standard input (-) can be read only once".into(),
            ));
        }
        for f in files.iter().filter(|f| !crate::capture::file::is_stdin(f)) {
            CaptureFile::open(f)?;
        }
        let events = a.common.events.as_deref().map(LineSink::open).transpose()?;
        let all_names = a.all_names.as_deref().map(LineSink::open).transpose()?;
        let step = crate::timefmt::parse_duration(&a.step)
            .map_err(|e| Error::Usage(format!("--step: {e}")))?;
        let backfill = a
            .backfill
            .as_deref()
            .map(|p| Backfill::create(p, step))
            .transpose()?;
        let signature_counts = set.count_by_category();
        let inventory = crate::inventory::Inventory::load_opt(a.common.inventory.as_deref())?;
        use std::io::IsTerminal;
        let progress = !a.quiet && std::io::stderr().is_terminal();
        Ok(ReadJob {
            files,
            matcher,
            settings,
            filter,
            events,
            all_names,
            signature_counts,
            backfill,
            inventory,
            progress,
        })
    }

    /// Run the job.
    pub fn run(mut self) -> Result<ReadOutcome> {
        let start = Instant::now();
        let cfg = WorkerConfig {
            all_names: self.all_names.is_some(),
        };
        let mut merger = Merger::new(self.matcher.clone(), self.settings.host_table());
        merger.events = self.events.take();
        merger.all_names = self.all_names.take();
        merger.signature_counts = std::mem::take(&mut self.signature_counts);
        merger.backfill = self.backfill.take();
        merger.inventory = self.inventory.take();
        merger.inputs = self.files.iter().map(|p| p.display().to_string()).collect();
        let workers = self.settings.workers;
        let mut progress = self.progress.then(|| Progress::new(&self.files));
        let files = &self.files;
        let (filter, matcher) = (self.filter.as_mut(), &self.matcher);
        let (counters, warnings) = with_merger_thread(&mut merger, |m| {
            if workers <= 1 {
                pipelined(
                    files,
                    filter,
                    progress.as_mut(),
                    matcher,
                    cfg,
                    m,
                    Batching::DEFAULT,
                )
            } else {
                threaded(files, filter, progress.as_mut(), matcher, cfg, workers, m)
            }
        })?;
        // The bar goes before anything else is printed (on errors too: its drop clears it).
        drop(progress);
        merger.finish();
        merger.flush();
        let mut counters = counters;
        counters.merge(&merger.counters);
        Ok(ReadOutcome {
            merger,
            counters,
            files: self.files.len(),
            warnings,
            elapsed: start.elapsed().as_secs_f64(),
        })
    }
}

/// Read every file in order, numbering packets across the run (1-based
/// frames per file), applying `--filter`, and calling `each` for the packets
/// that pass. Returns one warning per damaged file.
fn for_each_packet(
    files: &[PathBuf],
    mut filter: Option<&mut Filter>,
    mut progress: Option<&mut Progress>,
    mut each: impl FnMut(PktMeta, &RawPacket<'_>),
) -> Result<Vec<String>> {
    let mut seq = 0u64;
    let mut warnings = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let summary = CaptureFile::open(path)?.for_each(|frame, raw| {
            seq += 1;
            if let Some(p) = progress.as_deref_mut() {
                p.packet(i, raw.data.len());
            }
            if let Some(f) = filter.as_deref_mut() {
                if !f.matches(raw.linktype, raw.data) {
                    return;
                }
            }
            each(
                PktMeta {
                    seq,
                    input: i as u32,
                    frame,
                },
                &raw,
            );
        });
        if let Some(p) = progress.as_deref_mut() {
            p.file_done(i);
        }
        if let End::Damaged(why) = summary.end {
            warnings.push(format!("{}: {why}", path.display()));
        }
    }
    Ok(warnings)
}

/// Packets between updates of the progress bar.
const PROGRESS_EVERY: u64 = 4096;

/// Progress of `read` on stderr: bytes of the total (estimated from each
/// packet's size and the file format's per-record overhead, settled at the
/// end of each file; a gzip file's total is its uncompressed size), packets
/// (and the total they extrapolate to), rate and time left. Cleared on drop.
pub struct Progress {
    bar: indicatif::ProgressBar,
    /// (size, per-record overhead) of each input; size 0 when unknown (standard input).
    inputs: Vec<(u64, u64)>,
    /// Sizes of the files finished so far.
    done: u64,
    /// Estimated bytes read of the current file.
    cur: u64,
    packets: u64,
    /// The total is unknown (standard input): a spinner without ETA.
    open_ended: bool,
}

impl Progress {
    pub fn new(files: &[PathBuf]) -> Progress {
        let inputs: Vec<(u64, u64)> = files.iter().map(|f| input_size(f)).collect();
        let open_ended = inputs.iter().any(|(size, _)| *size == 0);
        let total: u64 = inputs.iter().map(|(size, _)| size).sum();
        let bar = indicatif::ProgressBar::with_draw_target(
            (!open_ended).then_some(total),
            indicatif::ProgressDrawTarget::stderr_with_hz(8),
        );
        let template = if open_ended {
            "{spinner} {bytes} read · {msg} · {bytes_per_sec} · {elapsed}"
        } else {
            "{bytes}/{total_bytes} {percent}% · {msg} · {bytes_per_sec} · {eta} left [{wide_bar}]"
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message("0 packets");
        bar.enable_steady_tick(std::time::Duration::from_millis(250));
        Progress {
            bar,
            inputs,
            done: 0,
            cur: 0,
            packets: 0,
            open_ended,
        }
    }

    fn packet(&mut self, input: usize, len: usize) {
        let (size, overhead) = self.inputs.get(input).copied().unwrap_or((0, 16));
        self.cur = self.cur.saturating_add(len as u64 + overhead);
        if size > 0 {
            self.cur = self.cur.min(size);
        }
        self.packets += 1;
        if self.packets % PROGRESS_EVERY == 0 {
            self.show();
        }
    }

    fn file_done(&mut self, input: usize) {
        let size = self.inputs.get(input).map_or(0, |i| i.0);
        self.done += if size > 0 { size } else { self.cur };
        self.cur = 0;
        self.show();
    }

    fn show(&self) {
        let pos = self.done + self.cur;
        self.bar.set_position(pos);
        let total = self.bar.length().unwrap_or(0);
        let msg = if self.open_ended || pos == 0 || pos >= total {
            format!("{} packets", count(self.packets))
        } else {
            let est = (self.packets as f64 * total as f64 / pos as f64) as u64;
            format!("{}/~{} packets", count(self.packets), count(est))
        };
        self.bar.set_message(msg);
    }
}

/// A packet count in a few characters: 950, 14.2k, 3.1M.
fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// (bytes, per-record overhead) of a capture for the progress estimate: the
/// file size (a gzip file's uncompressed size from its trailer) and 16 bytes
/// per pcap record or 32 per pcapng packet block. (0, 16) when unknown.
fn input_size(path: &Path) -> (u64, u64) {
    use std::io::{Read, Seek, SeekFrom};
    if crate::capture::file::is_stdin(path) {
        return (0, 16);
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return (0, 16);
    };
    let len = f.metadata().map_or(0, |m| m.len());
    let mut head = [0u8; 4];
    if f.read_exact(&mut head).is_err() {
        return (len, 16);
    }
    let (size, head) = if head[..2] == [0x1f, 0x8b] {
        // ISIZE: the uncompressed size modulo 2^32 (of the last member).
        let mut isize = [0u8; 4];
        let size = match f
            .seek(SeekFrom::End(-4))
            .and_then(|_| f.read_exact(&mut isize))
        {
            Ok(()) => u64::from(u32::from_le_bytes(isize)).max(len),
            Err(_) => len,
        };
        let mut inner = [0u8; 4];
        let ok = std::fs::File::open(path)
            .map(|g| flate2::read::MultiGzDecoder::new(g).read_exact(&mut inner))
            .is_ok_and(|r| r.is_ok());
        (size, if ok { inner } else { [0; 4] })
    } else {
        (len, head)
    };
    let overhead = if head == [0x0a, 0x0d, 0x0d, 0x0a] {
        32
    } else {
        16
    };
    (size, overhead)
}

/// Packets per batch handed to a worker thread.
const BATCH_PACKETS: usize = 1024;
/// Batches in flight per worker thread (bounds memory: ~1.5 MiB per batch of full-size frames).
const BATCHES_IN_FLIGHT: usize = 2;

/// One packet of a batch: metadata and its place in the batch's byte arena.
#[derive(Clone, Copy)]
struct Slot {
    meta: PktMeta,
    ts: u64,
    linktype: u32,
    interface: u32,
    wire_len: u32,
    off: usize,
    len: usize,
}

struct Batch {
    round: u64,
    data: Vec<u8>,
    pkts: Vec<Slot>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            round: 0,
            data: Vec::with_capacity(BATCH_PACKETS * 1600),
            pkts: Vec::with_capacity(BATCH_PACKETS),
        }
    }

    /// Copy one packet in.
    fn push(&mut self, meta: PktMeta, raw: &RawPacket<'_>) {
        let off = self.data.len();
        self.data.extend_from_slice(raw.data);
        self.pkts.push(Slot {
            meta,
            ts: raw.ts,
            linktype: raw.linktype,
            interface: raw.interface,
            wire_len: raw.wire_len,
            off,
            len: raw.data.len(),
        });
    }

    /// Run every packet through `w`, in order.
    fn process(&self, w: &mut Worker) {
        for s in &self.pkts {
            let data = self.data.get(s.off..s.off + s.len).unwrap_or(&[]);
            let raw = RawPacket {
                ts: s.ts,
                linktype: s.linktype,
                interface: s.interface,
                data,
                wire_len: s.wire_len,
            };
            w.process(s.meta, &raw);
        }
    }
}

/// A worker thread: processes each batch, sends its observations with the
/// round number and returns the emptied batch for reuse; ends when the
/// batch channel closes, returning its counters.
fn spawn_worker(
    matcher: Arc<Matcher>,
    cfg: WorkerConfig,
    rx: crossbeam_channel::Receiver<Batch>,
    res_tx: crossbeam_channel::Sender<(u64, Vec<Obs>)>,
    free_tx: crossbeam_channel::Sender<Batch>,
) -> std::thread::JoinHandle<Counters> {
    std::thread::spawn(move || {
        let mut w = Worker::new(matcher, cfg);
        for mut b in rx {
            b.process(&mut w);
            let _ = res_tx.send((b.round, w.take()));
            b.data.clear();
            b.pkts.clear();
            let _ = free_tx.try_send(b);
        }
        w.counters()
    })
}

type Obs = crate::pipeline::Obs;

/// Observations of one round, collected until every worker has reported.
#[derive(Default)]
struct Rounds {
    pending: std::collections::BTreeMap<u64, (usize, Vec<Obs>)>,
    next: u64,
}

impl Rounds {
    fn add(&mut self, round: u64, obs: Vec<Obs>) {
        let e = self.pending.entry(round).or_insert((0, Vec::new()));
        e.0 += 1;
        e.1.extend(obs);
    }
    /// Hand complete rounds to the merger in order, each sorted by packet
    /// sequence.
    fn apply_ready(&mut self, workers: usize, merger: &mut MergerThread<'_>) {
        while self
            .pending
            .get(&self.next)
            .is_some_and(|(n, _)| *n >= workers)
        {
            if let Some((_, mut obs)) = self.pending.remove(&self.next) {
                obs.sort_by_key(|o| o.meta.seq);
                merger.send(obs);
            }
            self.next += 1;
        }
    }
}

/// How a single-worker run hands observations to its merger thread.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Batching {
    /// Observations handed over at once.
    pub obs: usize,
    /// Packets after which pending observations go even when fewer than
    /// `obs` (a quiet stretch does not hold them back).
    pub packets: u32,
}

impl Batching {
    /// 1,024 observations (~330 KiB: a batch stays in the L2 cache) or
    /// 4,096 packets, whichever comes first.
    pub const DEFAULT: Batching = Batching {
        obs: 1024,
        packets: 4096,
    };
}

/// Batches queued for the merger thread before the reader waits for it;
/// with the batch being filled and one being applied, at most
/// `MAX_OBS_BATCHES_IN_FLIGHT + 2` vectors exist (~2 MiB at the default).
const MAX_OBS_BATCHES_IN_FLIGHT: usize = 4;

/// The merger on a thread of its own, as in `live`: it applies the batches
/// of observations it is given in the order given. Batches travel as whole
/// vectors (no copy of an observation) and go back empty to be refilled (no
/// allocation once [`MAX_OBS_BATCHES_IN_FLIGHT`] + 2 exist); the sender
/// waits while that many are queued.
struct MergerThread<'scope> {
    tx: crossbeam_channel::Sender<Vec<Obs>>,
    free: crossbeam_channel::Receiver<Vec<Obs>>,
    applier: std::thread::ScopedJoinHandle<'scope, ()>,
    /// The thread is gone (it panicked): later batches are not applied.
    stopped: bool,
}

impl<'scope> MergerThread<'scope> {
    fn spawn<'env>(
        s: &'scope std::thread::Scope<'scope, 'env>,
        merger: &'scope mut Merger,
    ) -> Result<Self> {
        use crossbeam_channel::bounded;
        let (tx, rx) = bounded::<Vec<Obs>>(MAX_OBS_BATCHES_IN_FLIGHT);
        let (free_tx, free) = bounded::<Vec<Obs>>(MAX_OBS_BATCHES_IN_FLIGHT + 2);
        let applier = std::thread::Builder::new()
            .name("kaswatch-merger".into())
            .spawn_scoped(s, move || {
                for mut batch in rx {
                    for o in &batch {
                        merger.apply(o);
                    }
                    batch.clear();
                    // The sender makes a new vector when none comes back.
                    let _ = free_tx.try_send(batch);
                }
            })
            .map_err(|e| Error::runtime("merger", e.to_string()))?;
        Ok(MergerThread {
            tx,
            free,
            applier,
            stopped: false,
        })
    }

    /// An empty vector to fill (one the merger gave back, or a new one).
    fn fresh(&self, capacity: usize) -> Vec<Obs> {
        self.free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity))
    }

    fn send(&mut self, batch: Vec<Obs>) {
        self.stopped |= self.tx.send(batch).is_err();
    }

    /// Wait until every batch sent is applied. `Err` when the thread
    /// stopped early.
    fn finish(self) -> Result<()> {
        drop(self.tx);
        let joined = self.applier.join();
        if self.stopped || joined.is_err() {
            return Err(Error::runtime("merger", "the merger thread stopped early"));
        }
        Ok(())
    }
}

/// Run `read` (the reading side of a run) with `merger` on a
/// [`MergerThread`]; returns once every batch `read` sent is applied.
fn with_merger_thread<T>(
    merger: &mut Merger,
    read: impl FnOnce(&mut MergerThread<'_>) -> Result<T>,
) -> Result<T> {
    std::thread::scope(|s| {
        let mut to_merger = MergerThread::spawn(s, merger)?;
        let r = read(&mut to_merger);
        let applied = to_merger.finish();
        let r = r?;
        applied?;
        Ok(r)
    })
}

/// Single-worker run: this thread reads and parses (the worker), the
/// [`MergerThread`] applies the observations in packet order, so the output
/// is the same as applying each packet's observations in place; under a
/// flood of matching traffic (every packet a callback) host and attribution
/// upkeep no longer adds to the reading thread's time.
fn pipelined(
    files: &[PathBuf],
    filter: Option<&mut Filter>,
    progress: Option<&mut Progress>,
    matcher: &Arc<Matcher>,
    cfg: WorkerConfig,
    to_merger: &mut MergerThread<'_>,
    batching: Batching,
) -> Result<(Counters, Vec<String>)> {
    let mut w = Worker::new(matcher.clone(), cfg);
    let mut since = 0u32;
    let hand_over = |w: &mut Worker, m: &mut MergerThread<'_>| {
        w.flush_held();
        let full = std::mem::replace(&mut w.out, m.fresh(batching.obs));
        m.send(full);
    };
    let damaged = for_each_packet(files, filter, progress, |meta, raw| {
        w.process(meta, raw);
        since += 1;
        if w.out.len() >= batching.obs || (since >= batching.packets && !w.out.is_empty()) {
            since = 0;
            hand_over(&mut w, to_merger);
        }
    })?;
    w.flush_held();
    if !w.out.is_empty() {
        hand_over(&mut w, to_merger);
    }
    Ok((w.counters(), damaged))
}

/// Multi-worker run. The reading thread is worker 0 (it processes its own
/// shard inline, no copy); packets of the other shards are copied into
/// per-worker batches. The shard is a symmetric hash of the innermost address
/// pair (through tunnels), so the connections inside one tunnel spread over
/// the workers; fragments go where their datagram's first fragment says,
/// those that come before it being held in the reader ([`Sharder`]). All
/// batches of a round go out together, and the merger applies each round's
/// observations sorted by packet sequence, so the output equals a
/// single-worker run (a held fragment keeps its sequence number and makes no
/// observation of its own).
#[allow(clippy::too_many_arguments)]
fn threaded(
    files: &[PathBuf],
    filter: Option<&mut Filter>,
    progress: Option<&mut Progress>,
    matcher: &Arc<Matcher>,
    cfg: WorkerConfig,
    workers: usize,
    merger: &mut MergerThread<'_>,
) -> Result<(Counters, Vec<String>)> {
    use crossbeam_channel::bounded;
    let threads = workers - 1;
    let (res_tx, res_rx) = bounded::<(u64, Vec<Obs>)>(threads * (BATCHES_IN_FLIGHT + 2));
    let (free_tx, free_rx) = bounded::<Batch>(threads * (BATCHES_IN_FLIGHT + 2));
    let mut txs = Vec::new();
    let mut handles = Vec::new();
    for _ in 0..threads {
        let (tx, rx) = bounded::<Batch>(BATCHES_IN_FLIGHT);
        txs.push(tx);
        handles.push(spawn_worker(
            matcher.clone(),
            cfg,
            rx,
            res_tx.clone(),
            free_tx.clone(),
        ));
    }
    drop(res_tx);
    let mut local = Worker::new(matcher.clone(), cfg);
    let mut sharder = Sharder::new(workers, ahash::RandomState::new());
    let mut rounds = Rounds::default();
    let mut round = 0u64;
    let mut in_round = 0usize;
    let mut cur: Vec<Batch> = (0..threads).map(|_| Batch::new()).collect();
    let mut failed = false;
    // Close a round: hand out the batches, file worker 0's observations, apply what is complete.
    let close_round = |cur: &mut Vec<Batch>,
                       round: &mut u64,
                       local: &mut Worker,
                       rounds: &mut Rounds,
                       merger: &mut MergerThread<'_>|
     -> bool {
        let mut ok = true;
        for (b, tx) in cur.iter_mut().zip(&txs) {
            let fresh = free_rx.try_recv().unwrap_or_else(|_| Batch::new());
            let mut full = std::mem::replace(b, fresh);
            full.round = *round;
            ok &= tx.send(full).is_ok();
        }
        rounds.add(*round, local.take());
        *round += 1;
        while let Ok((r, obs)) = res_rx.try_recv() {
            rounds.add(r, obs);
        }
        rounds.apply_ready(workers, merger);
        ok
    };
    // Worker 0 is this thread; the others get a copy in their batch.
    fn dispatch(
        cur: &mut [Batch],
        local: &mut Worker,
        w: usize,
        meta: PktMeta,
        raw: &RawPacket<'_>,
    ) {
        match w.checked_sub(1).and_then(|s| cur.get_mut(s)) {
            None => local.process(meta, raw),
            Some(b) => b.push(meta, raw),
        }
    }
    let damaged = for_each_packet(files, filter, progress, |meta, raw| {
        sharder.route(meta, raw, &mut |w, m, r| {
            dispatch(&mut cur, &mut local, w, m, r)
        });
        in_round += 1;
        if in_round >= BATCH_PACKETS * workers {
            in_round = 0;
            failed |= !close_round(&mut cur, &mut round, &mut local, &mut rounds, merger);
        }
    })?;
    let released = sharder.finish(&mut |w, m, r| dispatch(&mut cur, &mut local, w, m, r));
    if in_round > 0 || released > 0 {
        failed |= !close_round(&mut cur, &mut round, &mut local, &mut rounds, merger);
    }
    drop(txs);
    while rounds.next < round {
        match res_rx.recv() {
            Ok((r, obs)) => {
                rounds.add(r, obs);
                rounds.apply_ready(workers, merger);
            }
            Err(_) => break,
        }
    }
    let mut total = local.counters();
    total.merge(&sharder.counters);
    for h in handles {
        match h.join() {
            Ok(c) => total.merge(&c),
            Err(_) => failed = true,
        }
    }
    if failed || rounds.next < round {
        return Err(Error::runtime("worker", "a worker thread stopped early"));
    }
    Ok((total, damaged))
}

/// One-line summary for stderr.
pub fn summary_line(o: &ReadOutcome) -> String {
    format!(
        "kaswatch: {} packets, {} bytes, {} file{}, {} decode errors, {} limit drops, {} hosts matched, {} callbacks, {} hosts evicted, {} refused, {:.2} s",
        o.counters.packets,
        o.counters.bytes,
        o.files,
        if o.files == 1 { "" } else { "s" },
        o.counters.total_decode_errors(),
        o.counters.limit_drops.iter().sum::<u64>(),
        o.merger.hosts.len(),
        o.merger.callbacks,
        o.merger.hosts.evicted_capacity + o.merger.hosts.evicted_idle,
        o.merger.hosts.refused,
        o.elapsed
    )
}

/// `kaswatch read`.
pub fn cmd_read(a: &ReadArgs) -> Result<i32> {
    let started = Instant::now();
    let job = ReadJob::from_args(a)?;
    // Bind before reading, so a busy address fails fast.
    let listener = a
        .serve
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .map_err(|e| Error::runtime(format!("--serve {addr}"), crate::error::io_reason(&e)))
        })
        .transpose()?;
    let info = crate::export::status::Info {
        mode: "read",
        sources: job.files.iter().map(|p| p.display().to_string()).collect(),
        started,
        max_hosts: job.settings.max_hosts,
    };
    if let Some(p) = &a.metrics_out {
        std::fs::File::create(p).map_err(|e| Error::input(p, crate::error::io_reason(&e)))?;
    }
    let stdout_taken = [a.common.events.as_deref(), a.all_names.as_deref()]
        .iter()
        .any(|p| *p == Some(Path::new("-")));
    let mut out = job.run()?;
    for w in &out.warnings {
        eprintln!("kaswatch: warning: {w}");
    }
    if out.merger.finish_backfill()? == Some(true) {
        eprintln!(
            "kaswatch: warning: --backfill stopped at {} samples (limit); use a longer --step",
            metrics::MAX_BACKFILL_SAMPLES
        );
    }
    if let Some(p) = &a.metrics_out {
        let files = [IfaceStats {
            name: "file".into(),
            packets: out.counters.packets,
            bytes: out.counters.bytes,
            ..Default::default()
        }];
        let text = metrics::render(
            &out.merger.snapshot(&out.counters, &files),
            metrics::Format::for_path(p),
        );
        std::fs::write(p, text).map_err(|e| Error::input(p, crate::error::io_reason(&e)))?;
    }
    {
        // Streamed in chunks: a report of many hosts is never held whole.
        use std::io::Write;
        let _ = if stdout_taken {
            report::write_to(&out.merger.hosts, a.format, &mut std::io::stderr().lock())
        } else {
            let mut so = std::io::stdout().lock();
            report::write_to(&out.merger.hosts, a.format, &mut so).and_then(|()| so.flush())
        };
    }
    if !a.quiet {
        eprintln!("{}", summary_line(&out));
    }
    let write_errors = out.merger.events.as_ref().map_or(0, |s| s.errors)
        + out.merger.all_names.as_ref().map_or(0, |s| s.errors);
    if write_errors > 0 {
        eprintln!("kaswatch: warning: {write_errors} output lines could not be written");
    }
    if let Some(l) = listener {
        serve_final(l, out, info)?;
        return Ok(0);
    }
    // The output files are closed (their partial last line cut) here; the
    // tables are left to the process's exit: freeing 10,000 hosts and full
    // address tables one allocation at a time was 1.7 % of a host flood's
    // run (BENCHMARKS.md, seventh pass), for memory the OS takes back at once.
    drop(out.merger.events.take());
    drop(out.merger.all_names.take());
    std::mem::forget(out);
    Ok(0)
}

/// `read --serve`: answer the status page, `/api/hosts` and `/metrics` from
/// the final state of the run until SIGINT/SIGTERM.
fn serve_final(
    listener: std::net::TcpListener,
    out: ReadOutcome,
    info: crate::export::status::Info,
) -> Result<()> {
    use crate::export::http::{self, Scrape};
    use crate::export::status;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::runtime("--serve", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::runtime("--serve", e))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime("runtime", e))?;
    let guard = rt.enter();
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::runtime("--serve", e))?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::runtime("signals", e))?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::runtime("signals", e))?;
    let (scrape_tx, scrape_rx) = crossbeam_channel::unbounded::<Scrape>();
    let (status_tx, status_rx) = crossbeam_channel::unbounded::<status::Request>();
    // The state is final: one thread answers both kinds of request until the server is gone.
    let answer = std::thread::spawn(move || {
        let files = [IfaceStats {
            name: "file".into(),
            packets: out.counters.packets,
            bytes: out.counters.bytes,
            ..Default::default()
        }];
        let snap = out.merger.snapshot(&out.counters, &files);
        loop {
            crossbeam_channel::select! {
                recv(scrape_rx) -> s => match s {
                    Ok(s) => { let _ = s.reply.send(metrics::render(&snap, s.format)); }
                    Err(_) => break,
                },
                recv(status_rx) -> s => match s {
                    Ok(s) => { let _ = s.reply.send(status::render(&snap, &info)); }
                    Err(_) => break,
                },
            }
        }
    });
    eprintln!("kaswatch: serving the final state on http://{addr}/ (metrics on /metrics) until interrupted");
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let served = rt.block_on(async move {
        let server = tokio::spawn(http::serve(
            listener,
            scrape_tx,
            status_tx,
            crate::export::webconfig::WebConfig::default(),
            async move {
                let _ = http_stopped.await;
            },
        ));
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = stop_http.send(());
        match tokio::time::timeout(std::time::Duration::from_millis(300), server).await {
            Ok(Ok(r)) => r,
            _ => Ok(()),
        }
    });
    // Dropping the runtime drops the server's senders; the answering thread then ends.
    drop(guard);
    drop(rt);
    let _ = answer.join();
    served.map_err(|e| Error::runtime("http server", e))
}

/// `kaswatch check-signatures`.
pub fn cmd_check(a: &CheckArgs) -> Result<i32> {
    let set = SignatureSet::load_paths(&a.paths)?;
    for f in &set.files {
        println!("{}: version {} ({})", f.path.display(), f.version, f.date);
    }
    for (c, n) in set.count_by_category() {
        println!("{:<11} {n}", c.as_str());
    }
    println!("{:<11} {}", "total", set.signatures.len());
    println!("{:<11} {}", "ports", set.ports.len());
    println!("{:<11} {}", "content", set.content.len());
    if !a.test.is_empty() {
        let m = Matcher::new(&set);
        for t in &a.test {
            println!("{t}: {}", explain(&set, &m, t));
        }
    }
    Ok(0)
}

/// What `check-signatures --test` says of one probe: a name, a URL
/// (`http://host/path`: the host as a name, the path against
/// `[[http_path]]`), a port (`tcp/13000`), an address (`[[address]]`), a
/// User-Agent (`ua:...`) or response-body bytes (`hex:4b4c5a46`).
fn explain(set: &SignatureSet, m: &Matcher, probe: &str) -> String {
    let content = |h: Option<crate::matcher::Hit>, what: &str| match h {
        Some(h) => {
            let c = set
                .content
                .get(h.sig as usize - set.signatures.len() - set.ports.len());
            format!(
                "{} ({} at {}:{}{what})",
                h.category.as_str(),
                m.pattern(h.sig),
                c.map_or(String::new(), |c| c.file.display().to_string()),
                c.map_or(0, |c| c.line)
            )
        }
        None => "no match".into(),
    };
    if let Some(hex) = probe.strip_prefix("hex:") {
        let bytes: Option<Vec<u8>> = (0..hex.len() / 2)
            .map(|i| {
                hex.get(2 * i..2 * i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
            })
            .collect();
        return content(
            bytes.as_deref().and_then(|b| m.body_magic(b)),
            "; a response body opening with these bytes",
        );
    }
    if let Some(ua) = probe.strip_prefix("ua:") {
        return content(m.user_agent(ua.as_bytes()), "");
    }
    if let Some((proto, port)) = probe.split_once('/') {
        if let (Some(tcp), Ok(port)) = (
            match proto {
                "tcp" => Some(true),
                "udp" => Some(false),
                _ => None,
            },
            port.parse::<u16>(),
        ) {
            return match m.port(tcp, port) {
                Some((h, side)) => {
                    let p = set.ports.iter().find(|p| p.port == port && p.tcp == tcp);
                    format!(
                        "{} (port {}, {:?} side, at {}:{}; only completed connections count)",
                        h.category.as_str(),
                        m.pattern(h.sig),
                        side,
                        p.map_or(String::new(), |p| p.file.display().to_string()),
                        p.map_or(0, |p| p.line)
                    )
                }
                None => "no match".into(),
            };
        }
    }
    if let Ok(a) = probe.parse::<std::net::IpAddr>() {
        return content(m.address(&a), "; only completed connections count");
    }
    if let Some((authority, rest)) = crate::proto::http::split_absolute(probe.as_bytes()) {
        let host = crate::proto::http::host_for_match(authority)
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .unwrap_or_default();
        let by_name = explain_name(set, m, &host);
        let path = crate::proto::kupdate::request_path(rest).unwrap_or_default();
        let by_path = content(m.http_path(path), "");
        let path = String::from_utf8_lossy(path);
        return format!("host {host}: {by_name}; path {path}: {by_path}");
    }
    explain_name(set, m, probe)
}

fn explain_name(set: &SignatureSet, m: &Matcher, name: &str) -> String {
    let Some(h) = m.lookup_str(name) else {
        return "no match".into();
    };
    let s = set.signatures.get(h.sig as usize);
    let (kind, file, line) = s.map_or(("?", String::new(), 0), |s| {
        (
            if s.kind == crate::signatures::MatchKind::Exact {
                "exact"
            } else {
                "suffix"
            },
            s.file.display().to_string(),
            s.line,
        )
    });
    format!(
        "{} ({kind} {} at {file}:{line})",
        h.category.as_str(),
        m.pattern(h.sig)
    )
}

#[cfg(test)]
mod tests;
