//! The per-host report printed at the end of `read`: a fixed-width table,
//! JSON or CSV. One row per host that contacted a Kaspersky endpoint, sorted
//! by last seen (most recent first), in three sections: devices ("hosts",
//! on the evidence `--evidence` selects), resolvers (their lookups are their
//! clients'), and other hosts (only evidence outside the selection). Reads
//! the merger's [`HostTable`].

use crate::hosts::{Host, HostTable, Section};
use crate::signatures::Category;
use crate::timefmt::rfc3339;

/// Names shown per host in the table before "+N more".
pub const TABLE_NAMES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

fn names_cell(h: &Host, limit: usize) -> String {
    let shown: Vec<&str> = h.names.iter().take(limit).map(String::as_str).collect();
    let more = h.names.len().saturating_sub(limit) as u64 + h.overflow_names;
    let mut s = shown.join(",");
    if more > 0 {
        s.push_str(&format!(" +{more} more"));
    }
    s
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// What each section's heading says in the table format.
fn heading(sec: Section, hosts: &HostTable) -> String {
    match sec {
        Section::Devices => String::new(),
        Section::Resolvers => {
            "Resolvers: these hosts answer DNS for other hosts, so their Kaspersky lookups are \
             their clients', forwarded. Put the sensor where it sees the clients."
                .to_string()
        }
        Section::Other => format!(
            "Other hosts: only evidence outside --evidence {} (address: they connected, naming \
             nothing, to an address resolved from a Kaspersky name; port: a completed connection \
             on a Kaspersky management port, KSC = the on-site Security Center server). Not \
             counted as devices.",
            hosts.selection.evidence
        ),
    }
}

const SECTIONS: [Section; 3] = [Section::Devices, Section::Resolvers, Section::Other];

fn joined_addrs(a: &[std::net::IpAddr], sep: &str) -> String {
    a.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

fn joined<T>(items: &[T], f: impl Fn(&T) -> &'static str, sep: &str) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(sep)
}

/// Bytes of report text gathered before they are written out: a report of
/// many hosts streams instead of being held whole (10,000 hosts are ~7 MB
/// of JSON).
pub const REPORT_CHUNK: usize = 64 << 10;

/// Render the report into one string (the status page, tests).
pub fn render(hosts: &HostTable, format: Format) -> String {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = write_to(hosts, format, &mut out);
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Write the report to `w` in chunks of about [`REPORT_CHUNK`] bytes (the
/// table format, whose column widths depend on every row, in one piece).
pub fn write_to(
    hosts: &HostTable,
    format: Format,
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    write_to_with(hosts, format, w, json::PARALLEL_ROWS)
}

/// [`write_to`], JSON sections of `parallel` rows or more rendered by two
/// threads.
fn write_to_with(
    hosts: &HostTable,
    format: Format,
    w: &mut dyn std::io::Write,
    parallel: usize,
) -> std::io::Result<()> {
    let sorted = hosts.sorted();
    let sel = hosts.selection;
    let section = |sec: Section| -> Vec<&Host> {
        sorted
            .iter()
            .copied()
            .filter(|h| h.section(&sel) == sec)
            .collect()
    };
    match format {
        Format::Json => json::render_with(
            [
                ("hosts", section(Section::Devices)),
                ("other", section(Section::Other)),
                ("resolvers", section(Section::Resolvers)),
            ],
            w,
            parallel,
        ),
        Format::Csv => {
            let mut s = String::from("host,mac,first_seen,last_seen,update,ksn,activation,management,portal,other,protocols,evidence,names,more_names,managed,role,section,device,addresses,hostname,fqdn,vendor,vendor_class,ksc_servers\n");
            for sec in SECTIONS {
                for h in section(sec) {
                    let cols: Vec<String> = [
                        h.ip.to_string(),
                        h.mac_string().unwrap_or_default(),
                        rfc3339(h.first_seen),
                        rfc3339(h.last_seen),
                    ]
                    .into_iter()
                    .chain(
                        Category::ALL
                            .iter()
                            .map(|c| h.category_total(*c).to_string()),
                    )
                    .chain([
                        joined(&h.protocols(), |p| p.as_str(), " "),
                        joined(&h.evidence(), |e| e.as_str(), " "),
                        h.names.join(" "),
                        h.overflow_names.to_string(),
                        h.managed.to_string(),
                        h.role.as_str().to_string(),
                        sec.as_str().to_string(),
                        h.key.label(),
                        joined_addrs(&h.addresses, " "),
                        h.hostname.clone().unwrap_or_default(),
                        h.fqdn.clone().unwrap_or_default(),
                        h.vendor().unwrap_or_default(),
                        h.vendor_class.clone().unwrap_or_default(),
                        joined_addrs(&h.ksc_servers, " "),
                    ])
                    .collect();
                    let line: Vec<String> = cols.iter().map(|c| csv_field(c)).collect();
                    s.push_str(&line.join(","));
                    s.push('\n');
                    if s.len() >= REPORT_CHUNK {
                        w.write_all(s.as_bytes())?;
                        s.clear();
                    }
                }
            }
            w.write_all(s.as_bytes())
        }
        Format::Table => {
            let mut s = String::new();
            for sec in SECTIONS {
                let rows = section(sec);
                if sec == Section::Devices && rows.is_empty() {
                    s.push_str("no host contacted a Kaspersky endpoint\n");
                }
                if rows.is_empty() {
                    continue;
                }
                if sec != Section::Devices {
                    s.push('\n');
                    s.push_str(&heading(sec, hosts));
                    s.push('\n');
                }
                s.push_str(&table(&rows));
            }
            w.write_all(s.as_bytes())
        }
    }
}

/// One fixed-width table of hosts.
fn table(hosts: &[&Host]) -> String {
    let header = [
        "HOST",
        "MAC",
        "HOSTNAME",
        "VENDOR",
        "FIRST SEEN",
        "LAST SEEN",
        "UPD",
        "KSN",
        "ACT",
        "MGMT",
        "PORTAL",
        "OTHER",
        "PROTOCOLS",
        "EVIDENCE",
        "KSC",
        "NAMES",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for h in hosts {
        let host = match h.addresses.len() {
            0 | 1 => h.ip.to_string(),
            n => format!("{} +{}", h.ip, n - 1),
        };
        let mut r = vec![
            host,
            h.mac_string().unwrap_or_else(|| "-".into()),
            h.hostname.clone().unwrap_or_else(|| "-".into()),
            h.vendor().unwrap_or_else(|| "-".into()),
            rfc3339(h.first_seen),
            rfc3339(h.last_seen),
        ];
        r.extend(
            Category::ALL
                .iter()
                .map(|c| h.category_total(*c).to_string()),
        );
        r.push(joined(&h.protocols(), |p| p.as_str(), ","));
        r.push(joined(&h.evidence(), |e| e.as_str(), ","));
        r.push(if h.ksc_servers.is_empty() {
            "-".to_string()
        } else {
            joined_addrs(&h.ksc_servers, ",")
        });
        r.push(names_cell(h, TABLE_NAMES));
        rows.push(r);
    }
    let ncol = header.len();
    let widths: Vec<usize> = (0..ncol)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.len()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut s = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == ncol {
                    c.clone()
                } else {
                    format!("{c:<w$}", w = widths.get(i).copied().unwrap_or(0))
                }
            })
            .collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

/// The JSON report, written straight into one buffer in serde_json's
/// pretty layout (two-space indent, keys in alphabetical order: the order
/// the report has always had). No row structs, maps or tree per host: a
/// 10,000-host report is ~7 MB and was a fifth of a host flood's run time
/// through `serde_json::to_string_pretty` of row structs.
mod json {
    use super::{Category, Host};
    use crate::hosts::{push_ip, push_mac};
    use crate::timefmt::{push_rfc3339, push_u64};
    use std::fmt::Write;

    /// Bytes of a host row at most, nearly always (most are 600-900): room
    /// kept in the chunk buffer beyond [`super::REPORT_CHUNK`].
    const ROW_BYTES: usize = 4096;

    /// A JSON string with serde_json's escapes (`\"`, `\\`, `\b`, `\f`,
    /// `\n`, `\r`, `\t`, other control bytes as `\u00xx`).
    pub(super) fn string(o: &mut String, s: &str) {
        // Nearly every string has nothing to escape: one pass with no
        // early exit (it compiles to vector compares), then one copy.
        if !s.bytes().fold(false, |any, b| any | escaped(b)) {
            o.reserve(s.len() + 2);
            o.push('"');
            o.push_str(s);
            o.push('"');
            return;
        }
        o.push('"');
        let mut rest = s;
        while let Some(i) = rest.bytes().position(escaped) {
            let (head, tail) = rest.split_at_checked(i).unwrap_or((rest, ""));
            o.push_str(head);
            let Some(b) = tail.bytes().next() else { break };
            match b {
                b'"' => o.push_str("\\\""),
                b'\\' => o.push_str("\\\\"),
                0x08 => o.push_str("\\b"),
                0x0c => o.push_str("\\f"),
                b'\n' => o.push_str("\\n"),
                b'\r' => o.push_str("\\r"),
                b'\t' => o.push_str("\\t"),
                _ => {
                    let _ = write!(o, "\\u{:04x}", b);
                }
            }
            rest = tail.get(1..).unwrap_or("");
        }
        o.push_str(rest);
        o.push('"');
    }

    /// Which bytes a JSON string escapes.
    fn escaped(b: u8) -> bool {
        b < 0x20 || b == b'"' || b == b'\\'
    }

    /// An array as a host field (items at indent 8), each written by `item`.
    fn list_with<T>(
        o: &mut String,
        items: impl IntoIterator<Item = T>,
        mut item: impl FnMut(&mut String, T),
    ) {
        let mut empty = true;
        for x in items {
            o.push_str(if empty { "[\n        " } else { ",\n        " });
            empty = false;
            item(o, x);
        }
        o.push_str(if empty { "[]" } else { "\n      ]" });
    }

    /// An array of strings as a host field.
    fn list<S: AsRef<str>>(o: &mut String, items: impl IntoIterator<Item = S>) {
        list_with(o, items, |o, s| string(o, s.as_ref()));
    }

    /// An array of addresses as a host field (an address's text needs no
    /// escaping).
    fn addresses(o: &mut String, items: &[std::net::IpAddr]) {
        list_with(o, items, |o, a| plain(o, |o| push_ip(o, a)));
    }

    /// Most keys a counts object has (categories, evidence kinds).
    const MAX_COUNT_KEYS: usize = 8;
    const _: () = assert!(
        Category::ALL.len() <= MAX_COUNT_KEYS
            && crate::evidence::Evidence::ALL.len() <= MAX_COUNT_KEYS
    );

    /// An object of counts as a host field, keys sorted (at most
    /// [`MAX_COUNT_KEYS`] of them, on the stack).
    fn counts(o: &mut String, items: impl IntoIterator<Item = (&'static str, u64)>) {
        let mut keys: arrayvec::ArrayVec<(&'static str, u64), MAX_COUNT_KEYS> =
            items.into_iter().take(MAX_COUNT_KEYS).collect();
        keys.sort_unstable_by_key(|(name, _)| *name);
        let mut empty = true;
        for (name, n) in keys {
            o.push_str(if empty { "{\n        " } else { ",\n        " });
            empty = false;
            string(o, name);
            o.push_str(": ");
            push_u64(o, n);
        }
        o.push_str(if empty { "{}" } else { "\n      }" });
    }

    /// A string field's text that needs no escaping (addresses, times).
    fn plain(o: &mut String, write: impl FnOnce(&mut String)) {
        o.push('"');
        write(o);
        o.push('"');
    }

    fn opt(o: &mut String, v: Option<&str>) {
        match v {
            Some(v) => string(o, v),
            None => o.push_str("null"),
        }
    }

    /// One host at indent 4 (fields at 6), fields in alphabetical order.
    fn host(o: &mut String, h: &Host) {
        o.push_str("{\n      \"addresses\": ");
        addresses(o, &h.addresses);
        o.push_str(",\n      \"callbacks\": ");
        counts(
            o,
            Category::ALL
                .into_iter()
                .map(|c| (c.as_str(), h.category_total(c)))
                .filter(|(_, n)| *n > 0),
        );
        o.push_str(",\n      \"device\": ");
        plain(o, |o| h.key.push_label(o));
        o.push_str(",\n      \"evidence\": ");
        counts(
            o,
            h.evidence()
                .into_iter()
                .map(|e| (e.as_str(), h.evidence_total(e))),
        );
        o.push_str(",\n      \"first_seen\": ");
        plain(o, |o| push_rfc3339(o, h.first_seen));
        o.push_str(",\n      \"fqdn\": ");
        opt(o, h.fqdn.as_deref());
        o.push_str(",\n      \"host\": ");
        plain(o, |o| push_ip(o, &h.ip));
        o.push_str(",\n      \"hostname\": ");
        opt(o, h.hostname.as_deref());
        o.push_str(",\n      \"ksc_servers\": ");
        addresses(o, &h.ksc_servers);
        o.push_str(",\n      \"last_seen\": ");
        plain(o, |o| push_rfc3339(o, h.last_seen));
        o.push_str(",\n      \"mac\": ");
        match h.mac {
            Some(m) => plain(o, |o| push_mac(o, m)),
            None => o.push_str("null"),
        }
        o.push_str(",\n      \"managed\": ");
        o.push_str(if h.managed { "true" } else { "false" });
        o.push_str(",\n      \"more_names\": ");
        push_u64(o, h.overflow_names);
        o.push_str(",\n      \"names\": ");
        list(o, &h.names);
        o.push_str(",\n      \"protocols\": ");
        list(o, h.protocols().into_iter().map(|p| p.as_str()));
        o.push_str(",\n      \"role\": ");
        string(o, h.role.as_str());
        o.push_str(",\n      \"total\": ");
        push_u64(o, h.total());
        o.push_str(",\n      \"vendor\": ");
        opt(o, h.vendor().as_deref());
        o.push_str(",\n      \"vendor_class\": ");
        opt(o, h.vendor_class.as_deref());
        o.push_str("\n    }");
    }

    /// The report: each section's key and its hosts, keys in order, written
    /// to `w` whenever a chunk's worth has gathered.
    /// Rows in a section from which two threads render it.
    pub(super) const PARALLEL_ROWS: usize = 2048;
    /// Rows a thread renders at a time in a section rendered by two (~45
    /// KiB, at most [`ROW_BYTES`] each).
    const BLOCK_ROWS: usize = 64;

    /// The report, sections of `parallel` rows or more rendered by two
    /// threads.
    pub(super) fn render_with(
        sections: [(&str, Vec<&Host>); 3],
        w: &mut dyn std::io::Write,
        parallel: usize,
    ) -> std::io::Result<()> {
        let mut o = String::with_capacity(super::REPORT_CHUNK + ROW_BYTES);
        o.push('{');
        for (i, (key, rows)) in sections.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            o.push_str("\n  ");
            string(&mut o, key);
            o.push_str(": ");
            if rows.is_empty() {
                o.push_str("[]");
                continue;
            }
            if rows.len() >= parallel {
                w.write_all(o.as_bytes())?;
                o.clear();
                rows_in_parallel(rows, w)?;
            } else {
                for (j, h) in rows.iter().enumerate() {
                    row(&mut o, j == 0, h);
                    if o.len() >= super::REPORT_CHUNK {
                        w.write_all(o.as_bytes())?;
                        o.clear();
                    }
                }
            }
            o.push_str("\n  ]");
        }
        o.push_str("\n}\n");
        w.write_all(o.as_bytes())
    }

    /// One row of a section, after the section's `[` or a `,`.
    fn row(o: &mut String, first: bool, h: &Host) {
        o.push_str(if first { "[\n    " } else { ",\n    " });
        host(o, h);
    }

    /// A section's rows in blocks of [`BLOCK_ROWS`]: this thread renders
    /// the even blocks, a second thread the odd ones (at most two rendered
    /// ahead), and this one writes them all in order. The same bytes as
    /// one thread, in about half the time: a 10,000-host report's rows
    /// took 5 ms, after its hosts' MAC registry load. Without a second
    /// thread, one does it all.
    fn rows_in_parallel(rows: &[&Host], w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let block = |i: usize, b: &[&Host]| {
            let mut o = String::with_capacity(b.len() * 1024);
            for (j, h) in b.iter().enumerate() {
                row(&mut o, i == 0 && j == 0, h);
            }
            o
        };
        std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel::<String>(2);
            let odd = std::thread::Builder::new()
                .name("kaswatch-report".into())
                .spawn_scoped(s, move || {
                    for (i, b) in rows.chunks(BLOCK_ROWS).enumerate().skip(1).step_by(2) {
                        if tx.send(block(i, b)).is_err() {
                            break; // the writer stopped (an error)
                        }
                    }
                })
                .is_ok();
            for (i, b) in rows.chunks(BLOCK_ROWS).enumerate() {
                let text = match (i % 2 == 1 && odd).then(|| rx.recv()) {
                    Some(Ok(t)) => t,
                    // Even, or no second thread (or it stopped): here.
                    _ => block(i, b),
                };
                w.write_all(text.as_bytes())?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{Evidence, Role};
    use crate::hosts::Record;
    use crate::proto::Protocol;
    use std::net::IpAddr;

    /// Hosts with every kind of field: several addresses and names, IPv6,
    /// grouped by MAC, KSC servers, hostile identity strings, a resolver
    /// and a host with evidence outside the default selection.
    fn table() -> HostTable {
        let mut t = HostTable::new(100, None);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let mut rec = |addr: &str, mac, ts, cat, proto, ev, role, name: &str| {
            t.record(&Record {
                ip: ip(addr),
                mac,
                bound: mac,
                ts,
                category: cat,
                protocol: proto,
                evidence: ev,
                role,
                name,
                name_key: None,
            });
        };
        let m = Some([0x00, 0x1b, 0x21, 0xaa, 0x00, 0x21]);
        rec(
            "10.0.0.1",
            m,
            5_000_000_000,
            Category::Update,
            Protocol::Dns,
            Evidence::Name,
            Role::Device,
            "dnl-01.geo.kaspersky.com",
        );
        rec(
            "10.0.0.9",
            m,
            6_000_000_000,
            Category::Ksn,
            Protocol::Tls,
            Evidence::Name,
            Role::Device,
            "ksn-a.kaspersky-labs.com",
        );
        rec(
            "10.0.0.9",
            m,
            7_000_000_000,
            Category::Activation,
            Protocol::Http,
            Evidence::Content,
            Role::Device,
            "x\"y\\z",
        );
        rec(
            "2001:db8::23",
            None,
            8_000_000_000,
            Category::Other,
            Protocol::Quic,
            Evidence::Name,
            Role::Device,
            "é.kaspersky.com",
        );
        rec(
            "10.0.0.53",
            None,
            9_000_000_000,
            Category::Update,
            Protocol::Dns,
            Evidence::Name,
            Role::Resolver,
            "ds.kaspersky.com",
        );
        rec(
            "10.0.0.77",
            None,
            9_500_000_000,
            Category::Management,
            Protocol::Ip,
            Evidence::Port,
            Role::Device,
            "",
        );
        let h = t.get_mut(&ip("10.0.0.9")).unwrap();
        h.hostname = Some("bad\u{1}name\t\n\r\u{8}\u{c}\u{7f}\"\\".into());
        h.fqdn = Some("pc-21.corp.example".into());
        h.vendor_class = Some("MSFT 5.0".into());
        h.ksc_servers = vec![ip("10.0.0.100"), ip("fe80::1")];
        h.managed = true;
        t
    }

    /// The direct writer keeps serde_json's pretty layout byte for byte:
    /// parsing the report and printing it again with serde_json (whose maps
    /// sort keys) gives the same bytes.
    #[test]
    fn json_matches_serde_layout() {
        let t = table();
        let out = render(&t, Format::Json);
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(v["hosts"].as_array().map(Vec::len), Some(2), "{out}");
        assert_eq!(v["resolvers"].as_array().map(Vec::len), Some(1), "{out}");
        assert_eq!(v["other"].as_array().map(Vec::len), Some(1), "{out}");
        let again = serde_json::to_string_pretty(&v).unwrap() + "\n";
        assert_eq!(out, again);
        let empty = render(&HostTable::new(1, None), Format::Json);
        assert_eq!(
            empty,
            "{\n  \"hosts\": [],\n  \"other\": [],\n  \"resolvers\": []\n}\n"
        );
    }

    /// Every byte value and some multi-byte characters escape as serde_json
    /// escapes them.
    #[test]
    fn json_strings_escape_as_serde() {
        let mut all: Vec<String> = (0u32..0x80)
            .filter_map(char::from_u32)
            .map(|c| format!("a{c}b{c}"))
            .collect();
        all.extend(["", "\"", "\\", "é\u{0}ü", "日本\n", "\u{2028}\u{fffd}"].map(String::from));
        for s in all {
            let mut o = String::new();
            json::string(&mut o, &s);
            assert_eq!(o, serde_json::to_string(&s).unwrap(), "{s:?}");
        }
    }

    /// A table of hosts 10.0.0.0 + i for i below `n`, each with one DNS
    /// callback for `h<i>.upd.kaspersky.com`; `vary` gives host i's MAC,
    /// time, category and role.
    fn numbered_hosts(
        n: u32,
        vary: impl Fn(u32) -> (Option<[u8; 6]>, u64, Category, Role),
    ) -> HostTable {
        let mut t = HostTable::new(10_000, None);
        for i in 0..n {
            let (mac, ts, category, role) = vary(i);
            t.record(&Record {
                ip: IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)),
                mac,
                bound: None,
                ts,
                category,
                protocol: Protocol::Dns,
                evidence: Evidence::Name,
                role,
                name: &format!("h{i}.upd.kaspersky.com"),
                name_key: None,
            });
        }
        t
    }

    /// A writer that fails once it has taken this many writes.
    struct FailsAfter(usize);

    impl std::io::Write for FailsAfter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.0 -= 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A section rendered by two threads, in blocks, is byte for byte the
    /// one-thread report, whatever the threshold; a failing writer is an
    /// error.
    #[test]
    fn a_big_section_rendered_by_two_threads_is_the_same_report() {
        let t = numbered_hosts(3_000, |i| {
            let role = if i % 97 == 0 {
                Role::Resolver
            } else {
                Role::Device
            };
            (
                Some([0, 0x1b, 0x21, 0, (i >> 8) as u8, i as u8]),
                1_700_000_000_000_000_000 + u64::from(i) * 1_000_000_007,
                Category::ALL[i as usize % Category::ALL.len()],
                role,
            )
        });
        let json = |parallel: usize| {
            let mut out = Vec::new();
            write_to_with(&t, Format::Json, &mut out, parallel).unwrap();
            String::from_utf8(out).unwrap()
        };
        let one = json(usize::MAX);
        assert!(
            one.matches("\"host\": ").count() == 3_000,
            "every host once"
        );
        // Every section in parallel (blocks down to one row), the default.
        for parallel in [1, 2, 65, json::PARALLEL_ROWS] {
            assert!(json(parallel) == one, "parallel from {parallel} rows");
        }
        // A writer failing partway is an error, not a hang.
        assert!(write_to_with(&t, Format::Json, &mut FailsAfter(5), 1).is_err());
    }

    /// A report larger than a chunk is written in several writes of about
    /// a chunk each (never held whole), and says exactly what `render` says.
    #[test]
    fn a_big_report_streams_in_chunks() {
        let t = numbered_hosts(600, |i| {
            (
                Some([2, 0, 0, 0, (i >> 8) as u8, i as u8]),
                1_700_000_000_000_000_000 + u64::from(i),
                Category::Update,
                Role::Device,
            )
        });
        struct Writes(Vec<usize>, Vec<u8>);
        impl std::io::Write for Writes {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.push(b.len());
                self.1.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        for format in [Format::Json, Format::Csv] {
            let mut w = Writes(Vec::new(), Vec::new());
            write_to(&t, format, &mut w).unwrap();
            let whole = render(&t, format);
            assert!(
                whole.len() > REPORT_CHUNK + 4096,
                "{format:?}: {}",
                whole.len()
            );
            assert_eq!(String::from_utf8(w.1).unwrap(), whole, "{format:?}");
            assert!(w.0.len() >= 2, "{format:?}: {:?}", w.0);
            assert!(
                w.0.iter().all(|n| *n <= REPORT_CHUNK + 4096),
                "{format:?}: {:?}",
                w.0
            );
        }
        // A writer that fails: an error, no panic.
        for format in [Format::Json, Format::Csv, Format::Table] {
            assert!(write_to(&t, format, &mut FailsAfter(0)).is_err());
        }
    }
}
