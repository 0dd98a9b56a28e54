//! The Debian package (root only, needs cargo-deb; else skipped visibly,
//! failing under CI=true): build it with `cargo deb` from the test build of
//! the binary (the steps of `make deb DEB_PROFILE=dev`), check its contents,
//! `dpkg -i` it into this machine, run the installed `kaswatch --version`
//! and `kaswatch read` on a capture with the installed signatures, read the
//! installed man page, then purge it. Refuses to touch a kaswatch package
//! that was installed before the test.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const T: &str = "deb_package_installs_and_runs";

fn out(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

fn ok(o: &Output, what: &str) {
    assert!(
        o.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "kaswatch"])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
}

/// Purges the package on drop (also when an assertion failed).
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = Command::new("dpkg")
            .args(["--purge", "kaswatch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// target/assets as `make deb` makes it, from the binary under test.
fn assets() {
    let dir = root().join("target/assets");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("man")).unwrap();
    std::fs::create_dir_all(dir.join("completions")).unwrap();
    ok(
        &out(Command::new(bin())
            .args(["man", "--dir"])
            .arg(dir.join("man"))),
        "kaswatch man",
    );
    for page in std::fs::read_dir(dir.join("man")).unwrap() {
        ok(
            &out(Command::new("gzip").arg("-9n").arg(page.unwrap().path())),
            "gzip",
        );
    }
    for (shell, file) in [
        ("bash", "kaswatch.bash"),
        ("zsh", "_kaswatch"),
        ("fish", "kaswatch.fish"),
    ] {
        let o = out(Command::new(bin()).args(["completions", shell]));
        ok(&o, "kaswatch completions");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("kaswatch"),
            "{shell}"
        );
        std::fs::write(dir.join("completions").join(file), &o.stdout).unwrap();
    }
}

#[test]
fn deb_package_installs_and_runs() {
    if !is_root() {
        skip(T, "needs root (dpkg -i into this machine)");
        return;
    }
    if !(have("cargo-deb", T) && have("dpkg", T) && have("dpkg-shlibdeps", T)) {
        return;
    }
    if installed() {
        skip(
            T,
            "a kaswatch package is already installed here; not replacing it",
        );
        return;
    }
    let debs = tempfile::tempdir().unwrap();
    assets();
    // `bin()` is the dev profile's binary: package that one (no release build).
    let o = out(Command::new("cargo")
        .args(["deb", "--no-build", "--profile", "dev", "-o"])
        .arg(debs.path())
        .current_dir(root()));
    ok(&o, "cargo deb");
    let deb = std::fs::read_dir(debs.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");

    let o = out(Command::new("dpkg-deb").arg("-c").arg(&deb));
    ok(&o, "dpkg-deb -c");
    let listing = String::from_utf8_lossy(&o.stdout);
    for path in [
        "./usr/bin/kaswatch",
        "./usr/lib/systemd/system/kaswatch.service",
        "./etc/default/kaswatch",
        "./usr/share/kaswatch/signatures/update.toml",
        "./usr/share/kaswatch/signatures/ksn.toml",
        "./usr/share/man/man1/kaswatch.1.gz",
        "./usr/share/man/man1/kaswatch-live.1.gz",
        "./usr/share/bash-completion/completions/kaswatch",
        "./usr/share/zsh/vendor-completions/_kaswatch",
        "./usr/share/fish/vendor_completions.d/kaswatch.fish",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(path)),
            "{path} not in the package:\n{listing}"
        );
    }
    let o = out(Command::new("dpkg-deb")
        .args(["-f"])
        .arg(&deb)
        .arg("Depends"));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("libpcap"),
        "Depends: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = out(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb)
        .arg("conffiles"));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "/etc/default/kaswatch"
    );
    // The unit is registered with systemd's helpers, not enabled or started.
    let o = out(Command::new("dpkg-deb").arg("-I").arg(&deb).arg("postinst"));
    let postinst = String::from_utf8_lossy(&o.stdout);
    assert!(
        postinst.contains("deb-systemd-helper update-state kaswatch.service"),
        "{postinst}"
    );
    assert!(!postinst.contains("deb-systemd-invoke start"), "{postinst}");

    let _purge = Purge;
    let o = out(Command::new("dpkg").arg("-i").arg(&deb));
    ok(&o, "dpkg -i");
    assert!(installed());

    let o = out(Command::new("/usr/bin/kaswatch").arg("--version"));
    ok(&o, "kaswatch --version");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("kaswatch {}", env!("CARGO_PKG_VERSION"))
    );
    // Started once, from elsewhere: the installed signatures are found by themselves.
    let cwd = tempfile::tempdir().unwrap();
    let o = out(Command::new("/usr/bin/kaswatch")
        .arg("read")
        .arg(capture("demo.pcapng"))
        .args(["--format", "csv"])
        .env_remove("KASWATCH_SIGNATURES")
        .current_dir(cwd.path()));
    ok(&o, "installed kaswatch read");
    let report = String::from_utf8_lossy(&o.stdout);
    let mut hosts: Vec<&str> = report
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next())
        .collect();
    hosts.sort();
    assert_eq!(
        hosts,
        [
            "10.8.0.6",
            "192.168.10.21",
            "192.168.10.22",
            "192.168.10.26",
            "2001:db8:10::23"
        ],
        "{report}"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("kaswatch: 74 packets"));
    if Path::new("/usr/bin/man").exists() {
        let o = out(Command::new("man")
            .args(["-P", "cat", "kaswatch-read"])
            .env("MANWIDTH", "100"));
        ok(&o, "man kaswatch-read");
        assert!(String::from_utf8_lossy(&o.stdout).contains("--serve"));
    }

    let o = out(Command::new("dpkg").args(["--purge", "kaswatch"]));
    ok(&o, "dpkg --purge");
    assert!(!installed());
    assert!(!Path::new("/usr/bin/kaswatch").exists());
    assert!(!Path::new("/usr/share/kaswatch/signatures").exists());
}
