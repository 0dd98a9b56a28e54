//! Faults while `kaswatch live` runs (root only, else skipped visibly; under
//! CI=true a skip fails): the `--events` file's disk fills up (a 256 KiB tmpfs
//! mounted by the test). The sensor must count the lines it drops
//! (`kaswatch_limit_drops_total{limit="events_write_errors"}`), log the
//! failure once (not per line), keep capturing, and resume writing whole
//! lines once space returns. (An interface that goes down and comes back is
//! tested in tests/live_e2e.rs.)

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;
#[path = "common/netns.rs"]
mod netns;

use common::*;
use netns::{sh, Netns};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `n` DNS queries for a Kaspersky update name, each from its own host
/// `10.<a>.<hi>.<lo>`: one callback and one event each.
fn queries(path: &Path, a: u8, n: u16) {
    let mut w = PcapWriter::create(path, 1);
    for i in 0..n {
        let src = [10, a, (i >> 8) as u8 + 1, (i & 0xff) as u8];
        w.packet(
            1_700_000_000_000_000_000 + u64::from(i) * 1000,
            &dns_query(src, i, "dnl-01.geo.kaspersky.com"),
        );
    }
}

/// A tmpfs of `size` mounted on `dir`; unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        assert!(
            sh(&[
                "mount",
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "kwtest",
                dir.to_str().unwrap()
            ]),
            "mount tmpfs on {}",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        sh(&["umount", "-l", self.0.to_str().unwrap()]);
    }
}

/// Fill the file system holding `path` until a write fails with ENOSPC.
fn fill(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let block = vec![0u8; 4096];
    let mut n = 0u64;
    loop {
        match f.write(&block) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::ENOSPC), "filling: {e}");
                break;
            }
        }
    }
    n
}

fn metric(text: &str, series: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[test]
fn events_disk_full_is_counted_logged_once_and_resumes() {
    let test = "events_disk_full_is_counted_logged_once_and_resumes";
    if !is_root() {
        skip(
            test,
            "needs root (tmpfs mount, network namespaces, capture); run `sudo cargo test`",
        );
        return;
    }
    if !(have("ip", test) && have("tcpreplay", test) && have("curl", test) && have("mount", test)) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(&dir.path().join("small"), "256k");
    let events = fs.0.join("events.jsonl");
    let first = dir.path().join("first.pcap");
    let second = dir.path().join("second.pcap");
    const FIRST: u64 = 2000;
    const SECOND: u64 = 20;
    const THIRD: u64 = 300;
    let third = dir.path().join("third.pcap");
    queries(&first, 77, FIRST as u16);
    queries(&second, 78, SECOND as u16);
    queries(&third, 79, THIRD as u16);

    let ns = Netns::new();
    let port = 10470;
    let log = dir.path().join("kaswatch.err");
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.sensor,
            bin(),
            "live",
            "-i",
            &ns.sensor_if,
        ])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("-s")
        .arg(signatures())
        .arg("--events")
        .arg(&events)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let scrape = |ok: &dyn Fn(&str) -> bool| {
        poll_cmd(
            &["ip", "netns", "exec", &ns.sensor, "curl", "-s", &url],
            Duration::from_secs(30),
            ok,
        )
    };
    let up = scrape(&|s| s.contains("kaswatch_hosts"));
    assert!(
        up.contains("kaswatch_hosts"),
        "sensor not up: {}",
        read_log()
    );

    // The disk fills up; then 2000 callbacks (about 700 KB of events) arrive.
    let filler = fs.0.join("filler");
    let filled = fill(&filler);
    assert!(filled > 0 && filled <= 256 * 1024, "filled {filled}");
    ns.replay(&first);
    let drops = "kaswatch_limit_drops_total{limit=\"events_write_errors\"}";
    let callbacks = |s: &str| {
        metric(
            s,
            "kaswatch_callbacks_total{category=\"update\",protocol=\"dns\"}",
        )
        .unwrap_or(0)
    };
    let m = scrape(&|s| callbacks(s) == FIRST && metric(s, drops).unwrap_or(0) > 0);
    // Capture went on: every query became a callback; the lines that did
    // not fit were dropped and counted.
    assert_eq!(callbacks(&m), FIRST, "{m}\n{}", read_log());
    let dropped = metric(&m, drops).unwrap();
    assert!(dropped > 0 && dropped < FIRST, "dropped {dropped}");
    let failures: Vec<String> = read_log()
        .lines()
        .filter(|l| l.contains("write failed"))
        .map(String::from)
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "logged once, not per line: {}",
        read_log()
    );
    assert!(
        failures[0].contains(events.to_str().unwrap()) && failures[0].contains("No space left"),
        "{}",
        failures[0]
    );

    // Space returns: writing resumes by itself, then later events arrive.
    std::fs::remove_file(&filler).unwrap();
    let t = Instant::now();
    while !read_log().contains("writing again") && t.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(read_log().contains("writing again"), "{}", read_log());
    ns.replay(&second);
    let m = scrape(&|s| callbacks(s) == FIRST + SECOND);
    assert_eq!(callbacks(&m), FIRST + SECOND, "{m}");
    assert_eq!(
        metric(&m, drops),
        Some(dropped),
        "no drops once space returned"
    );

    // The disk fills again and the sensor stops while it is full: the
    // lines it still held are dropped and counted at exit, and a line the
    // kernel took in part is cut off, so the file holds whole events only.
    // One page is left free, so the kernel takes part of a line.
    let filler = fs.0.join("filler2");
    let n = fill(&filler);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(n - 4096)
        .unwrap();
    ns.replay(&third);
    let m = scrape(&|s| callbacks(s) == FIRST + SECOND + THIRD);
    assert_eq!(callbacks(&m), FIRST + SECOND + THIRD, "{m}");
    std::thread::sleep(Duration::from_millis(500));
    let before = std::fs::read(&events).unwrap();
    eprintln!(
        "events file before exit: {} bytes, last line {}",
        before.len(),
        if before.ends_with(b"\n") {
            "whole"
        } else {
            "torn (to be cut at exit)"
        }
    );
    let mut c = guard.0.take().unwrap();
    sh(&["kill", "-TERM", &c.id().to_string()]);
    let st = c.wait().unwrap();
    assert!(st.success(), "{}", read_log());
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "torn last line");
    let ev: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect();
    let from = |prefix: &str| {
        ev.iter()
            .filter(|e| e["src_ip"].as_str().is_some_and(|s| s.starts_with(prefix)))
            .count() as u64
    };
    assert_eq!(from("10.78."), SECOND, "events after space returned");
    assert!(from("10.79.") < THIRD);
    // Every callback is either in the file or counted as not written.
    let log = read_log();
    let lost: u64 = log
        .lines()
        .find_map(|l| {
            l.strip_prefix("kaswatch: warning: ")?
                .strip_suffix(" event lines could not be written")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no count of lost lines at exit: {log}"));
    assert_eq!(ev.len() as u64 + lost, FIRST + SECOND + THIRD, "{log}");
    // One log line per episode, never one per line.
    assert_eq!(log.matches("write failed").count(), 2, "{log}");
    assert_eq!(log.matches("writing again").count(), 1, "{log}");
}
