//! `read` shows progress on stderr only on a terminal and never with -q: a
//! pty from `script` (util-linux) stands in for the terminal; a pipe (as
//! every other test runs the binary) gets the summary line alone.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
use std::process::Command;

/// Run `kaswatch ARGS` on a pty (`script -q -c ... /dev/null`): everything
/// it wrote, carriage returns and escapes included.
fn on_a_terminal(args: &[&str]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut cmd = quote(bin());
    for a in args {
        cmd.push(' ');
        cmd.push_str(&quote(a));
    }
    let o = Command::new("script")
        .args(["-q", "-e", "-c", &cmd, "/dev/null"])
        .current_dir(root())
        .env("COLUMNS", "120")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Progress frames as displayed (each redraw starts after a carriage return).
fn frames(out: &str) -> Vec<String> {
    out.split('\r')
        .map(|f| f.replace("\x1b[2K", ""))
        .filter(|f| f.contains("packets ·"))
        .collect()
}

#[test]
fn no_progress_when_stderr_is_not_a_terminal() {
    let demo = capture("demo.pcapng");
    let o = run(&["read", demo.to_str().unwrap()]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(err.starts_with("kaswatch: 74 packets,"), "{err:?}");
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
}

#[test]
fn progress_on_a_terminal_and_never_with_quiet() {
    const T: &str = "progress_on_a_terminal_and_never_with_quiet";
    if !have("script", T) {
        return;
    }
    let demo = capture("demo.pcapng");
    let out = on_a_terminal(&["read", demo.to_str().unwrap()]);
    let f = frames(&out);
    assert!(!f.is_empty(), "no progress shown: {out:?}");
    // Bytes of the total (the file's size), packets, rate, time left (redraws
    // are rate-limited: the last one shown need not be the final state).
    let last = f.last().unwrap();
    assert!(last.contains("/8.48 KiB "), "{last:?}");
    assert!(
        last.contains(" packets ·") && last.contains("/s ·") && last.contains("left"),
        "{last:?}"
    );
    // Cleared before the report and the summary line.
    assert!(out.contains("kaswatch: 74 packets,"), "{out:?}");
    assert!(out.contains("192.168.10.21"), "{out:?}");

    let out = on_a_terminal(&["read", "-q", demo.to_str().unwrap()]);
    assert!(frames(&out).is_empty(), "-q showed progress: {out:?}");
    assert!(!out.contains("kaswatch: 74 packets,"), "{out:?}");
    assert!(out.contains("192.168.10.21"), "{out:?}");
}

#[test]
fn progress_estimates_the_total_of_a_long_read() {
    const T: &str = "progress_estimates_the_total_of_a_long_read";
    if !have("script", T) {
        return;
    }
    // 300k DNS queries for a non-Kaspersky name: long enough for redraws mid-file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("long.pcap");
    let mut w = PcapWriter::create(&path, 1);
    for i in 0..300_000u32 {
        let src = [10, 1, (i >> 8) as u8, i as u8];
        w.packet(
            1_700_000_000_000_000_000 + u64::from(i) * 1000,
            &dns_query(src, i as u16, "www.example.org"),
        );
    }
    drop(w);
    let size = std::fs::metadata(&path).unwrap().len();
    let out = on_a_terminal(&["read", path.to_str().unwrap(), "--workers", "1"]);
    let f = frames(&out);
    // At least one frame mid-file, with the packets extrapolated to ~300k.
    let mid: Vec<&String> = f.iter().filter(|f| f.contains("/~")).collect();
    assert!(!mid.is_empty(), "no mid-file progress in {f:?}");
    assert!(
        mid.iter().any(|f| f.contains("/~300.0k packets")
            || f.contains("/~299.")
            || f.contains("/~300.")),
        "estimate off: {mid:?}"
    );
    let total = format!("/{:.2} MiB ", size as f64 / (1 << 20) as f64);
    assert!(
        mid.iter().all(|f| f.contains(&total)),
        "total {total}: {mid:?}"
    );
}
