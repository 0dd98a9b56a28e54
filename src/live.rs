//! `kaswatch live`: one capture thread per interface (`capture/live.rs`),
//! each running its own pipeline [`Worker`] inline and sending observations
//! and counters over a channel to one merger thread, which owns the
//! [`Merger`] (host table, events) exactly as `read` does, expires idle hosts
//! on a timer using the latest packet time, and renders metrics snapshots
//! for the HTTP server (`export/http.rs`) running on a tokio runtime in the
//! main thread. SIGINT/SIGTERM stop capture, flush events and exit 0.

use crate::capture::afpacket;
use crate::capture::live::{self, Drops, LiveCapture, LiveOptions};
use crate::cli::{CaptureBackend, LiveArgs};
use crate::error::{Error, Result};
use crate::export::http::{self, Scrape};
use crate::export::jsonlog::LineSink;
use crate::export::metrics::{self, IfaceStats};
use crate::export::status;
use crate::pipeline::{Merger, Obs, PktMeta, Worker, WorkerConfig};
use crate::reload::{self, Published};
use crate::stats::Counters;
use crossbeam_channel::{bounded, select, Receiver, Sender};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Packets handled per poll before the thread reports and checks for shutdown.
const MAX_PACKETS_PER_POLL: usize = 4096;
/// Ring blocks handled per poll by an afpacket worker.
const MAX_BLOCKS_PER_POLL: usize = 64;
/// How often capture threads send counters and pcap stats.
const STATS_EVERY: Duration = Duration::from_millis(500);
/// How often the merger thread expires idle hosts.
const EXPIRE_EVERY: Duration = Duration::from_secs(1);
/// Retry backoff for an interface that failed: doubles up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Messages queued from capture threads to the merger.
const QUEUE: usize = 1024;

/// From a capture thread to the merger thread.
enum Msg {
    Obs(Vec<Obs>),
    Stats {
        iface: usize,
        counters: Box<Counters>,
        drops: Drops,
        last_ts: u64,
    },
    /// A signature/inventory reload: the new set, or why it was refused.
    Reload(Box<std::result::Result<crate::reload::Loaded, String>>),
}

fn log(msg: &str) {
    eprintln!("kaswatch: {msg}");
}

/// A reloaded signature set is matched from the next packet on: checked
/// before each packet (one atomic load), not once per poll, so a packet
/// that arrives during a poll begun before the reload, after the reload was
/// logged, is not matched by the old set.
#[inline]
fn follow(published: &Published, seen: &mut u64, w: &mut Worker) {
    let g = published.generation();
    if g != *seen {
        *seen = g;
        if let Some(m) = published.current() {
            w.set_matcher(m);
        }
    }
}

/// Capture loop of one interface; reopens with backoff after errors.
fn capture_thread(
    iface: usize,
    name: String,
    opts: LiveOptions,
    first: LiveCapture,
    published: Arc<Published>,
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
) {
    let mut seen = published.generation();
    let Some(matcher) = published.current() else {
        return;
    };
    let mut w = Worker::new(matcher, WorkerConfig::default());
    let mut cap = Some(first);
    let (mut seq, mut last_ts) = (0u64, 0u64);
    // Drops of captures closed after an error, plus the current one's.
    let mut base = Drops::default();
    let mut cur = Drops::default();
    let mut last_stats = Instant::now();
    let mut backoff = Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = cap.as_mut() else {
            // Wait out the backoff in short slices, then reopen.
            let until = Instant::now() + backoff;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
            match live::open(&name, &opts) {
                Ok(c) => {
                    log(&format!("{name}: capture reopened"));
                    cap = Some(c);
                    backoff = Duration::from_secs(1);
                }
                Err(e) => {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    log(&format!("{e}; retrying in {} s", backoff.as_secs()));
                }
            }
            continue;
        };
        let r = c.poll(MAX_PACKETS_PER_POLL, iface as u32, |raw| {
            follow(&published, &mut seen, &mut w);
            seq += 1;
            last_ts = last_ts.max(raw.ts);
            w.process(
                PktMeta {
                    seq,
                    input: iface as u32,
                    frame: seq,
                },
                raw,
            );
        });
        if let Err(e) = r {
            base.kernel += cur.kernel;
            base.interface += cur.interface;
            cur = Drops::default();
            cap = None;
            log(&format!(
                "{name}: capture failed: {e}; retrying in {} s",
                backoff.as_secs()
            ));
        }
        w.flush_held();
        if !w.out.is_empty() && tx.send(Msg::Obs(w.take())).is_err() {
            return;
        }
        if last_stats.elapsed() >= STATS_EVERY {
            last_stats = Instant::now();
            if let Some(c) = cap.as_mut() {
                cur = c.drops();
            }
            if send_stats(&tx, iface, &w, base, cur, last_ts).is_err() {
                return;
            }
        }
    }
    if let Some(c) = cap.as_mut() {
        cur = c.drops();
    }
    w.flush_held();
    if !w.out.is_empty() {
        let _ = tx.send(Msg::Obs(w.take()));
    }
    let _ = send_stats(&tx, iface, &w, base, cur, last_ts);
}

/// A capture thread's counters and drops (closed captures' plus the
/// current one's) for the merger thread.
fn send_stats(
    tx: &Sender<Msg>,
    iface: usize,
    w: &Worker,
    base: Drops,
    cur: Drops,
    last_ts: u64,
) -> std::result::Result<(), crossbeam_channel::SendError<Msg>> {
    let drops = Drops {
        kernel: base.kernel + cur.kernel,
        interface: base.interface + cur.interface,
    };
    tx.send(Msg::Stats {
        iface,
        counters: Box::new(w.counters()),
        drops,
        last_ts,
    })
}

// ------------------------------------------------------------- AF_PACKET fanout
// `--capture afpacket --fanout N`: N sockets per interface (capture/afpacket.rs),
// one thread and Worker each. Their observations reach the merger in packet-time
// order through a shared Sequencer; worker 0 reports the interface's summed
// counters, the last worker to stop the final ones.

/// An interface opened by either backend.
enum Opened {
    Pcap(LiveCapture),
    Af(Vec<afpacket::AfPacket>, u16),
}

/// Checks the afpacket flags; `None` for libpcap.
fn afpacket_options(a: &LiveArgs) -> Result<Option<afpacket::AfOptions>> {
    let ring_flags =
        a.ring_block_size.is_some() || a.ring_frame_size.is_some() || a.ring_blocks.is_some();
    if a.capture == CaptureBackend::Pcap {
        if a.fanout != 1 || ring_flags {
            return Err(Error::Usage(
                "--fanout and --ring-* need --capture afpacket".into(),
            ));
        }
        return Ok(None);
    }
    if a.fanout == 0 || a.fanout > afpacket::MAX_FANOUT_WORKERS {
        return Err(Error::Usage(format!(
            "--fanout must be between 1 and {}",
            afpacket::MAX_FANOUT_WORKERS
        )));
    }
    let ring = afpacket::Ring::from_flags(
        a.buffer_size,
        a.snaplen,
        a.fanout,
        a.ring_block_size,
        a.ring_frame_size,
        a.ring_blocks,
    )
    .map_err(Error::Usage)?;
    Ok(Some(afpacket::AfOptions {
        snaplen: a.snaplen,
        bpf: a.bpf.clone(),
        ring,
    }))
}

/// What the workers of one interface share.
struct FanShared {
    seq: afpacket::Sequencer<Obs>,
    counters: Vec<Counters>,
    drops: Vec<u64>,
    last_ts: u64,
    done: usize,
}

struct Fan {
    iface: usize,
    name: String,
    opts: afpacket::AfOptions,
    group: u16,
    frames: std::sync::atomic::AtomicU64,
    shared: std::sync::Mutex<FanShared>,
}

impl Fan {
    /// Summed counters of all workers, as one interface's Stats.
    fn stats(&self, s: &FanShared) -> Msg {
        let mut total = Counters::default();
        for c in &s.counters {
            total.merge(c);
        }
        Msg::Stats {
            iface: self.iface,
            counters: Box::new(total),
            drops: Drops {
                kernel: s.drops.iter().sum(),
                interface: 0,
            },
            last_ts: s.last_ts,
        }
    }
}

/// Spawn the workers of one afpacket interface.
#[allow(clippy::too_many_arguments)]
fn spawn_fanout(
    iface: usize,
    name: &str,
    opts: &afpacket::AfOptions,
    socks: Vec<afpacket::AfPacket>,
    group: u16,
    published: &Arc<Published>,
    stop: &Arc<AtomicBool>,
    tx: &Sender<Msg>,
) -> Vec<std::thread::JoinHandle<()>> {
    let n = socks.len();
    let fan = Arc::new(Fan {
        iface,
        name: name.to_string(),
        opts: opts.clone(),
        group,
        frames: Default::default(),
        shared: std::sync::Mutex::new(FanShared {
            seq: afpacket::Sequencer::new(n),
            counters: vec![Counters::default(); n],
            drops: vec![0; n],
            last_ts: 0,
            done: 0,
        }),
    });
    socks
        .into_iter()
        .enumerate()
        .map(|(k, s)| {
            let (fan, published, stop, tx) =
                (fan.clone(), published.clone(), stop.clone(), tx.clone());
            std::thread::spawn(move || fanout_thread(k, n, fan, s, published, stop, tx))
        })
        .collect()
}

/// One afpacket socket's loop; reopens (rejoining the group) after errors.
fn fanout_thread(
    k: usize,
    n: usize,
    fan: Arc<Fan>,
    first: afpacket::AfPacket,
    published: Arc<Published>,
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
) {
    let iface = fan.iface;
    let mut seen = published.generation();
    let Some(matcher) = published.current() else {
        return;
    };
    let mut w = Worker::new(matcher, WorkerConfig::default());
    let mut sock = Some(first);
    let (mut last_ts, mut mark) = (0u64, 0u64);
    let (mut base, mut cur) = (0u64, 0u64);
    let mut warned_full = false;
    let mut last_stats = Instant::now();
    let mut backoff = Duration::from_secs(1);
    let lock = || fan.shared.lock().unwrap_or_else(|p| p.into_inner());
    while !stop.load(Ordering::Relaxed) {
        let empty = match sock.as_mut() {
            None => {
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                if !stop.load(Ordering::Relaxed) {
                    match afpacket::AfPacket::open(&fan.name, &fan.opts, Some(fan.group)) {
                        Ok(s) => {
                            log(&format!("{}: capture reopened", fan.name));
                            sock = Some(s);
                            backoff = Duration::from_secs(1);
                        }
                        Err(e) => {
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                            log(&format!("{e}; retrying in {} s", backoff.as_secs()));
                        }
                    }
                }
                true
            }
            Some(s) => {
                let frame = std::cell::Cell::new(0u64);
                let r = s.poll(
                    MAX_BLOCKS_PER_POLL,
                    iface as u32,
                    |cnt| frame.set(fan.frames.fetch_add(cnt as u64, Ordering::Relaxed)),
                    |raw| {
                        follow(&published, &mut seen, &mut w);
                        frame.set(frame.get() + 1);
                        last_ts = last_ts.max(raw.ts);
                        let f = frame.get();
                        w.process(
                            PktMeta {
                                seq: f,
                                input: iface as u32,
                                frame: f,
                            },
                            raw,
                        );
                    },
                );
                match r {
                    Ok((_, empty)) => empty,
                    Err(e) => {
                        base += cur;
                        cur = 0;
                        sock = None;
                        log(&format!(
                            "{}: capture failed: {e}; retrying in {} s",
                            fan.name,
                            backoff.as_secs()
                        ));
                        true
                    }
                }
            }
        };
        mark = mark.max(afpacket::watermark(last_ts, empty));
        let obs = w.take();
        let stats_due = last_stats.elapsed() >= STATS_EVERY;
        if stats_due {
            last_stats = Instant::now();
            if let Some(s) = sock.as_mut() {
                let st = s.stats();
                cur = st.drops;
                if st.freezes > 0 && !warned_full {
                    warned_full = true;
                    log(&format!("{}: ring of worker {k} filled up: packets dropped (counted in kaswatch_capture_dropped_packets_total); raise --buffer-size or --fanout", fan.name));
                }
            }
        }
        let mut sh = lock();
        let ready = sh.seq.push(k, obs, |o| o.ts, mark);
        if !ready.is_empty() && tx.send(Msg::Obs(ready)).is_err() {
            return;
        }
        if stats_due {
            sh.last_ts = sh.last_ts.max(last_ts);
            if let Some(c) = sh.counters.get_mut(k) {
                *c = w.counters();
            }
            if let Some(d) = sh.drops.get_mut(k) {
                *d = base + cur;
            }
            if k == 0 && tx.send(fan.stats(&sh)).is_err() {
                return;
            }
        }
    }
    if let Some(s) = sock.as_mut() {
        cur = s.stats().drops;
    }
    let mut sh = lock();
    let ready = sh.seq.push(k, w.take(), |o| o.ts, u64::MAX);
    if !ready.is_empty() {
        let _ = tx.send(Msg::Obs(ready));
    }
    sh.last_ts = sh.last_ts.max(last_ts);
    if let Some(c) = sh.counters.get_mut(k) {
        *c = w.counters();
    }
    if let Some(d) = sh.drops.get_mut(k) {
        *d = base + cur;
    }
    sh.done += 1;
    if sh.done == n {
        let _ = tx.send(fan.stats(&sh));
        if n > 1 {
            let per: Vec<String> = sh.counters.iter().map(|c| c.packets.to_string()).collect();
            log(&format!(
                "{}: packets per fanout worker: {}",
                fan.name,
                per.join(", ")
            ));
        }
    }
}

/// The merger thread: applies observations, answers scrapes, expires hosts.
fn merger_thread(
    mut merger: Merger,
    names: Vec<String>,
    rx: Receiver<Msg>,
    scrapes: Receiver<Scrape>,
    status: Receiver<status::Request>,
    info: status::Info,
) -> Merger {
    let mut ifaces: Vec<IfaceStats> = names
        .iter()
        .map(|n| IfaceStats {
            name: n.clone(),
            ..Default::default()
        })
        .collect();
    let mut counters: Vec<Counters> = names.iter().map(|_| Counters::default()).collect();
    let mut latest = 0u64;
    let mut last_expire = Instant::now();
    loop {
        select! {
            recv(rx) -> m => match m {
                Ok(Msg::Obs(v)) => {
                    for o in &v {
                        merger.apply(o);
                    }
                    merger.flush();
                }
                Ok(Msg::Stats { iface, counters: c, drops, last_ts }) => {
                    latest = latest.max(last_ts);
                    if let Some(s) = ifaces.get_mut(iface) {
                        s.packets = c.packets;
                        s.bytes = c.bytes;
                        s.dropped_kernel = drops.kernel;
                        s.dropped_interface = drops.interface;
                    }
                    if let Some(slot) = counters.get_mut(iface) {
                        *slot = *c;
                    }
                }
                Ok(Msg::Reload(r)) => match *r {
                    Ok(l) => merger.replace_signatures(l),
                    Err(_) => merger.reloads_failed += 1,
                },
                Err(_) => break,
            },
            recv(scrapes) -> s => {
                if let Ok(s) = s {
                    let mut total = Counters::default();
                    for c in &counters {
                        total.merge(c);
                    }
                    total.merge(&merger.counters);
                    let _ = s.reply.send(metrics::render(&merger.snapshot(&total, &ifaces), s.format));
                }
            },
            recv(status) -> s => {
                if let Ok(s) = s {
                    let mut total = Counters::default();
                    for c in &counters {
                        total.merge(c);
                    }
                    total.merge(&merger.counters);
                    let _ = s.reply.send(status::render(&merger.snapshot(&total, &ifaces), &info));
                }
            },
            default(EXPIRE_EVERY) => {}
        }
        if last_expire.elapsed() >= EXPIRE_EVERY {
            last_expire = Instant::now();
            let now = latest.max(merger.last_ts);
            merger.hosts.expire(now);
            merger.tick(now);
            merger.flush();
        }
    }
    merger.finish();
    merger.flush();
    merger
}

/// Reloads signatures and inventory on SIGHUP (`hup`) or when a watched
/// file changes; validates first, publishes a good set to the capture
/// threads and the merger, refuses a bad one with one log line.
fn reload_thread(
    sigs: Vec<std::path::PathBuf>,
    inventory: Option<std::path::PathBuf>,
    mut version: String,
    published: Arc<Published>,
    hup: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    tx: Sender<Msg>,
) {
    let mut stamp = reload::stamp(&sigs, inventory.as_deref());
    let mut next = Instant::now() + reload::RELOAD_POLL;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        let asked = hup.swap(false, Ordering::Relaxed);
        if !asked && Instant::now() < next {
            continue;
        }
        next = Instant::now() + reload::RELOAD_POLL;
        let now = reload::stamp(&sigs, inventory.as_deref());
        if !asked && now == stamp {
            continue;
        }
        stamp = now;
        let why = if asked { "SIGHUP" } else { "a file changed" };
        match reload::load(&sigs, inventory.as_deref()) {
            Ok(l) => {
                let matcher = l.matcher.clone();
                let line = format!(
                    "signatures reloaded ({why}): {} entries, {}",
                    matcher.len(),
                    l.version
                );
                version.clone_from(&l.version);
                // The merger first (it names a hit by the set that made it),
                // then the capture threads, then the log line: what is
                // captured after the line is matched, and named, by the new
                // set.
                if tx.send(Msg::Reload(Box::new(Ok(l)))).is_err() {
                    return;
                }
                published.publish(matcher);
                log(&line);
            }
            Err(e) => {
                log(&format!(
                    "signatures: reload refused ({why}): {e}; still matching with {version}"
                ));
                if tx.send(Msg::Reload(Box::new(Err(e)))).is_err() {
                    return;
                }
            }
        }
    }
}

/// Switch to `user` (its primary group, no supplementary groups).
fn drop_privileges(user: &str) -> Result<()> {
    let what = format!("--user {user}");
    let cname =
        std::ffi::CString::new(user).map_err(|_| Error::Usage(format!("{what}: bad user name")))?;
    // SAFETY: getpwnam with a valid C string; the result is read before any other call.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return Err(Error::runtime(what, "no such user"));
    }
    // SAFETY: pw is non-null and points to libc's static passwd record.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    // SAFETY: plain syscalls with integer arguments.
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if !ok {
        return Err(Error::runtime(
            what,
            format!("cannot switch user: {}", std::io::Error::last_os_error()),
        ));
    }
    Ok(())
}

/// `kaswatch live`.
pub fn cmd_live(a: &LiveArgs) -> Result<i32> {
    let settings = crate::run::settings(&a.common)?;
    if a.snaplen == 0 {
        return Err(Error::Usage("--snaplen must be at least 1".into()));
    }
    if a.buffer_size == 0 || a.buffer_size > live::MAX_BUFFER_MIB {
        return Err(Error::Usage(format!(
            "--buffer-size must be between 1 and {} MiB",
            live::MAX_BUFFER_MIB
        )));
    }
    // Read before --user: certificate keys are usually readable by root only.
    let web = match &a.web_config {
        Some(p) => crate::export::webconfig::load(p)?,
        None => Default::default(),
    };
    // Resolved once: reloads read the same files.
    let sig_paths = crate::run::signature_paths(&a.common.signatures);
    let (set, matcher) = crate::run::load_matcher(&sig_paths)?;
    let inventory = crate::inventory::Inventory::load_opt(a.common.inventory.as_deref())?;
    let events = a.common.events.as_deref().map(LineSink::open).transpose()?;
    let opts = LiveOptions {
        snaplen: a.snaplen,
        buffer_mib: a.buffer_size,
        bpf: a.bpf.clone(),
    };
    let af = afpacket_options(a)?;
    let caps = open_captures(a, &opts, af.as_ref())?;
    let listener = bind_listener(a)?;
    if let Some(u) = &a.user {
        drop_privileges(u)?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::runtime("runtime", e))?;
    let _guard = rt.enter();
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::runtime("--listen", e))?;
    // Install the handlers before any thread starts, so an early signal is caught.
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| Error::runtime("signals", e))?;
    let int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| Error::runtime("signals", e))?;
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| Error::runtime("signals", e))?;

    let mut merger = Merger::new(matcher.clone(), settings.host_table());
    merger.events = events;
    merger.inventory = inventory;
    merger.inputs = a.interfaces.clone();
    merger.signature_counts = set.count_by_category();
    merger.signature_version = crate::reload::version_of(&set);
    let published = Published::new(matcher.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = bounded::<Msg>(QUEUE);
    let (scrape_tx, scrape_rx) = crossbeam_channel::unbounded::<Scrape>();
    let (status_tx, status_rx) = crossbeam_channel::unbounded::<status::Request>();
    let info = status::Info {
        mode: "live",
        sources: a.interfaces.clone(),
        started: Instant::now(),
        max_hosts: settings.max_hosts,
    };
    let names = a.interfaces.clone();
    let merger_handle =
        std::thread::spawn(move || merger_thread(merger, names, rx, scrape_rx, status_rx, info));
    let handles = spawn_captures(a, caps, af.as_ref(), &opts, &published, &stop, &tx);
    let hup_flag = Arc::new(AtomicBool::new(false));
    let reloader = {
        let (stop, tx, flag) = (stop.clone(), tx.clone(), hup_flag.clone());
        let inventory = a.common.inventory.clone();
        let version = reload::version_of(&set);
        std::thread::spawn(move || {
            reload_thread(sig_paths, inventory, version, published, flag, stop, tx)
        })
    };
    drop(tx);
    if web.auth.is_some() && web.tls.is_none() {
        log("warning: --web-config has basic_auth_users but no tls_server_config: passwords cross the network in clear");
    }
    log(&format!(
        "capturing on {}; metrics on {}://{}/metrics, status page on {1}://{2}/",
        a.interfaces.join(", "),
        if web.tls.is_some() { "https" } else { "http" },
        a.listen
    ));

    let signals = Signals { term, int, hup };
    let served = serve_until_signal(&rt, listener, scrape_tx, status_tx, web, signals, &hup_flag);
    stop.store(true, Ordering::Relaxed);
    let _ = reloader.join();
    shut_down(handles, merger_handle, served)
}

/// The signals `live` answers: TERM and INT stop it, HUP reloads.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// Serve HTTP until SIGTERM/SIGINT (SIGHUP raises `hup_flag` for the
/// reloader), then stop the server, giving requests in flight a moment.
fn serve_until_signal(
    rt: &tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    scrape_tx: crossbeam_channel::Sender<Scrape>,
    status_tx: crossbeam_channel::Sender<status::Request>,
    web: crate::export::webconfig::WebConfig,
    mut sig: Signals,
    hup_flag: &Arc<AtomicBool>,
) -> std::io::Result<()> {
    let hup_flag = hup_flag.clone();
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    rt.block_on(async move {
        let server = tokio::spawn(http::serve(
            listener,
            scrape_tx,
            status_tx,
            web,
            async move {
                let _ = http_stopped.await;
            },
        ));
        loop {
            tokio::select! {
                _ = sig.term.recv() => break,
                _ = sig.int.recv() => break,
                _ = sig.hup.recv() => hup_flag.store(true, Ordering::Relaxed),
            }
        }
        let _ = stop_http.send(());
        // Idle keep-alive connections close at once; give requests in flight a moment.
        match tokio::time::timeout(Duration::from_millis(300), server).await {
            Ok(Ok(r)) => r,
            _ => Ok(()),
        }
    })
}

/// Open every interface with the chosen backend (one line and exit 1 on failure).
fn open_captures(
    a: &LiveArgs,
    opts: &LiveOptions,
    af: Option<&afpacket::AfOptions>,
) -> Result<Vec<Opened>> {
    let mut caps = Vec::new();
    for name in &a.interfaces {
        caps.push(match af {
            None => Opened::Pcap(live::open(name, opts)?),
            Some(o) => {
                let (socks, group) = afpacket::open_group(name, o, a.fanout)?;
                Opened::Af(socks, group)
            }
        });
    }
    Ok(caps)
}

/// Bind `--listen` before dropping privileges (a port in use is one line).
fn bind_listener(a: &LiveArgs) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(a.listen).map_err(|e| {
        Error::runtime(
            format!("--listen {}", a.listen),
            crate::error::io_reason(&e),
        )
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::runtime("--listen", e))?;
    Ok(listener)
}

/// One capture thread per libpcap interface, one per AF_PACKET socket.
fn spawn_captures(
    a: &LiveArgs,
    caps: Vec<Opened>,
    af: Option<&afpacket::AfOptions>,
    opts: &LiveOptions,
    published: &Arc<Published>,
    stop: &Arc<AtomicBool>,
    tx: &Sender<Msg>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut handles = Vec::new();
    for (i, (cap, name)) in caps.into_iter().zip(a.interfaces.iter()).enumerate() {
        let cap = match (cap, af) {
            (Opened::Pcap(c), _) => c,
            (Opened::Af(socks, group), Some(o)) => {
                handles.extend(spawn_fanout(i, name, o, socks, group, published, stop, tx));
                continue;
            }
            (Opened::Af(..), None) => continue,
        };
        let (name, opts, published, stop, tx) = (
            name.clone(),
            opts.clone(),
            published.clone(),
            stop.clone(),
            tx.clone(),
        );
        handles.push(std::thread::spawn(move || {
            capture_thread(i, name, opts, cap, published, stop, tx)
        }));
    }
    handles
}

/// After the stop signal: join the threads, report, close the events file.
/// A capture thread that panicked is reported (as `read` does), not ignored.
fn shut_down(
    handles: Vec<std::thread::JoinHandle<()>>,
    merger_handle: std::thread::JoinHandle<Merger>,
    served: std::io::Result<()>,
) -> Result<i32> {
    let mut failed = 0usize;
    for h in handles {
        if h.join().is_err() {
            failed += 1;
        }
    }
    if failed > 0 {
        log(&format!(
            "error: {failed} capture thread(s) stopped abnormally"
        ));
    }
    let mut merger = merger_handle
        .join()
        .map_err(|_| Error::runtime("merger", "the merger thread stopped"))?;
    served.map_err(|e| Error::runtime("http server", e))?;
    log(&format!(
        "stopped: {} hosts matched, {} callbacks",
        merger.hosts.len(),
        merger.callbacks
    ));
    if let Some(e) = merger.events.as_mut() {
        e.close();
    }
    if let Some(e) = merger.events.as_ref().filter(|s| s.errors > 0) {
        log(&format!(
            "warning: {} event lines could not be written",
            e.errors
        ));
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
