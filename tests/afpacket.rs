//! `kaswatch live --capture afpacket` (root only, else skipped visibly;
//! fails under CI=true): the Ethernet frames of captures/demo.pcapng are
//! replayed with tcpreplay over a veth pair between two fresh network
//! namespaces into `live --capture afpacket --fanout 2` and into the libpcap
//! backend, one after the other; the host table (`/api/hosts`, times
//! removed) and the events (time, frame number and interface name removed) must be the same,
//! and the expected demo hosts. Also: a bad interface is one line and exit 1,
//! bad flags are usage errors, and `--bpf` applies (same hosts as
//! `read --filter` with the same expression).
#![cfg(test)]

mod common;
#[path = "common/netns.rs"]
mod netns;

use common::*;
use netns::Netns;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn usable(test: &str) -> bool {
    if !is_root() {
        skip(
            test,
            "needs root (network namespaces, AF_PACKET sockets); run `sudo cargo test --test afpacket`",
        );
        return false;
    }
    have("ip", test) && have("tcpreplay", test) && have("curl", test)
}

/// `kaswatch live -i <sensor end>` inside the sensor namespace; killed on drop.
struct Sensor {
    guard: ChildGuard,
    stderr: std::path::PathBuf,
    ns: String,
    port: u16,
}

impl Sensor {
    fn start(ns: &Netns, dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Sensor {
        let port = 10470;
        let stderr = dir.join("kaswatch.err");
        let child = Command::new("ip")
            .envs(env.iter().copied())
            .args(["netns", "exec", &ns.sensor, bin(), "live", "-i"])
            .arg(&ns.sensor_if)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("-s")
            .arg(signatures())
            .arg("--events")
            .arg(dir.join("events.jsonl"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let s = Sensor {
            guard: ChildGuard(Some(child)),
            stderr,
            ns: ns.sensor.clone(),
            port,
        };
        let h = s.get("/healthz", Duration::from_secs(20), |b| b == "ok\n");
        assert_eq!(h, "ok\n", "kaswatch /healthz: {}", s.log());
        s
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    fn get(&self, path: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        poll_cmd(
            &["ip", "netns", "exec", &self.ns, "curl", "-s", &url],
            timeout,
            ok,
        )
    }
    /// SIGTERM and wait; did it exit 0?
    fn terminate(&mut self) -> bool {
        let mut c = self.guard.0.take().unwrap();
        let t = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return st.success();
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The report sections with the packet times taken out.
fn timeless(v: &serde_json::Value) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for sec in ["hosts", "resolvers", "other"] {
        let mut rows = v[sec].as_array().cloned().unwrap_or_default();
        for r in &mut rows {
            if let Some(o) = r.as_object_mut() {
                o.remove("first_seen");
                o.remove("last_seen");
            }
        }
        out.insert(sec.into(), serde_json::Value::Array(rows));
    }
    serde_json::Value::Object(out)
}

/// (host, category) -> callbacks of the `hosts` section.
fn table(v: &serde_json::Value) -> Vec<((String, String), String)> {
    let mut t = Vec::new();
    for r in v["hosts"].as_array().into_iter().flatten() {
        let host = r["host"].as_str().unwrap_or("").to_string();
        for (cat, n) in r["callbacks"].as_object().into_iter().flatten() {
            t.push(((host.clone(), cat.clone()), n.to_string()));
        }
    }
    t.sort();
    t
}

/// Replay `pcap` into a sensor started with `extra`; wait until its host
/// table equals `want`; return (report without times, events without time
/// and frame, stderr).
fn run_live(
    pcap: &Path,
    extra: &[&str],
    want: &[((String, String), String)],
) -> (serde_json::Value, Vec<serde_json::Value>, String) {
    run_live_env(pcap, extra, &[], Duration::from_secs(30), want)
}

/// [`run_live`] with the sensor's environment extended by `env`, and at
/// most `wait` after the replay for the host table.
fn run_live_env(
    pcap: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
    wait: Duration,
    want: &[((String, String), String)],
) -> (serde_json::Value, Vec<serde_json::Value>, String) {
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new();
    let mut sensor = Sensor::start(&ns, dir.path(), extra, env);
    ns.replay(pcap);
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).unwrap_or_default();
    let body = sensor.get("/api/hosts", wait, |s| table(&parse(s)) == want);
    let report = parse(&body);
    assert_eq!(
        table(&report),
        want,
        "{extra:?}: {body}\nkaswatch: {}",
        sensor.log()
    );
    assert!(
        sensor.terminate(),
        "kaswatch did not exit 0: {}",
        sensor.log()
    );
    let log = sensor.log();
    let events: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(o) = e.as_object_mut() {
                o.remove("ts");
                o.remove("frame");
                // The interface name differs between runs (a new veth each).
                o.remove("file");
            }
            e
        })
        .collect();
    (timeless(&report), events, log)
}

fn demo_ethernet(dir: &Path) -> std::path::PathBuf {
    let demo = dir.join("demo-ethernet.pcap");
    let (n, skipped) = ethernet_only(&capture("demo.pcapng"), &demo);
    assert_eq!((n, skipped), (70, 4));
    demo
}

#[test]
fn afpacket_fanout_matches_pcap() {
    if !usable("afpacket_fanout_matches_pcap") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo = demo_ethernet(dir.path());
    let mut want = demo_expected();
    want.sort();
    let (pcap_report, pcap_events, _) = run_live(&demo, &[], &want);
    let (af_report, af_events, log) =
        run_live(&demo, &["--capture", "afpacket", "--fanout", "2"], &want);
    assert_eq!(
        af_report, pcap_report,
        "host table differs; kaswatch: {log}"
    );
    assert_eq!(af_events.len(), 9, "{af_events:?}");
    assert_eq!(af_events, pcap_events, "events differ");
    // Both sockets of the group received packets (flows hash over both).
    let per: Vec<u64> = log
        .lines()
        .find_map(|l| l.split("packets per fanout worker: ").nth(1))
        .unwrap_or_else(|| panic!("no per-worker line: {log}"))
        .split(", ")
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert_eq!(per.len(), 2, "{log}");
    assert!(per.iter().all(|n| *n > 0), "{log}");
    assert!(per.iter().sum::<u64>() >= 70, "{log}");
    // One socket and small rings: the same again.
    let (one_report, one_events, _) = run_live(
        &demo,
        &[
            "--capture",
            "afpacket",
            "--ring-block-size",
            "65536",
            "--ring-blocks",
            "4",
        ],
        &want,
    );
    assert_eq!(one_report, pcap_report);
    assert_eq!(one_events, pcap_events);
}

#[test]
fn held_quic_initials_go_through_live() {
    // New QUIC connections' Initials held for batched keys
    // (KASWATCH_QUIC_BATCH=1, what a CPU without the SHA extensions does
    // by default) must be let go by the live capture loops, not only when
    // more traffic comes: a quiet link after three Initials still shows
    // their hosts, the same report and events as keys one at a time, with
    // libpcap and with two fanout workers; and the hosts `read` finds.
    if !usable("held_quic_initials_go_through_live") {
        return;
    }
    let quic = capture("quic.pcap");
    let out = run(&["read", "--format", "json", "-q", "captures/quic.pcap"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want = table(&serde_json::from_slice(&out.stdout).unwrap());
    assert_eq!(want.len(), 3, "{want:?}");
    let (one_report, one_events, _) = run_live_env(
        &quic,
        &[],
        &[("KASWATCH_QUIC_BATCH", "0")],
        Duration::from_secs(30),
        &want,
    );
    assert_eq!(one_events.len(), 3, "{one_events:?}");
    // Held datagrams that waited for more traffic would show only when the
    // next packet (on a fresh veth, an IPv6 router solicitation ~4 s later)
    // or the end of the run let them go: 3 s is the bound.
    for extra in [&[][..], &["--capture", "afpacket", "--fanout", "2"][..]] {
        let (report, events, log) = run_live_env(
            &quic,
            extra,
            &[("KASWATCH_QUIC_BATCH", "1")],
            Duration::from_secs(3),
            &want,
        );
        assert_eq!(report, one_report, "{extra:?}: {log}");
        assert_eq!(events, one_events, "{extra:?}: {log}");
    }
}

#[test]
fn afpacket_bpf_applies() {
    if !usable("afpacket_bpf_applies") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let demo = demo_ethernet(dir.path());
    // An untagged host: in the kernel 802.1Q tags are out of the frame, so
    // filters on tagged traffic differ from `read --filter` (as with libpcap).
    let expr = "not host 192.168.10.21";
    // What the same filter gives offline.
    let o = Command::new(bin())
        .arg("read")
        .arg(&demo)
        .args(["--filter", expr, "--format", "json", "-q", "-s"])
        .arg(signatures())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let offline: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let want = table(&offline);
    assert!(!want.is_empty());
    assert!(want.iter().all(|((h, _), _)| h != "192.168.10.21"));
    assert!(want.iter().any(|((h, _), _)| h == "192.168.10.22"));
    let (report, events, _) = run_live(
        &demo,
        &["--capture", "afpacket", "--fanout", "2", "--bpf", expr],
        &want,
    );
    assert_eq!(report, timeless(&offline));
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["src_ip"] != "192.168.10.21"));
}

#[test]
fn afpacket_setup_errors_are_one_line() {
    if !is_root() {
        skip("afpacket_setup_errors_are_one_line", "needs root");
        return;
    }
    let run = |args: &[&str]| {
        let o = Command::new(bin())
            .arg("live")
            .args(args)
            .args(["--listen", "127.0.0.1:0", "-s"])
            .arg(signatures())
            .output()
            .unwrap();
        (o.status.code(), stderr(&o))
    };
    let (code, err) = run(&["-i", "kwnosuch0", "--capture", "afpacket", "--fanout", "2"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("kwnosuch0") && err.contains("no such interface"),
        "{err}"
    );
    for bad in [
        vec!["-i", "lo", "--capture", "afpacket", "--fanout", "0"],
        vec!["-i", "lo", "--capture", "afpacket", "--fanout", "65"],
        vec!["-i", "lo", "--fanout", "2"],
        vec![
            "-i",
            "lo",
            "--capture",
            "afpacket",
            "--ring-block-size",
            "5000",
        ],
        vec![
            "-i",
            "lo",
            "--capture",
            "afpacket",
            "--bpf",
            "not a filter ((",
        ],
    ] {
        let (code, err) = run(&bad);
        assert_eq!(code, Some(2), "{bad:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{bad:?}: {err}");
    }
}
