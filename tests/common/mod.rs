//! Helpers shared by the integration tests: run the real binary, locate the
//! public capture corpus beside the checkout.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kaswatch")
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/captures-public` beside the checkout (present in CI).
pub fn corpus() -> Option<PathBuf> {
    let p = root().join("../shared/captures-public");
    p.join("MANIFEST.md").is_file().then_some(p)
}

pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .current_dir(root())
        .output()
        .expect("run kaswatch")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kaswatch-test-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

/// Turn kaswatch's escaped text form (\DDD, \., \\) back into bytes and
/// render them the way tshark does: control bytes as octal `\ooo`, invalid
/// UTF-8 as U+FFFD.
pub fn tshark_form(name: &str) -> String {
    let b = name.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v: u32 = std::str::from_utf8(&b[i + 1..i + 4])
                .unwrap()
                .parse()
                .unwrap();
            if v < 0x20 || v == 0x7f {
                out.extend_from_slice(format!("\\{v:03o}").as_bytes());
            } else {
                out.push(v as u8);
            }
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).to_ascii_lowercase()
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}
