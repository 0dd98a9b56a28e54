//! Prometheus exposition rendered by hand from a [`Snapshot`] of the
//! pipeline's state (the merger's host table and callback counts, merged
//! worker [`Counters`], per-interface capture counters). Two text formats:
//! Prometheus 0.0.4 and OpenMetrics 1.0, chosen by the HTTP server
//! (`export/http.rs`) from the Accept header, or by file extension for
//! `read --metrics-out`. [`Backfill`] samples the per-host and aggregate
//! families every `--step` of packet time into an OpenMetrics file with
//! explicit timestamps for `promtool tsdb create-blocks-from openmetrics`.
//! Metric names and labels are a contract: see docs/metrics.md.

use crate::error::{Error, Result};
use crate::evidence::Evidence;
use crate::hosts::{Host, HostTable, Section};
use crate::pipeline::address::AddressStats;
use crate::proto::Protocol;
use crate::signatures::Category;
use crate::stats::{Counters, Layer, Limit};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Callbacks by category and protocol, indexed `[category][protocol]`.
pub type CallbackCounts = [[u64; Protocol::ALL.len()]; Category::ALL.len()];

/// Exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
    /// `--metrics-out FILE`: OpenMetrics for `*.om`, `*.openmetrics`;
    /// otherwise Prometheus text, as the node_exporter textfile collector
    /// and `promtool check metrics` read `*.prom` files.
    pub fn for_path(p: &Path) -> Format {
        match p.extension().and_then(|e| e.to_str()) {
            Some("om" | "openmetrics") => Format::OpenMetrics,
            _ => Format::Prometheus,
        }
    }
    /// Pick the format a scraper asked for in its Accept header.
    pub fn from_accept(accept: &str) -> Format {
        if accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// Capture counters of one input (an interface, or "file" for `read`).
#[derive(Clone, Debug, Default)]
pub struct IfaceStats {
    pub name: String,
    pub packets: u64,
    pub bytes: u64,
    /// Dropped by the kernel (pcap `ps_drop`).
    pub dropped_kernel: u64,
    /// Dropped by the interface or driver (pcap `ps_ifdrop`).
    pub dropped_interface: u64,
}

/// Everything the exposition is rendered from.
pub struct Snapshot<'a> {
    pub hosts: &'a HostTable,
    pub callbacks: &'a CallbackCounts,
    /// Callbacks by evidence, all hosts.
    pub by_evidence: &'a [u64; Evidence::ALL.len()],
    /// How address evidence was decided.
    pub address: AddressStats,
    pub counters: &'a Counters,
    pub interfaces: &'a [IfaceStats],
    pub signatures: &'a [(Category, usize)],
    /// Active signature set (`file=version,...`).
    pub signature_version: &'a str,
    /// Signature reloads (ok, refused).
    pub reloads: (u64, u64),
    pub version: &'a str,
    /// Event lines that could not be written (full disk, closed pipe).
    pub event_write_errors: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Info,
}

/// One metric family: base name (no `_total`/`_info`), type, help, samples
/// as (rendered label set, rendered value).
struct Family {
    base: &'static str,
    kind: Kind,
    help: &'static str,
    samples: Vec<(String, String)>,
}

impl Family {
    fn new(base: &'static str, kind: Kind, help: &'static str) -> Self {
        Family {
            base,
            kind,
            help,
            samples: Vec::new(),
        }
    }
    fn push(&mut self, labels: &[(&str, &str)], value: String) {
        self.samples.push((render_labels(labels), value));
    }
    fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.base),
            Kind::Info => format!("{}_info", self.base),
            Kind::Gauge => self.base.to_string(),
        }
    }
    fn header(&self, f: Format) -> String {
        let (name, ty) = match (f, self.kind) {
            (Format::Prometheus, Kind::Counter) => (self.sample_name(), "counter"),
            (Format::Prometheus, Kind::Info) => (self.sample_name(), "gauge"),
            (Format::OpenMetrics, Kind::Counter) => (self.base.to_string(), "counter"),
            (Format::OpenMetrics, Kind::Info) => (self.base.to_string(), "info"),
            (_, Kind::Gauge) => (self.base.to_string(), "gauge"),
        };
        format!("# HELP {name} {}\n# TYPE {name} {ty}\n", self.help)
    }
}

fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape(v));
    }
    s.push('}');
    s
}

/// Packet time (ns) as seconds, shortest exact decimal.
pub fn fmt_seconds(ns: u64) -> String {
    let (s, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        return s.to_string();
    }
    let f = format!("{frac:09}");
    format!("{s}.{}", f.trim_end_matches('0'))
}

fn managed(h: &Host) -> &'static str {
    if h.managed {
        "true"
    } else {
        "false"
    }
}

/// Per-host families and the aggregates that are known to the merger alone
/// (these are what the backfill samples).
fn merger_families(s: &Snapshot<'_>) -> Vec<Family> {
    let mut hosts: Vec<&Host> = s.hosts.iter().collect();
    hosts.sort_by_key(|h| h.ip);
    let mut out = host_families(s, &hosts);
    out.extend(section_families(s, &hosts));
    out.extend(callback_families(s));
    out.push(evicted_family(s));
    out.push(refused_family(s));
    out
}

/// Per-host families: callbacks, first and last seen, details.
fn host_families(s: &Snapshot<'_>, hosts: &[&Host]) -> Vec<Family> {
    let mut cb = Family::new(
        "kaswatch_host_callbacks",
        Kind::Counter,
        "Callbacks to Kaspersky endpoints by host, category, protocol and evidence.",
    );
    let mut first = Family::new(
        "kaswatch_host_first_seen_timestamp_seconds",
        Kind::Gauge,
        "Packet time of the host's first callback.",
    );
    let mut last = Family::new(
        "kaswatch_host_last_seen_timestamp_seconds",
        Kind::Gauge,
        "Packet time of the host's latest callback.",
    );
    let mut info = Family::new(
        "kaswatch_host",
        Kind::Info,
        "Host details; labels are empty when unknown.",
    );
    for h in hosts {
        let ip = h.key.label();
        let m = managed(h);
        let role = h.role.as_str();
        let mut counts = h.counts.clone();
        counts.sort();
        for (c, p, e, n) in counts {
            cb.push(
                &[
                    ("host", &ip),
                    ("category", c.as_str()),
                    ("protocol", p.as_str()),
                    ("evidence", e.as_str()),
                    ("role", role),
                    ("managed", m),
                ],
                n.to_string(),
            );
        }
        first.push(&[("host", &ip), ("managed", m)], fmt_seconds(h.first_seen));
        last.push(&[("host", &ip), ("managed", m)], fmt_seconds(h.last_seen));
        let mac = h.mac_string().unwrap_or_default();
        let vendor = h.vendor().unwrap_or_default();
        let addr = h.ip.to_string();
        let inv = h.inventory_name.clone().unwrap_or_default();
        info.push(
            &[
                ("host", &ip),
                ("mac", &mac),
                ("vendor", &vendor),
                ("hostname", h.hostname.as_deref().unwrap_or("")),
                ("address", &addr),
                ("role", role),
                ("section", h.section(&s.hosts.selection).as_str()),
                ("managed", m),
                ("inventory_name", &inv),
            ],
            "1".into(),
        );
    }
    vec![cb, first, last, info]
}

/// Host counts: all, and by report section.
fn section_families(s: &Snapshot<'_>, hosts: &[&Host]) -> Vec<Family> {
    let mut count = Family::new(
        "kaswatch_hosts",
        Kind::Gauge,
        "Hosts in the host table (hosts that matched a signature).",
    );
    let nm = hosts.iter().filter(|h| h.managed).count();
    count.push(&[("managed", "false")], (hosts.len() - nm).to_string());
    count.push(&[("managed", "true")], nm.to_string());
    let mut devices = Family::new(
        "kaswatch_devices",
        Kind::Gauge,
        "Hosts by report section: hosts (devices phoning home on the selected evidence), resolvers, other (only evidence outside --evidence).",
    );
    for sec in [Section::Devices, Section::Resolvers, Section::Other] {
        for man in [false, true] {
            let n = hosts
                .iter()
                .filter(|h| h.managed == man && h.section(&s.hosts.selection) == sec)
                .count();
            devices.push(
                &[
                    ("section", sec.as_str()),
                    ("managed", if man { "true" } else { "false" }),
                ],
                n.to_string(),
            );
        }
    }
    vec![count, devices]
}

/// Callback totals over all hosts: by category and protocol, by evidence,
/// and how address evidence was settled.
fn callback_families(s: &Snapshot<'_>) -> Vec<Family> {
    let mut by_ev = Family::new(
        "kaswatch_callbacks_by_evidence",
        Kind::Counter,
        "Callbacks to Kaspersky endpoints by the evidence they rest on, all hosts.",
    );
    for e in Evidence::ALL {
        let n = s.by_evidence.get(e as usize).copied().unwrap_or(0);
        by_ev.push(&[("evidence", e.as_str())], n.to_string());
    }
    let mut addr = Family::new(
        "kaswatch_address_evidence",
        Kind::Counter,
        "Connections to addresses resolved from Kaspersky names, by outcome: released (an address callback), shared (address also serves other names: no callback), named (the connection named a site itself).",
    );
    addr.push(&[("outcome", "released")], s.address.released.to_string());
    addr.push(
        &[("outcome", "shared")],
        s.address.suppressed_shared.to_string(),
    );
    addr.push(
        &[("outcome", "named")],
        s.address.settled_by_name.to_string(),
    );
    let mut shared = Family::new(
        "kaswatch_shared_addresses",
        Kind::Counter,
        "Addresses resolved from Kaspersky names found to serve other names too (they give no address evidence).",
    );
    shared.push(&[], s.address.shared.to_string());
    let mut agg = Family::new(
        "kaswatch_callbacks",
        Kind::Counter,
        "Callbacks to Kaspersky endpoints by category and protocol, all hosts.",
    );
    for c in Category::ALL {
        for p in Protocol::ALL {
            let n = s
                .callbacks
                .get(c as usize)
                .and_then(|r| r.get(p as usize))
                .copied()
                .unwrap_or(0);
            agg.push(
                &[("category", c.as_str()), ("protocol", p.as_str())],
                n.to_string(),
            );
        }
    }
    vec![agg, by_ev, addr, shared]
}

fn evicted_family(s: &Snapshot<'_>) -> Family {
    let mut ev = Family::new(
        "kaswatch_hosts_evicted",
        Kind::Counter,
        "Hosts removed from the host table, by reason.",
    );
    ev.push(
        &[("reason", "capacity")],
        s.hosts.evicted_capacity.to_string(),
    );
    ev.push(&[("reason", "idle")], s.hosts.evicted_idle.to_string());
    ev
}

fn refused_family(s: &Snapshot<'_>) -> Family {
    let mut f = Family::new(
        "kaswatch_hosts_refused",
        Kind::Counter,
        "New hosts not entered at a full host table (a host enters at its second callback there).",
    );
    f.push(&[], s.hosts.refused.to_string());
    f
}

fn all_families(s: &Snapshot<'_>) -> Vec<Family> {
    let mut v = merger_families(s);
    let mut pk = Family::new(
        "kaswatch_packets",
        Kind::Counter,
        "Packets captured or read, by interface.",
    );
    let mut by = Family::new(
        "kaswatch_bytes",
        Kind::Counter,
        "Bytes on the wire of packets captured or read, by interface.",
    );
    let mut dr = Family::new(
        "kaswatch_capture_dropped_packets",
        Kind::Counter,
        "Packets dropped before kaswatch saw them (pcap statistics).",
    );
    for i in s.interfaces {
        pk.push(&[("interface", &i.name)], i.packets.to_string());
        by.push(&[("interface", &i.name)], i.bytes.to_string());
        dr.push(
            &[("interface", &i.name), ("reason", "kernel")],
            i.dropped_kernel.to_string(),
        );
        dr.push(
            &[("interface", &i.name), ("reason", "interface")],
            i.dropped_interface.to_string(),
        );
    }
    let mut de = Family::new(
        "kaswatch_decode_errors",
        Kind::Counter,
        "Packets or messages that failed to decode, by layer.",
    );
    for l in Layer::ALL {
        de.push(
            &[("layer", l.as_str())],
            s.counters.get_decode(l).to_string(),
        );
    }
    let mut ld = Family::new(
        "kaswatch_limit_drops",
        Kind::Counter,
        "Data dropped at a named limit.",
    );
    for l in Limit::ALL {
        let mut n = s.counters.get_limit(l);
        match l {
            Limit::Hosts => n += s.hosts.evicted_capacity + s.hosts.refused,
            Limit::NamesPerHost => n += s.hosts.names_capped,
            Limit::AddressesPerHost => n += s.hosts.addresses_capped,
            Limit::Events => n += s.event_write_errors,
            _ => {}
        }
        ld.push(&[("limit", l.as_str())], n.to_string());
    }
    let mut sg = Family::new(
        "kaswatch_signatures",
        Kind::Gauge,
        "Signatures loaded, by category.",
    );
    for (c, n) in s.signatures {
        sg.push(&[("category", c.as_str())], n.to_string());
    }
    let mut sv = Family::new(
        "kaswatch_signature_set",
        Kind::Info,
        "The active signature set: file=version for each file.",
    );
    sv.push(&[("version", s.signature_version)], "1".into());
    let mut rl = Family::new(
        "kaswatch_signature_reloads",
        Kind::Counter,
        "Signature reloads that took effect (SIGHUP or a changed file).",
    );
    rl.push(&[], s.reloads.0.to_string());
    let mut rf = Family::new(
        "kaswatch_signature_reload_failures",
        Kind::Counter,
        "Signature reloads refused (bad file): the previous set keeps running.",
    );
    rf.push(&[], s.reloads.1.to_string());
    let mut bi = Family::new("kaswatch_build", Kind::Info, "kaswatch build information.");
    bi.push(&[("version", s.version)], "1".into());
    v.extend([pk, by, dr, de, ld, sg, sv, rl, rf, bi]);
    v
}

/// Render the full exposition.
pub fn render(s: &Snapshot<'_>, f: Format) -> String {
    let mut out = String::new();
    for fam in all_families(s) {
        out.push_str(&fam.header(f));
        let name = fam.sample_name();
        for (labels, value) in &fam.samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
    if f == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Most sample lines buffered by a backfill (about 100 bytes each); past it
/// the file stops growing and the run warns.
pub const MAX_BACKFILL_SAMPLES: u64 = 20_000_000;

/// One family's header, sample name and samples as (labels, line).
type Buffered = (String, String, Vec<(String, String)>);

/// `read --backfill FILE --step DUR`: per-host and aggregate series sampled
/// every `step` of packet time, buffered per family (OpenMetrics requires a
/// family's samples to be contiguous) and written by [`Backfill::finish`].
pub struct Backfill {
    path: PathBuf,
    step: u64,
    next: Option<u64>,
    families: Vec<Buffered>,
    pub samples: u64,
    pub truncated: bool,
}

impl Backfill {
    /// Check the file can be created now, so a bad path fails before reading.
    pub fn create(path: &Path, step_ns: u64) -> Result<Self> {
        if step_ns == 0 {
            return Err(Error::Usage("--step must be more than 0".into()));
        }
        std::fs::File::create(path).map_err(|e| Error::input(path, e))?;
        Ok(Backfill {
            path: path.to_path_buf(),
            step: step_ns,
            next: None,
            families: Vec::new(),
            samples: 0,
            truncated: false,
        })
    }

    /// Emit samples for every step boundary at or before `ts` (state before
    /// the observation at `ts` is applied).
    pub fn advance(&mut self, ts: u64, s: &Snapshot<'_>) {
        let step = self.step;
        let next = *self
            .next
            .get_or_insert((ts / step).saturating_add(1).saturating_mul(step));
        let mut b = next;
        while ts >= b {
            if self.truncated {
                b = (ts / step).saturating_add(1).saturating_mul(step);
                break;
            }
            self.sample(b, s);
            b = b.saturating_add(step);
        }
        self.next = Some(b);
    }

    fn sample(&mut self, at: u64, s: &Snapshot<'_>) {
        let ts = fmt_seconds(at);
        let fams = merger_families(s);
        if self.families.is_empty() {
            self.families = fams
                .iter()
                .map(|f| (f.header(Format::OpenMetrics), f.sample_name(), Vec::new()))
                .collect();
        }
        for (fam, slot) in fams.into_iter().zip(self.families.iter_mut()) {
            for (labels, value) in fam.samples {
                if self.samples >= MAX_BACKFILL_SAMPLES {
                    self.truncated = true;
                    return;
                }
                self.samples += 1;
                let line = format!("{}{labels} {value} {ts}\n", slot.1);
                slot.2.push((labels, line));
            }
        }
    }

    /// Sample the final state at the next boundary and write the file.
    pub fn finish(mut self, s: &Snapshot<'_>) -> Result<()> {
        if let Some(b) = self.next {
            if !self.truncated {
                self.sample(b, s);
            }
        }
        let mut out = String::new();
        for (header, _, mut samples) in std::mem::take(&mut self.families) {
            if samples.is_empty() {
                continue;
            }
            // One series after another, each in time order (stable sort).
            samples.sort_by(|a, b| a.0.cmp(&b.0));
            out.push_str(&header);
            for (_, line) in samples {
                out.push_str(&line);
            }
        }
        out.push_str("# EOF\n");
        std::fs::write(&self.path, out).map_err(|e| Error::input(&self.path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_escapes() {
        assert_eq!(fmt_seconds(1_772_442_000_000_000_000), "1772442000");
        assert_eq!(fmt_seconds(1_500_000_000), "1.5");
        assert_eq!(fmt_seconds(1_000_000_001), "1.000000001");
        assert_eq!(
            render_labels(&[("a", "x\"y\\z\n")]),
            "{a=\"x\\\"y\\\\z\\n\"}"
        );
    }

    #[test]
    fn counter_names_per_format() {
        let f = Family::new("kaswatch_callbacks", Kind::Counter, "h");
        assert_eq!(
            f.header(Format::Prometheus),
            "# HELP kaswatch_callbacks_total h\n# TYPE kaswatch_callbacks_total counter\n"
        );
        assert_eq!(
            f.header(Format::OpenMetrics),
            "# HELP kaswatch_callbacks h\n# TYPE kaswatch_callbacks counter\n"
        );
        let i = Family::new("kaswatch_build", Kind::Info, "h");
        assert_eq!(i.sample_name(), "kaswatch_build_info");
        assert_eq!(
            i.header(Format::OpenMetrics),
            "# HELP kaswatch_build h\n# TYPE kaswatch_build info\n"
        );
    }
}
