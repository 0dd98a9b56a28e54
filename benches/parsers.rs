//! Criterion micro-benchmarks of the per-packet stages: decode, the DNS,
//! TLS, QUIC and HTTP parsers, the matcher, the host table, and the whole
//! `Worker::process` over real and synthetic captures.
//!
//!     cargo bench --bench parsers -- --warm-up-time 1 --measurement-time 2
//!     cargo bench --bench parsers -- tls            # one group
//!
//! Inputs are built in memory (see `support/frames.rs`) or read from
//! `captures/`, so results depend only on the code. See BENCHMARKS.md.

// A benchmark harness, built without cfg(test) (harness = false), so
// clippy.toml's allow-*-in-tests cannot reach it: a fixture that fails to
// build or parse must stop the run loudly, as in a test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use kaswatch::capture::file::CaptureFile;
use kaswatch::capture::RawPacket;
use kaswatch::decode::{self, linktype, Decoded, Transport};
use kaswatch::hosts::HostTable;
use kaswatch::matcher::Matcher;
use kaswatch::pipeline::{PktMeta, Worker, WorkerConfig};
use kaswatch::proto::{dns, http, quic, tls, Protocol};
use kaswatch::signatures::{Category, SignatureSet};
use kaswatch::stats::Counters;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[path = "support/frames.rs"]
mod frames;

const MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_matcher() -> Matcher {
    let set = SignatureSet::load_paths(&[root().join("signatures")]).expect("shipped signatures");
    Matcher::new(&set)
}

/// Owned packets of a capture (at most `max`).
type Owned = Vec<(u64, u32, Vec<u8>, u32)>;

fn load_capture(path: &Path, max: usize) -> Owned {
    if let Some(v) = frames::read_classic_pcap(path, max) {
        return v;
    }
    let mut v = Vec::new();
    CaptureFile::open(path)
        .expect("open capture")
        .for_each(|_, p| {
            if v.len() < max {
                v.push((p.ts, p.linktype, p.data.to_vec(), p.wire_len));
            }
        });
    v
}

fn raw(p: &(u64, u32, Vec<u8>, u32)) -> RawPacket<'_> {
    RawPacket {
        ts: p.0,
        linktype: p.1,
        interface: 0,
        data: &p.2,
        wire_len: p.3,
    }
}

// ------------------------------------------------------------------ decode

fn bench_decode(c: &mut Criterion) {
    let bulk = frames::tcp4_frame(
        MAC,
        Ipv4Addr::new(10, 1, 2, 3),
        Ipv4Addr::new(192, 0, 2, 10),
        50_123,
        443,
        1_000_000,
        77,
        frames::ACK | frames::PSH,
        &[0xab; 1448],
    );
    let q = frames::dns_query(0x1234, "www.example.com", 28);
    let dns6 = frames::udp6_vlan_frame(
        MAC,
        42,
        "fd00:5e1a::10".parse::<Ipv6Addr>().unwrap(),
        "fd00:5e1a::53".parse::<Ipv6Addr>().unwrap(),
        40_000,
        53,
        &q,
    );
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(1));
    for (name, f) in [("eth_ipv4_tcp_1448", &bulk), ("vlan_ipv6_udp_dns", &dns6)] {
        // Sanity: it decodes to a packet.
        let mut cn = Counters::default();
        assert!(matches!(
            decode::decode(linktype::ETHERNET, f, &mut cn),
            Decoded::Packet(_)
        ));
        g.bench_function(name, |b| {
            let mut cn = Counters::default();
            b.iter(|| {
                let d = decode::decode(linktype::ETHERNET, black_box(f), &mut cn);
                black_box(matches!(d, Decoded::Packet(_)))
            })
        });
        // The same frame through etherparse's slicers alone (Ethernet, VLAN,
        // IP, TCP/UDP; no tunnels, no counters): the figure decode.rs cites
        // for keeping its own link layers.
        assert!(etherparse::SlicedPacket::from_ethernet(f).is_ok_and(|p| p.transport.is_some()));
        g.bench_function(format!("etherparse_sliced/{name}"), |b| {
            b.iter(|| {
                let p = etherparse::SlicedPacket::from_ethernet(black_box(f));
                black_box(p.is_ok_and(|p| p.transport.is_some()))
            })
        });
        g.bench_function(format!("etherparse_lax/{name}"), |b| {
            b.iter(|| {
                let p = etherparse::LaxSlicedPacket::from_ethernet(black_box(f));
                black_box(p.is_ok_and(|p| p.transport.is_some()))
            })
        });
    }
    g.finish();
}

// ------------------------------------------------------------------ dns

fn bench_dns(c: &mut Criterion) {
    let q = frames::dns_query(0xbeef, "dnl-01.geo.kaspersky.com", 1);
    let mut g = c.benchmark_group("dns");
    g.throughput(Throughput::Bytes(q.len() as u64));
    g.bench_function("questions_typical_query", |b| {
        b.iter(|| {
            let mut n = 0usize;
            let w = dns::questions(black_box(&q), |qq| n += qq.name.len());
            black_box((w.map(|w| w.delivered), n))
        })
    });
    g.finish();
}

// ------------------------------------------------------------------ tls

fn bench_tls(c: &mut Criterion) {
    let small_msg = frames::client_hello("dnl-01.geo.kaspersky.com", false, 508);
    let small = frames::tls_records(&small_msg, &[]);
    let pq_msg = frames::client_hello("dnl-01.geo.kaspersky.com", true, 1790);
    let pq = frames::tls_records(&pq_msg, &[1200]);
    let mut g = c.benchmark_group("tls");
    for (name, stream) in [
        ("hello_517B_one_record", &small),
        ("hello_pq_1800B_two_records", &pq),
    ] {
        let mut scratch = Vec::new();
        match tls::scan_client_stream(stream, &mut scratch) {
            tls::TlsScan::Hello(h) => assert_eq!(h.sni, Some(&b"dnl-01.geo.kaspersky.com"[..])),
            other => panic!("{name}: {other:?}"),
        }
        g.throughput(Throughput::Bytes(stream.len() as u64));
        g.bench_function(name, |b| {
            let mut scratch = Vec::with_capacity(4096);
            b.iter(|| {
                let s = tls::scan_client_stream(black_box(stream), &mut scratch);
                black_box(matches!(s, tls::TlsScan::Hello(_)))
            })
        });
    }
    g.finish();
}

// ------------------------------------------------------------------ quic

/// The first client Initial datagram (UDP payload) in captures/quic.pcap.
fn quic_initial() -> Vec<u8> {
    let pkts = load_capture(&root().join("captures/quic.pcap"), 10_000);
    for p in &pkts {
        let mut cn = Counters::default();
        if let Decoded::Packet(d) = decode::decode(p.1, &p.2, &mut cn) {
            if let Transport::Udp { payload, .. } = d.transport {
                if let Some(h) = quic::peek_initial(payload) {
                    if h.version == 1 && payload.len() >= 1200 {
                        return payload.to_vec();
                    }
                }
            }
        }
    }
    panic!("no QUIC v1 Initial in captures/quic.pcap");
}

fn bench_quic(c: &mut Criterion) {
    let dg = quic_initial();
    let mut g = c.benchmark_group("quic");
    g.throughput(Throughput::Bytes(dg.len() as u64));
    {
        let h = quic::peek_initial(&dg).unwrap();
        let mut st = quic::QuicClientState::new(h.version, h.dcid).unwrap();
        st.push_datagram(&dg);
        let hello = st
            .client_hello()
            .expect("Initial holds a whole ClientHello");
        assert!(matches!(tls::scan_handshake(hello), tls::TlsScan::Hello(_)));
    }
    g.bench_function("peek_initial", |b| {
        b.iter(|| black_box(quic::peek_initial(black_box(&dg)).map(|h| h.version)))
    });
    g.bench_function("new_push_initial_1200B", |b| {
        b.iter(|| {
            let h = quic::peek_initial(black_box(&dg)).unwrap();
            let mut st = quic::QuicClientState::new(h.version, h.dcid).unwrap();
            let p = st.push_datagram(&dg);
            black_box((p, st.client_hello().map(<[u8]>::len)))
        })
    });
    g.finish();
}

// ------------------------------------------------------------------ http

fn bench_http(c: &mut Criterion) {
    let req = frames::http_get(
        "dnl-03.geo.kaspersky.com",
        "/bases/av/kdb/i386/kdb-i386-0607g.xml.dif",
    );
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Bytes(req.len() as u64));
    assert!(matches!(
        http::scan_request(&req),
        http::HttpScan::Request(_)
    ));
    g.bench_function("scan_request_get", |b| {
        b.iter(|| {
            black_box(matches!(
                http::scan_request(black_box(&req)),
                http::HttpScan::Request(_)
            ))
        })
    });
    g.finish();
}

// ------------------------------------------------------------------ matcher

/// 100k synthetic signatures: 50k exact `h<i>.svc<i%997>.example<i%13>.net`,
/// 50k suffix `zone<i>.example<i%13>.org`.
fn synthetic_set(n: usize) -> SignatureSet {
    let mut t = String::with_capacity(n * 110);
    t.push_str("[meta]\nversion = \"bench\"\ndate = \"2026-01-01\"\n\n");
    for i in 0..n {
        let (pat, kind) = if i % 2 == 0 {
            (
                format!("h{i}.svc{}.example{}.net", i % 997, i % 13),
                "exact",
            )
        } else {
            (format!("zone{i}.example{}.org", i % 13), "suffix")
        };
        t.push_str(&format!(
            "[[signature]]\npattern = \"{pat}\"\nmatch = \"{kind}\"\ncategory = \"other\"\nsource = \"bench\"\n\n"
        ));
    }
    let mut set = SignatureSet::default();
    set.load_str(Path::new("synthetic.toml"), &t)
        .expect("synthetic signatures");
    set
}

fn bench_matcher(c: &mut Criterion) {
    let shipped = shipped_matcher();
    let big = Matcher::new(&synthetic_set(100_000));
    let cases: [(&str, &Matcher, &str, bool); 6] = [
        ("shipped/hit_exact", &shipped, "s01.upd.kaspersky.com", true),
        (
            "shipped/hit_suffix_deep",
            &shipped,
            "dnl-01.geo.kaspersky.com",
            true,
        ),
        (
            "shipped/miss_5_labels",
            &shipped,
            "r3---sn-4g5e6nzz.googlevideo.com",
            false,
        ),
        ("100k/hit_exact", &big, "h50000.svc150.example2.net", true),
        (
            "100k/hit_suffix",
            &big,
            "a.b.c.zone50001.example3.org",
            true,
        ),
        (
            "100k/miss_5_labels",
            &big,
            "a.b.c.zone50001.example9.org",
            false,
        ),
    ];
    let mut g = c.benchmark_group("matcher");
    g.throughput(Throughput::Elements(1));
    for (name, m, n, hit) in cases {
        assert_eq!(m.lookup(n.as_bytes()).is_some(), hit, "{name} {n}");
        g.bench_function(name, |b| {
            b.iter(|| black_box(m.lookup(black_box(n.as_bytes()))))
        });
    }
    g.bench_function("shipped/lookup_str_mixed_case", |b| {
        b.iter(|| black_box(shipped.lookup_str(black_box("DNL-01.Geo.Kaspersky.com."))))
    });
    g.finish();
}

// ------------------------------------------------------------------ hosts

fn rec(
    ip: IpAddr,
    mac: Option<[u8; 6]>,
    ts: u64,
    category: Category,
    protocol: Protocol,
    name: &str,
) -> kaswatch::hosts::Record<'_> {
    kaswatch::hosts::Record {
        ip,
        mac,
        bound: None,
        ts,
        category,
        protocol,
        evidence: kaswatch::evidence::Evidence::Name,
        role: kaswatch::evidence::Role::Device,
        name,
        name_key: None,
    }
}

fn bench_hosts(c: &mut Criterion) {
    const MAX: usize = 10_000;
    let ip = |i: u32| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
    let mut g = c.benchmark_group("hosts");
    g.throughput(Throughput::Elements(1));
    g.bench_function("record_existing_host", |b| {
        let mut t = HostTable::new(MAX, None);
        for i in 0..1000 {
            t.record(&rec(
                ip(i),
                Some(MAC),
                1,
                Category::Update,
                Protocol::Dns,
                "dnl-01.geo.kaspersky.com",
            ));
        }
        let mut ts = 2u64;
        b.iter(|| {
            ts += 1;
            black_box(t.record(&rec(
                ip(500),
                Some(MAC),
                ts,
                Category::Update,
                Protocol::Tls,
                "dnl-01.geo.kaspersky.com",
            )))
        })
    });
    g.bench_function("record_new_host_evicting", |b| {
        let mut t = HostTable::new(MAX, None);
        for i in 0..MAX as u32 {
            t.record(&rec(
                ip(i),
                None,
                u64::from(i),
                Category::Ksn,
                Protocol::Dns,
                "ksn-a.kaspersky-labs.com",
            ));
        }
        assert_eq!(t.len(), MAX);
        let mut i = MAX as u32;
        b.iter(|| {
            i = i.wrapping_add(1);
            let ev = t.record(&rec(
                ip(i),
                None,
                u64::from(i),
                Category::Ksn,
                Protocol::Dns,
                "ksn-a.kaspersky-labs.com",
            ));
            black_box(ev)
        })
    });
    g.finish();
}

// ------------------------------------------------------------------ pipeline

fn bench_pipeline(c: &mut Criterion) {
    let matcher = Arc::new(shipped_matcher());
    let mut inputs: Vec<(String, Owned)> = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("captures"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().to_string();
            n.contains(".pcap")
        })
        .collect();
    files.sort();
    // The whole-process bench capture, when bench/run.sh has made one.
    let span = root().join("target/bench/span.pcap");
    if span.exists() {
        files.push(span);
    }
    for f in files {
        let pkts = load_capture(&f, 10_000);
        if !pkts.is_empty() {
            inputs.push((f.file_name().unwrap().to_string_lossy().into_owned(), pkts));
        }
    }
    let mut g = c.benchmark_group("pipeline");
    for (name, pkts) in &inputs {
        g.throughput(Throughput::Elements(pkts.len() as u64));
        g.bench_function(format!("worker_process/{name}/{}pkts", pkts.len()), |b| {
            b.iter_batched(
                || Worker::new(matcher.clone(), WorkerConfig::default()),
                |mut w| {
                    for (i, p) in pkts.iter().enumerate() {
                        let meta = PktMeta {
                            seq: i as u64,
                            input: 0,
                            frame: i as u64 + 1,
                        };
                        w.process(meta, &raw(p));
                    }
                    black_box(w.take().len());
                    w
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(
    benches,
    bench_decode,
    bench_dns,
    bench_tls,
    bench_quic,
    bench_http,
    bench_matcher,
    bench_hosts,
    bench_pipeline
);
criterion_main!(benches);
