//! The status page: `read --serve` answers `/api/hosts` with the same rows
//! as `read --format json` plus totals and health, `/` with the page, and
//! a real headless browser (Debian `chromium`) renders the expected hosts
//! from captures/demo.pcapng and captures/precision.pcap, honours the
//! filters preset in the address, and leaves a screenshot in
//! target/test-artifacts/status-page.png. Without chromium the browser test
//! is skipped visibly (and fails under CI=true).

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `kaswatch read CAPTURES --serve 127.0.0.1:PORT`, killed on drop.
struct Served {
    port: u16,
    child: ChildGuard,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

fn captures() -> Vec<PathBuf> {
    vec![capture("demo.pcapng"), capture("precision.pcap")]
}

impl Served {
    fn start(inputs: &[PathBuf]) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let stderr = dir.path().join("kaswatch.err");
        let child = Command::new(bin())
            .arg("read")
            .args(inputs)
            .arg("-s")
            .arg(signatures())
            .args(["--serve", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let s = Served {
            port,
            child: ChildGuard(Some(child)),
            stderr,
            _dir: dir,
        };
        let t = Instant::now();
        while http_get(port, "/healthz").map(|r| r.1) != Some("ok\n".into()) {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "read --serve did not come up: {}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
    /// SIGTERM; the exit status must be success, within a few seconds.
    fn terminate(mut self) {
        let mut c = self.child.0.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let t = Instant::now();
        loop {
            if let Ok(Some(st)) = c.try_wait() {
                assert!(st.success(), "exit {st:?}: {}", self.log());
                return;
            }
            if t.elapsed() > Duration::from_secs(5) {
                let _ = c.kill();
                panic!("read --serve ignored SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// GET over plain HTTP/1.1: (headers, body).
fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    Some((head.to_string(), body.to_string()))
}

fn report_json(inputs: &[PathBuf]) -> serde_json::Value {
    let mut args: Vec<String> = vec!["read".into()];
    args.extend(inputs.iter().map(|p| p.display().to_string()));
    args.extend(["--format".into(), "json".into(), "-q".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

fn hosts_of(v: &serde_json::Value, section: &str) -> Vec<String> {
    let mut h: Vec<String> = v[section]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["host"].as_str().unwrap_or("").to_string())
        .collect();
    h.sort();
    h
}

#[test]
fn api_hosts_is_the_report_plus_totals_and_health() {
    let inputs = captures();
    let want = report_json(&inputs);
    let served = Served::start(&inputs);
    let (head, body) = http_get(served.port, "/api/hosts").expect("GET /api/hosts");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("application/json"), "{head}");
    let got: serde_json::Value = serde_json::from_str(&body).unwrap();
    for sec in ["hosts", "resolvers", "other"] {
        assert_eq!(got[sec], want[sec], "section {sec}");
    }
    // The expected hosts, by section: demo.pcapng's devices and precision.pcap's.
    let devices = hosts_of(&got, "hosts");
    for h in [
        "192.168.10.21",
        "192.168.10.22",
        "192.168.10.26",
        "2001:db8:10::23",
        "10.8.0.6",
        "10.77.0.11",
        "10.77.0.14",
    ] {
        assert!(devices.contains(&h.to_string()), "{h} not in {devices:?}");
    }
    assert_eq!(hosts_of(&got, "resolvers"), ["10.77.0.2"]);
    assert_eq!(hosts_of(&got, "other"), ["10.77.0.15"]);
    let t = &got["totals"];
    assert_eq!(t["hosts"], devices.len());
    assert_eq!(t["resolvers"], 1);
    assert_eq!(t["other"], 1);
    assert_eq!(
        t["managed"].as_u64().unwrap() + t["unmanaged"].as_u64().unwrap(),
        devices.len() as u64
    );
    let rows: u64 = ["hosts", "resolvers", "other"]
        .iter()
        .flat_map(|s| got[*s].as_array().unwrap().iter())
        .map(|r| r["total"].as_u64().unwrap())
        .sum();
    assert_eq!(t["callbacks"], rows, "totals: {t}");
    let h = &got["health"];
    assert_eq!(h["mode"], "read");
    assert_eq!(h["packets"], 244, "health: {h}");
    assert_eq!(h["hosts_tracked"], 9);
    assert_eq!(h["dropped_kernel"], 0);
    assert!(h["signatures"].as_u64().unwrap() > 0);
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));

    let (head, page) = http_get(served.port, "/").expect("GET /");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.to_lowercase().contains("text/html"), "{head}");
    assert!(page.contains("href=\"metrics\"") && page.contains("api/hosts"));
    let (_, metrics) = http_get(served.port, "/metrics").expect("GET /metrics");
    assert!(
        metrics.contains("kaswatch_host_callbacks_total{"),
        "{metrics}"
    );
    let (head, _) = http_get(served.port, "/nosuch").unwrap();
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    served.terminate();
}

#[test]
fn serve_on_a_busy_address_fails_before_reading() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let demo = capture("demo.pcapng");
    let o = run(&["read", demo.to_str().unwrap(), "--serve", &addr]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&addr) && err.to_lowercase().contains("in use"),
        "{err}"
    );
    assert!(stdout(&o).is_empty(), "read before the bind failed");
}

/// Headless chromium with a throwaway profile: `--dump-dom` of `url` after
/// the page has had `budget` of virtual time (its first refresh), or a
/// `--screenshot` when `shot` is given.
fn chromium(url: &str, profile: &Path, shot: Option<&Path>) -> String {
    let mut c = Command::new("timeout");
    c.args([
        "90",
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--window-size=1600,900",
        "--virtual-time-budget=4000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    match shot {
        Some(p) => c.arg(format!("--screenshot={}", p.display())),
        None => c.arg("--dump-dom"),
    };
    let o = c.arg(url).output().unwrap();
    assert!(
        o.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `data-host` of every rendered row, in order.
fn rendered_hosts(dom: &str) -> Vec<String> {
    dom.split("<tr data-host=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(String::from)
        .collect()
}

#[test]
fn status_page_in_headless_chromium() {
    const T: &str = "status_page_in_headless_chromium";
    if !have("chromium", T) {
        return;
    }
    let inputs = captures();
    let want = report_json(&inputs);
    let served = Served::start(&inputs);
    let profile = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{}/", served.port);

    let dom = chromium(&base, &profile.path().join("a"), None);
    assert!(
        dom.contains("data-ready=\"1\""),
        "table never rendered: {dom}"
    );
    let mut all = rendered_hosts(&dom);
    all.sort();
    let mut expected: Vec<String> = ["hosts", "resolvers", "other"]
        .iter()
        .flat_map(|s| hosts_of(&want, s))
        .collect();
    expected.sort();
    assert_eq!(all, expected);
    assert!(all.contains(&"192.168.10.21".to_string()) && all.contains(&"10.77.0.2".into()));
    // Rows carry their section; names render as text, never as markup.
    assert!(dom.contains("data-host=\"10.77.0.2\" data-section=\"resolvers\""));
    assert!(dom.contains("dnl-01.geo.kaspersky.com"));
    assert!(dom.contains(&format!("{} of {} shown", all.len(), all.len())));
    // Totals and health are filled in.
    assert!(dom.contains("data-card=\"devices\""), "{dom}");
    assert!(dom.contains("healthy"), "{dom}");

    // Filters preset in the address.
    let dom = chromium(
        &format!("{base}?section=resolvers"),
        &profile.path().join("b"),
        None,
    );
    assert_eq!(rendered_hosts(&dom), ["10.77.0.2"]);
    let dom = chromium(&format!("{base}?q=dnl-02"), &profile.path().join("c"), None);
    assert_eq!(rendered_hosts(&dom), ["10.8.0.6"]);
    let dom = chromium(
        &format!("{base}?category=ksn&sort=-total"),
        &profile.path().join("d"),
        None,
    );
    assert_eq!(
        rendered_hosts(&dom),
        ["192.168.10.21", "2001:db8:10::23"],
        "ksn hosts, most callbacks first"
    );
    let dom = chromium(
        &format!("{base}?managed=true"),
        &profile.path().join("e"),
        None,
    );
    assert!(rendered_hosts(&dom).is_empty());
    assert!(dom.contains("0 of 9 shown"), "{dom}");

    // A screenshot to look at.
    let out = root().join("target/test-artifacts");
    std::fs::create_dir_all(&out).unwrap();
    let shot = out.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(&base, &profile.path().join("f"), Some(&shot));
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot"
    );
    eprintln!("status page screenshot: {}", shot.display());
    served.terminate();
}
