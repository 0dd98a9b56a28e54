//! The per-host report printed at the end of `read`: a fixed-width table,
//! JSON or CSV. One row per host that contacted a Kaspersky endpoint, sorted
//! by last seen (most recent first), in three sections: devices ("hosts",
//! on the evidence `--evidence` selects), resolvers (their lookups are their
//! clients'), and other hosts (only evidence outside the selection). Reads
//! the merger's [`HostTable`].

use crate::hosts::{ip_text, Host, HostTable, Section};
use crate::signatures::Category;
use crate::timefmt::rfc3339;
use serde::Serialize;

/// Names shown per host in the table before "+N more".
pub const TABLE_NAMES: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// One host as JSON. Fields are in alphabetical order, the order the
/// report has always had (it used to go through `serde_json::Value`, whose
/// maps sort their keys); serialising the struct directly keeps the bytes
/// and builds no tree (a 10,000-host report is rendered in a few ms).
#[derive(Serialize)]
struct HostRow<'a> {
    addresses: Vec<String>,
    callbacks: std::collections::BTreeMap<&'static str, u64>,
    /// The device's key: its MAC when its addresses are grouped, else `host`.
    device: String,
    evidence: std::collections::BTreeMap<&'static str, u64>,
    first_seen: String,
    fqdn: Option<&'a str>,
    /// Address of the latest callback.
    host: String,
    hostname: Option<&'a str>,
    /// On-site Kaspersky Security Center servers it talks to.
    ksc_servers: Vec<String>,
    last_seen: String,
    mac: Option<String>,
    managed: bool,
    more_names: u64,
    names: &'a [String],
    protocols: Vec<&'static str>,
    role: &'static str,
    total: u64,
    vendor: Option<String>,
    vendor_class: Option<&'a str>,
}

/// The JSON report: the three sections, keys in alphabetical order.
#[derive(Serialize)]
struct JsonReport<'a> {
    hosts: Vec<HostRow<'a>>,
    other: Vec<HostRow<'a>>,
    resolvers: Vec<HostRow<'a>>,
}

fn row(h: &Host) -> HostRow<'_> {
    HostRow {
        host: ip_text(&h.ip),
        device: h.key.label(),
        addresses: h.addresses.iter().map(ip_text).collect(),
        mac: h.mac_string(),
        vendor: h.vendor(),
        hostname: h.hostname.as_deref(),
        fqdn: h.fqdn.as_deref(),
        vendor_class: h.vendor_class.as_deref(),
        ksc_servers: h.ksc_servers.iter().map(ip_text).collect(),
        first_seen: rfc3339(h.first_seen),
        last_seen: rfc3339(h.last_seen),
        callbacks: Category::ALL
            .into_iter()
            .filter(|c| h.category_total(*c) > 0)
            .map(|c| (c.as_str(), h.category_total(c)))
            .collect(),
        total: h.total(),
        protocols: h.protocols().into_iter().map(|p| p.as_str()).collect(),
        evidence: h
            .evidence()
            .into_iter()
            .map(|e| (e.as_str(), h.evidence_total(e)))
            .collect(),
        role: h.role.as_str(),
        names: &h.names,
        more_names: h.overflow_names,
        managed: h.managed,
    }
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

/// Render the report.
pub fn render(hosts: &HostTable, format: Format) -> String {
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
        Format::Json => {
            let rows = |sec| section(sec).into_iter().map(row).collect();
            let report = JsonReport {
                hosts: rows(Section::Devices),
                other: rows(Section::Other),
                resolvers: rows(Section::Resolvers),
            };
            let mut s = serde_json::to_string_pretty(&report).unwrap_or_default();
            s.push('\n');
            s
        }
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
                }
            }
            s
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
            s
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
