//! `kaswatch live` end to end (root only, else skipped with a message): a
//! veth pair between two fresh network namespaces, kaswatch capturing on
//! one end and a real Prometheus scraping it every second inside the same
//! namespace, tcpreplay sending captures/demo.pcapng and tunnels.pcap into
//! the other end; the hosts and categories are asserted through Prometheus'
//! query API. Also: SIGTERM exits 0 promptly, an interface that goes down is
//! retried, and setup errors are one line with exit 1. Namespaces and
//! processes are cleaned up on every path by Drop guards.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
#[path = "common/netns.rs"]
mod netns;

use netns::{sh, Netns};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn usable(test: &str) -> bool {
    if !is_root() {
        skip(
            test,
            "needs root (network namespaces, raw capture); run `sudo cargo test`",
        );
        return false;
    }
    have("ip", test) && have("tcpreplay", test) && have("prometheus", test) && have("curl", test)
}

struct Sensor {
    guard: ChildGuard,
    stderr: std::path::PathBuf,
}

impl Sensor {
    fn start(ns: &Netns, port: u16, dir: &std::path::Path) -> Sensor {
        Sensor::start_with(ns, port, dir, &[])
    }
    fn start_with(ns: &Netns, port: u16, dir: &std::path::Path, extra: &[&str]) -> Sensor {
        Sensor::start_sigs(ns, port, dir, &signatures(), extra)
    }
    /// With the signatures at `sigs` (a process that drops privileges gets
    /// world-readable copies, see [`world_readable_copies`]).
    fn start_sigs(
        ns: &Netns,
        port: u16,
        dir: &std::path::Path,
        sigs: &std::path::Path,
        extra: &[&str],
    ) -> Sensor {
        let stderr = dir.join("kaswatch.err");
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.sensor,
                bin(),
                "live",
                "-i",
                &ns.sensor_if,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-s")
            .arg(sigs)
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
        };
        let url = format!("http://127.0.0.1:{port}/healthz");
        let h = poll_cmd(
            &["ip", "netns", "exec", &ns.sensor, "curl", "-s", &url],
            Duration::from_secs(20),
            |s| s == "ok\n",
        );
        assert_eq!(h, "ok\n", "kaswatch /healthz: {}", s.log());
        s
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    /// SIGTERM; returns (exit status success, time taken).
    fn terminate(&mut self) -> (bool, Duration) {
        let mut c = self.guard.0.take().unwrap();
        let t = Instant::now();
        // `ip netns exec` execs the program, so the pid is kaswatch's.
        sh(&["kill", "-TERM", &c.id().to_string()]);
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                return (st.success(), t.elapsed());
            }
            if t.elapsed() > Duration::from_secs(10) {
                let _ = c.kill();
                let _ = c.wait();
                return (false, t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn live_capture_scraped_by_prometheus() {
    if !usable("live_capture_scraped_by_prometheus") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new();
    // libpcap (so tcpreplay) stops at the first pcapng interface whose link
    // type differs from the first one's: demo.pcapng mixes Ethernet and
    // LINKTYPE_RAW, and tcpreplay sends nothing from it. Replay its Ethernet
    // frames; the RAW frames (host 10.8.0.6) cannot go onto Ethernet as is.
    let demo = dir.path().join("demo-ethernet.pcap");
    let (n, skipped) = ethernet_only(&capture("demo.pcapng"), &demo);
    assert_eq!((n, skipped), (70, 4));
    let port = 10470;
    let mut sensor = Sensor::start(&ns, port, dir.path());
    let prom = Prometheus::start(
        None,
        Some(&format!("127.0.0.1:{port}")),
        Some(&ns.sensor),
        9090,
    );

    ns.replay(&demo);
    let q = format!(
        "/api/v1/query?query={}",
        urlencode("kaswatch_host_callbacks_total")
    );
    let mut want = demo_expected();
    want.sort();
    let json = wait_for_hosts(&prom, &q, &want, "after demo", &sensor);
    assert!(!json.contains("10.8.0.6"));

    ns.replay(&capture("tunnels.pcap"));
    for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14] {
        want.push(((format!("10.99.0.{i}"), "update".into()), "1".into()));
    }
    want.push((("2001:db8:99::d".into(), "update".into()), "1".into()));
    want.sort();
    wait_for_hosts(&prom, &q, &want, "after tunnels", &sensor);

    // Health series come through the same scrape (OpenMetrics, as Prometheus asks for it).
    let q = format!(
        "/api/v1/query?query={}",
        urlencode(&format!(
            "kaswatch_packets_total{{interface=\"{}\"}}",
            ns.sensor_if
        ))
    );
    let json = prom.get(&q, Duration::from_secs(10), |s| s.contains("\"value\""));
    assert!(json.contains("\"value\""), "{json}");
    let q = format!("/api/v1/query?query={}", urlencode("kaswatch_hosts"));
    let json = prom.get(&q, Duration::from_secs(10), |s| s.contains("\"18\""));
    assert!(json.contains("\"18\""), "kaswatch_hosts: {json}");

    let (ok, took) = sensor.terminate();
    assert!(ok, "kaswatch did not exit 0 on SIGTERM: {}", sensor.log());
    assert!(took < Duration::from_millis(1500), "SIGTERM took {took:?}");
    let events = std::fs::read_to_string(dir.path().join("events.jsonl")).unwrap();
    assert_eq!(events.lines().count(), 9 + 14, "events flushed: {events}");
}

#[test]
fn live_interface_down_is_retried() {
    if !usable("live_interface_down_is_retried") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new();
    let port = 10470;
    let mut sensor = Sensor::start(&ns, port, dir.path());
    assert!(sh(&[
        "ip",
        "-n",
        &ns.sensor,
        "link",
        "set",
        &ns.sensor_if,
        "down"
    ]));
    wait_for_log(&sensor, "retrying", Duration::from_secs(10));
    assert!(sh(&[
        "ip",
        "-n",
        &ns.sensor,
        "link",
        "set",
        &ns.sensor_if,
        "up"
    ]));
    wait_for_log(&sensor, "reopened", Duration::from_secs(20));
    ns.replay(&capture("tunnels.pcap"));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let m = poll_cmd(
        &["ip", "netns", "exec", &ns.sensor, "curl", "-s", &url],
        Duration::from_secs(10),
        |s| s.contains("kaswatch_hosts{managed=\"false\"} 14"),
    );
    assert!(m.contains("kaswatch_hosts{managed=\"false\"} 14"), "{m}");
    let (ok, _) = sensor.terminate();
    assert!(ok, "{}", sensor.log());
}

#[test]
fn live_setup_errors_are_one_line() {
    if !is_root() {
        skip("live_setup_errors_are_one_line", "needs root");
        return;
    }
    let run = |args: &[&str]| {
        let o = Command::new(bin())
            .arg("live")
            .args(args)
            .arg("-s")
            .arg(signatures())
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["-i", "kwnosuch0", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("kwnosuch0") && err.contains("no such interface"),
        "{err}"
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let (code, err) = run(&["-i", "lo", "--listen", &addr]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&addr) && err.to_lowercase().contains("in use"),
        "{err}"
    );

    let (code, err) = run(&[
        "-i",
        "lo",
        "--bpf",
        "not a filter ((",
        "--listen",
        "127.0.0.1:0",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // Without CAP_NET_RAW (as nobody, via setpriv when available). nobody may
    // not traverse the checkout (a clone in root's 0700 home): it runs
    // world-readable copies of the binary and the signatures.
    if have(
        "setpriv",
        "live_setup_errors_are_one_line (no-permission case)",
    ) {
        let (dir, copies) = world_readable_copies(&[std::path::Path::new(bin()), &signatures()]);
        let o = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&copies[0])
            .args(["live", "-i", "lo", "--listen", "127.0.0.1:0"])
            .arg("-s")
            .arg(&copies[1])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("CAP_NET_RAW"), "{err}");
    }
}

/// Wait until the sensor's log contains `what`; fail with the log after `limit`.
fn wait_for_log(sensor: &Sensor, what: &str, limit: Duration) {
    let t = Instant::now();
    while !sensor.log().contains(what) && t.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        sensor.log().contains(what),
        "no {what:?} in the log: {}",
        sensor.log()
    );
}

#[test]
fn live_drops_privileges_to_user() {
    if !usable("live_drops_privileges_to_user") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ns = Netns::new();
    let port = 10470;
    // Signatures nobody can read wherever the checkout lives.
    let (_sigs_dir, sigs) = world_readable_copies(&[&signatures()]);
    let mut sensor = Sensor::start_sigs(&ns, port, dir.path(), &sigs[0], &["--user", "nobody"]);
    let pid = sensor.guard.0.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_string();
    let nobody = sh_out(&["id", "-u", "nobody"]);
    assert!(
        uid.split_whitespace().skip(1).all(|u| u == nobody.trim()),
        "real/effective/saved uid must all be nobody ({}): {uid}",
        nobody.trim()
    );
    // Still capturing and serving after the switch.
    ns.replay(&capture("tunnels.pcap"));
    let url = format!("http://127.0.0.1:{port}/metrics");
    let m = poll_cmd(
        &["ip", "netns", "exec", &ns.sensor, "curl", "-s", &url],
        Duration::from_secs(20),
        |s| s.contains("kaswatch_hosts{managed=\"false\"} 14"),
    );
    assert!(
        m.contains("kaswatch_hosts{managed=\"false\"} 14"),
        "{m}\n{}",
        sensor.log()
    );
    let (ok, _) = sensor.terminate();
    assert!(ok, "{}", sensor.log());
}

fn sh_out(argv: &[&str]) -> String {
    let o = Command::new(argv[0]).args(&argv[1..]).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Poll Prometheus until the (host, category) -> value table equals `want`;
/// fail with the last answer and kaswatch's log after 30 s.
fn wait_for_hosts(
    prom: &Prometheus,
    q: &str,
    want: &[((String, String), String)],
    when: &str,
    sensor: &Sensor,
) -> String {
    let table = |s: &str| query_hosts(s).into_iter().collect::<Vec<_>>();
    let json = prom.get(q, Duration::from_secs(30), |s| table(s) == want);
    assert_eq!(
        table(&json),
        want,
        "{when}: {json}\nkaswatch: {}",
        sensor.log()
    );
    json
}
