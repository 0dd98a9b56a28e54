//! The per-host report printed at the end of `read`: a fixed-width table,
//! JSON or CSV. One row per host that contacted a Kaspersky endpoint, sorted
//! by last seen (most recent first). Reads the merger's [`HostTable`].

use crate::hosts::{Host, HostTable};
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

#[derive(Serialize)]
struct HostRow<'a> {
    host: String,
    mac: Option<String>,
    first_seen: String,
    last_seen: String,
    callbacks: std::collections::BTreeMap<&'static str, u64>,
    total: u64,
    protocols: Vec<&'static str>,
    names: &'a [String],
    more_names: u64,
    managed: bool,
}

fn row(h: &Host) -> HostRow<'_> {
    HostRow {
        host: h.ip.to_string(),
        mac: h.mac_string(),
        first_seen: rfc3339(h.first_seen),
        last_seen: rfc3339(h.last_seen),
        callbacks: Category::ALL
            .into_iter()
            .filter(|c| h.category_total(*c) > 0)
            .map(|c| (c.as_str(), h.category_total(c)))
            .collect(),
        total: h.total(),
        protocols: h.protocols().into_iter().map(|p| p.as_str()).collect(),
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

/// Render the report.
pub fn render(hosts: &HostTable, format: Format) -> String {
    let sorted = hosts.sorted();
    match format {
        Format::Json => {
            let rows: Vec<HostRow> = sorted.iter().map(|h| row(h)).collect();
            let mut s = serde_json::to_string_pretty(&serde_json::json!({ "hosts": rows }))
                .unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Csv => {
            let mut s = String::from("host,mac,first_seen,last_seen,update,ksn,activation,management,portal,other,protocols,names,more_names,managed\n");
            for h in sorted {
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
                    h.protocols()
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    h.names.join(" "),
                    h.overflow_names.to_string(),
                    h.managed.to_string(),
                ])
                .collect();
                s.push_str(
                    &cols
                        .iter()
                        .map(|c| csv_field(c))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                s.push('\n');
            }
            s
        }
        Format::Table => {
            if sorted.is_empty() {
                return "no host contacted a Kaspersky endpoint\n".to_string();
            }
            let header = [
                "HOST",
                "MAC",
                "FIRST SEEN",
                "LAST SEEN",
                "UPD",
                "KSN",
                "ACT",
                "MGMT",
                "PORTAL",
                "OTHER",
                "PROTOCOLS",
                "NAMES",
            ];
            let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
            for h in sorted {
                let mut r = vec![
                    h.ip.to_string(),
                    h.mac_string().unwrap_or_else(|| "-".into()),
                    rfc3339(h.first_seen),
                    rfc3339(h.last_seen),
                ];
                r.extend(
                    Category::ALL
                        .iter()
                        .map(|c| h.category_total(*c).to_string()),
                );
                r.push(
                    h.protocols()
                        .iter()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                );
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
    }
}
