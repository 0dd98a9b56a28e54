//! End-to-end tests of `kaswatch read` and `check-signatures` through the real
//! binary: the demo and tunnel captures against their generators' expected
//! tables, the exact report and events, formats, inputs (several files,
//! directories, gzip), worker-count determinism, and bad input.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;
use common::*;
use std::io::Write;

fn expected(path: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(root().join(path))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

fn events(args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["read", "-q", "--events", "-"];
    a.extend_from_slice(args);
    let o = run(&a);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn demo_events_match_generator_table() {
    let ev = events(&["captures/demo.pcapng"]);
    let got: Vec<Vec<String>> = ev
        .iter()
        .map(|e| {
            vec![
                e["frame"].to_string(),
                e["src_ip"].as_str().unwrap().to_string(),
                e["src_mac"].as_str().unwrap_or("-").to_string(),
                e["transport"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            ]
        })
        .collect();
    assert_eq!(got, expected("captures/demo.expected.tsv"));
    for e in &ev {
        assert_eq!(e["protocol"], "dns");
        assert_eq!(e["dst_port"], 53);
        assert_eq!(e["file"], "captures/demo.pcapng");
        assert_eq!(e["managed"], false);
        assert!(e["ts"].as_str().unwrap().starts_with("2026-03-02T09:00:0"));
    }
}

#[test]
fn demo_report_and_events_exact() {
    let o = run(&[
        "read",
        "captures/demo.pcapng",
        "--events",
        &tmp("demo.jsonl").to_string_lossy(),
    ]);
    assert!(o.status.success());
    let want = std::fs::read_to_string(root().join("tests/fixtures/demo.table.txt")).unwrap();
    assert_eq!(stdout(&o), want);
    let ev = std::fs::read_to_string(tmp("demo.jsonl")).unwrap();
    let want = std::fs::read_to_string(root().join("tests/fixtures/demo.events.jsonl")).unwrap();
    assert_eq!(ev, want);
    let err = stderr(&o);
    assert!(err.starts_with("kaswatch: 74 packets, "), "{err}");
    assert!(
        err.contains(" 1 file, 0 decode errors, 0 limit drops, 5 hosts matched, 10 callbacks, "),
        "{err}"
    );
}

#[test]
fn demo_formats_json_and_csv() {
    let o = run(&["read", "-q", "captures/demo.pcapng", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let hosts = v["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 5);
    let a = hosts.iter().find(|h| h["host"] == "192.168.10.21").unwrap();
    assert_eq!(a["callbacks"]["ksn"], 2);
    assert_eq!(a["callbacks"]["update"], 1);
    assert_eq!(a["mac"], "00:1b:21:aa:00:21");
    assert_eq!(a["first_seen"], "2026-03-02T09:00:00Z");
    assert_eq!(a["last_seen"], "2026-03-02T09:00:01Z");
    assert_eq!(
        hosts[0]["host"], "192.168.10.21",
        "sorted by last seen, most recent first"
    );
    let o = run(&["read", "-q", "captures/demo.pcapng", "--format", "csv"]);
    let csv = stdout(&o);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 6);
    assert!(lines[0].starts_with(
        "host,mac,first_seen,last_seen,update,ksn,activation,management,portal,other,"
    ));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("192.168.10.22,00:1b:21:aa:00:22,")
                && l.contains(",1,0,1,0,0,0,dns,")),
        "{csv}"
    );
}

#[test]
fn tunnels_each_encapsulation_reaches_the_inner_name() {
    let ev = events(&["captures/tunnels.pcap"]);
    let got: Vec<Vec<String>> = ev
        .iter()
        .map(|e| {
            let t: Vec<String> = e["tunnel"]
                .as_array()
                .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            vec![
                e["frame"].to_string(),
                e["src_ip"].as_str().unwrap().to_string(),
                t.join(","),
                e["name"].as_str().unwrap().to_string(),
            ]
        })
        .collect();
    assert_eq!(got, expected("captures/tunnels.expected.tsv"));
}

#[test]
fn lookalikes_never_match() {
    // Host 192.168.10.24 in the demo sends only decoys.
    let names = tmp("demo-names.tsv");
    let o = run(&[
        "read",
        "-q",
        "captures/demo.pcapng",
        "--all-names",
        &names.to_string_lossy(),
        "--format",
        "json",
    ]);
    assert!(!stdout(&o).contains("192.168.10.24"));
    let all = std::fs::read_to_string(&names).unwrap();
    let decoys: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("\t192.168.10.24\t"))
        .collect();
    assert_eq!(decoys.len(), 8, "{all}");
}

#[test]
fn several_files_directory_and_gzip_share_one_table() {
    let dir = tmp("indir");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(root().join("captures/tunnels.pcap"), dir.join("a.pcap")).unwrap();
    let gz = dir.join("sub/b.pcapng.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&std::fs::read(root().join("captures/demo.pcapng")).unwrap())
        .unwrap();
    enc.finish().unwrap();
    std::fs::write(dir.join("notes.txt"), "not a capture").unwrap();
    let ev = events(&[&dir.to_string_lossy()]);
    assert_eq!(ev.len(), 24);
    assert!(ev[0]["file"].as_str().unwrap().ends_with("a.pcap"));
    assert!(ev[23]["file"].as_str().unwrap().ends_with("b.pcapng.gz"));
    let ev2 = events(&["captures/tunnels.pcap", "captures/demo.pcapng"]);
    assert_eq!(ev2.len(), 24);
}

#[test]
fn filter_restricts_packets() {
    // tcpdump semantics: "tcp" does not look inside VLAN tags (host B is on VLAN 30).
    let ev = events(&["captures/demo.pcapng", "--filter", "tcp"]);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| e["transport"] == "tcp"));
    let ev = events(&["captures/demo.pcapng", "--filter", "tcp or (vlan and tcp)"]);
    assert_eq!(ev.len(), 3);
    assert!(ev.iter().all(|e| e["transport"] == "tcp"));
    let o = run(&["read", "captures/demo.pcapng", "--filter", "tcp port"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).starts_with("kaswatch: --filter \"tcp port\": "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn worker_count_does_not_change_output() {
    for cap in ["captures/demo.pcapng", "captures/tunnels.pcap"] {
        let one = run(&["read", "-q", "--workers", "1", "--events", "-", cap]);
        let two = run(&["read", "-q", "--workers", "2", "--events", "-", cap]);
        let three = run(&["read", "-q", "--workers", "3", "--events", "-", cap]);
        assert_eq!(stdout(&one), stdout(&two));
        assert_eq!(stdout(&one), stdout(&three));
    }
}

/// Every capture of captures/ and tests/corpus (tunnels: VXLAN, GRE,
/// ERSPAN, Geneve, GTP-U, 6in4, IP-in-IP; IPv4 and IPv6 fragments, some
/// inside GTP-U) gives the same JSON report and the same events with 1, 2
/// and 4 workers, now that packets are sharded by their innermost
/// addresses and fragments follow their datagram's first fragment.
#[test]
fn worker_count_does_not_change_output_on_any_capture() {
    let mut caps: Vec<std::path::PathBuf> = capture_files(&root().join("captures"))
        .iter()
        .map(|r| root().join("captures").join(r))
        .collect();
    caps.extend(
        capture_files(&repo_corpus())
            .iter()
            .map(|r| repo_corpus().join(r)),
    );
    assert!(caps.len() > 50, "{} captures", caps.len());
    let read = |cap: &str, workers: &str| {
        // Events on stdout push the report to stderr: one run checks both.
        let o = read_json_events(cap, workers, &["-q"]);
        (stdout(&o), stderr(&o))
    };
    for cap in &caps {
        let cap = cap.to_string_lossy();
        let one = read(&cap, "1");
        for workers in ["2", "4"] {
            assert!(
                read(&cap, workers) == one,
                "{cap}: --workers {workers} differs from 1"
            );
        }
    }
}

/// A full host table refuses new hosts (or evicts): the report keeps fewer
/// hosts, but every callback still goes to the events log, with the device,
/// hostname and vendor its host entry would have given.
#[test]
fn events_do_not_depend_on_max_hosts() {
    let mut refused = 0;
    for cap in [
        "captures/identity.pcap",
        "captures/tunnels.pcap",
        "captures/demo.pcapng",
    ] {
        let all = events(&["--workers", "1", cap]);
        assert!(all.len() > 3, "{cap}");
        let capped = events(&["--workers", "1", "--max-hosts", "1", cap]);
        assert_eq!(all, capped, "{cap}: events differ under --max-hosts 1");
        let o = run(&[
            "read",
            "--workers",
            "1",
            "--max-hosts",
            "1",
            "--format",
            "csv",
            cap,
        ]);
        let e = stderr(&o);
        let n: u64 = e
            .split(" refused,")
            .next()
            .and_then(|h| h.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{cap}: no refusal count in {e}"));
        refused += n;
    }
    assert!(refused > 0, "no host was refused: the test checks nothing");
    // identity.pcap's events name devices by MAC with hostnames and vendors.
    let ev = events(&[
        "--workers",
        "1",
        "--max-hosts",
        "1",
        "captures/identity.pcap",
    ]);
    assert!(ev
        .iter()
        .any(|e| e["hostname"].is_string() && e["vendor"].is_string()));
}

#[test]
fn host_table_is_bounded() {
    let o = run(&[
        "read",
        "captures/tunnels.pcap",
        "--max-hosts",
        "3",
        "--format",
        "csv",
    ]);
    assert_eq!(stdout(&o).lines().count(), 4);
    assert!(
        stderr(&o).contains(", 3 hosts matched, 14 callbacks, 0 hosts evicted, 11 refused,"),
        "{}",
        stderr(&o)
    );
    // Idle: tunnels.pcap spans 13 s of packet time, one host per second.
    let o = run(&[
        "read",
        "captures/tunnels.pcap",
        "--host-idle",
        "5s",
        "--format",
        "csv",
    ]);
    assert_eq!(stdout(&o).lines().count(), 7, "{}", stdout(&o));
}

fn expect_fail(args: &[&str], code: i32, msg: &str) {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(err.contains(msg), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

#[test]
fn bad_inputs_get_one_clear_line() {
    expect_fail(
        &["read", "nope.pcap"],
        1,
        "kaswatch: nope.pcap: no such file or directory",
    );
    let empty = tmp("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    expect_fail(
        &["read", &empty.to_string_lossy()],
        1,
        "empty.pcap: empty file, not a capture",
    );
    let junk = tmp("junk.pcap");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&junk, bytes).unwrap();
    expect_fail(
        &["read", &junk.to_string_lossy()],
        1,
        "junk.pcap: not a pcap or pcapng capture",
    );
    expect_fail(
        &["read", "captures/demo.pcapng", "--max-hosts", "0"],
        2,
        "--max-hosts must be at least 1",
    );
    expect_fail(
        &["read", "captures/demo.pcapng", "--host-idle", "7x"],
        2,
        "--host-idle: invalid duration unit",
    );
    expect_fail(&["read"], 2, "required");
    let badsig = tmp("bad.toml");
    std::fs::write(&badsig, "[meta]\nversion = \"1\"\ndate = \"x\"\n\n[[signature]]\npattern = \"a.com\"\nmatch = \"sufix\"\ncategory = \"update\"\nsource = \"x\"\n").unwrap();
    expect_fail(
        &[
            "read",
            "-s",
            &badsig.to_string_lossy(),
            "captures/demo.pcapng",
        ],
        1,
        "bad.toml:7: match must be \"exact\" or \"suffix\", not \"sufix\"",
    );
    expect_fail(
        &["check-signatures", &badsig.to_string_lossy()],
        1,
        "bad.toml:7: ",
    );
    expect_fail(
        &["check-signatures", "nodir"],
        1,
        "nodir: no such file or directory",
    );
}

fn truncated_still_reports(src: &str, cut_from_end: usize, want_events: usize) {
    let data = std::fs::read(root().join(src)).unwrap();
    let t = tmp(&format!("trunc-{}", src.replace('/', "_")));
    std::fs::write(&t, &data[..data.len() - cut_from_end]).unwrap();
    let o = run(&["read", "--events", "-", &t.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o).lines().filter(|l| l.starts_with('{')).count(),
        want_events,
        "{}",
        stdout(&o)
    );
    let err = stderr(&o);
    assert!(
        err.contains("warning:") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn truncated_captures_yield_everything_before_the_damage() {
    // The last frames of demo.pcapng are the repeated dc1.ksn query (frame 73) and one more.
    truncated_still_reports("captures/demo.pcapng", 30, 10);
    truncated_still_reports("captures/demo.pcapng", 200, 9);
    truncated_still_reports("captures/tunnels.pcap", 10, 13);
}

#[test]
fn check_signatures_counts_and_tests_names() {
    let o = run(&[
        "check-signatures",
        "signatures",
        "--test",
        "DNL-01.geo.kaspersky.com.",
        "--test",
        "notkaspersky.com",
        "--test",
        "tcp/13000",
        "--test",
        "tcp/13001",
        "--test",
        "http://10.0.0.9/index/u0607g.xml.dif",
        "--test",
        "http://www.example.org/blog/updates/base.html",
        "--test",
        "hex:4b4c5a4600",
        "--test",
        "hex:4b4c4431",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(
        s.contains("tcp/13000: management (port tcp/13000, Server side, at signatures/ports.toml:"),
        "{s}"
    );
    assert!(s.contains("tcp/13001: no match"), "{s}");
    assert!(s.contains("http://10.0.0.9/index/u0607g.xml.dif: host 10.0.0.9: no match; path /index/u0607g.xml.dif: update (path:*/index/u#g.xml.{dif,klz} at signatures/update-content.toml:"), "{s}");
    assert!(s.contains("http://www.example.org/blog/updates/base.html: host www.example.org: no match; path /blog/updates/base.html: no match"), "{s}");
    assert!(
        s.contains("hex:4b4c5a4600: update (magic:KLZF at signatures/update-content.toml:"),
        "{s}"
    );
    assert!(s.contains("hex:4b4c4431: no match"), "{s}");
    assert!(s.contains("update      "), "{s}");
    assert!(s.contains("DNL-01.geo.kaspersky.com.: update (exact dnl-01.geo.kaspersky.com at signatures/update.toml:"), "{s}");
    assert!(s.contains("notkaspersky.com: no match"), "{s}");
}

/// Events as (frame, src, protocol, name) rows for the expected tables whose
/// columns are frame, src_ip, protocol, name.
fn name_rows(cap: &str) -> Vec<Vec<String>> {
    events(&[cap])
        .iter()
        .map(|e| {
            vec![
                e["frame"].to_string(),
                e["src_ip"].as_str().unwrap().to_string(),
                e["protocol"].as_str().unwrap().to_string(),
                e["name"].as_str().unwrap().to_string(),
            ]
        })
        .collect()
}

#[test]
fn quic_v1_v2_and_two_initial_hello() {
    assert_eq!(
        name_rows("captures/quic.pcap"),
        expected("captures/quic.expected.tsv")
    );
    let ev = events(&["captures/quic.pcap"]);
    assert!(ev
        .iter()
        .all(|e| e["alpn"] == "h3" && e["transport"] == "udp"));
}

#[test]
fn real_clients_tls_split_hellos_and_http() {
    assert_eq!(
        name_rows("captures/real-clients.pcap"),
        expected("captures/real-clients.expected.tsv")
    );
    let ev = events(&["captures/real-clients.pcap"]);
    let first = &ev[0];
    assert_eq!(
        (first["alpn"].as_str(), first["ech"].as_bool()),
        (Some("h2"), Some(false))
    );
}

#[test]
fn connections_to_resolved_addresses_are_callbacks() {
    // Address callbacks are decided when the connection's client speaks (or
    // stays silent), so they come out in decision order: compare by frame.
    let mut ev: Vec<serde_json::Value> = events(&["captures/attribution.pcap"])
        .into_iter()
        .filter(|e| e["protocol"] == "ip")
        .collect();
    assert!(ev.iter().all(|e| e["evidence"] == "address"));
    ev.sort_by_key(|e| e["frame"].as_u64());
    let keys = [
        "frame",
        "src_ip",
        "protocol",
        "transport",
        "dst_ip",
        "dst_port",
        "name",
    ];
    assert_eq!(
        columns(&ev, &keys),
        expected("captures/attribution.expected.tsv")
    );
}

#[test]
fn update_protocol_recognised_by_path_without_a_name() {
    let ev = events(&["captures/update-paths.pcap"]);
    assert!(ev.iter().all(|e| e["category"] == "update"));
    let keys = ["frame", "src_ip", "protocol", "name", "signature"];
    assert_eq!(
        columns(&ev, &keys),
        expected("captures/update-paths.expected.tsv")
    );
}

#[test]
fn public_corpus_raises_no_kaspersky_callbacks() {
    // No public capture contains Kaspersky traffic: any callback is a false alarm.
    // tests/corpus always, plus what ../shared/captures-public adds when present.
    let files = public_captures("public_corpus_raises_no_kaspersky_callbacks");
    let o = std::process::Command::new(bin())
        .args(["read", "--format", "csv"])
        .args(files.iter().map(|c| c.path()))
        .current_dir(root())
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(stdout(&o).lines().count(), 1, "{}", stdout(&o));
    // Every capture was read (the summary line counts them): never a pass on nothing.
    assert!(!files.is_empty());
    assert!(
        err.contains(&format!(" {} files,", files.len())),
        "expected {} files read: {err}",
        files.len()
    );
}

/// Rewrite a little-endian µs pcap as big-endian and/or nanosecond pcap.
fn repack_pcap(src: &[u8], big: bool, nanos: bool) -> Vec<u8> {
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    assert_eq!(u32_at(src, 0), 0xa1b2c3d4);
    let mut out = Vec::new();
    out.extend_from_slice(&w32(if nanos { 0xa1b23c4d } else { 0xa1b2c3d4 }));
    out.extend_from_slice(&w16(2));
    out.extend_from_slice(&w16(4));
    for i in [8, 12, 16, 20] {
        out.extend_from_slice(&w32(u32_at(src, i)));
    }
    let mut p = 24;
    while p + 16 <= src.len() {
        let (sec, usec, cap, len) = (
            u32_at(src, p),
            u32_at(src, p + 4),
            u32_at(src, p + 8),
            u32_at(src, p + 12),
        );
        out.extend_from_slice(&w32(sec));
        out.extend_from_slice(&w32(if nanos { usec * 1000 } else { usec }));
        out.extend_from_slice(&w32(cap));
        out.extend_from_slice(&w32(len));
        out.extend_from_slice(&src[p + 16..p + 16 + cap as usize]);
        p += 16 + cap as usize;
    }
    out
}

#[test]
fn pcap_byte_orders_and_nanosecond_timestamps() {
    let src = std::fs::read(root().join("captures/tunnels.pcap")).unwrap();
    let want = events(&["captures/tunnels.pcap"]);
    for (big, nanos) in [(true, false), (false, true), (true, true)] {
        let f = tmp(&format!("repack-{big}-{nanos}.pcap"));
        std::fs::write(&f, repack_pcap(&src, big, nanos)).unwrap();
        let got = events(&[&f.to_string_lossy()]);
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (&g["ts"], &g["name"], &g["frame"]),
                (&w["ts"], &w["name"], &w["frame"]),
                "big={big} nanos={nanos}"
            );
        }
    }
}

#[test]
fn reads_standard_input_plain_and_gzip() {
    use std::process::Stdio;
    let feed = |bytes: Vec<u8>| {
        let mut child = std::process::Command::new(bin())
            .args(["read", "-q", "--events", "-", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        child.wait_with_output().unwrap()
    };
    let raw = std::fs::read(root().join("captures/tunnels.pcap")).unwrap();
    let o = feed(raw.clone());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 14);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&raw).unwrap();
    let o = feed(enc.finish().unwrap());
    assert_eq!(stdout(&o).lines().count(), 14);
    let o = feed(b"not a capture".to_vec());
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        "kaswatch: standard input: not a pcap or pcapng capture (unknown file header)"
    );
}

#[test]
fn dns_response_counts_once_and_alone_on_a_one_way_mirror() {
    // attribution.pcap: hosts .5 and .7 send queries that are answered (one callback
    // each, not two); host .9's query is not in the capture, only its response.
    let ev = events(&["captures/attribution.pcap"]);
    let dns: Vec<Vec<String>> = columns(
        &ev.into_iter()
            .filter(|e| e["protocol"] == "dns")
            .collect::<Vec<_>>(),
        &["src_ip", "name", "dst_ip", "dst_port", "src_mac"],
    );
    assert_eq!(
        dns,
        vec![
            vec![
                "10.20.0.5",
                "dnl-05.geo.kaspersky.com",
                "10.20.0.1",
                "53",
                "02:14:00:00:00:05"
            ],
            vec![
                "10.20.0.7",
                "activation-v2.kaspersky.com",
                "10.20.0.1",
                "53",
                "02:14:00:00:00:07"
            ],
            vec![
                "10.20.0.9",
                "dnl-06.geo.kaspersky.com",
                "10.20.0.1",
                "53",
                "null"
            ],
        ]
    );
}
