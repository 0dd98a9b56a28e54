//! Two network namespaces joined by a veth pair, for live tests: the sensor
//! captures on one end, tcpreplay sends into the other. Deleted on drop.
//! (Included with `#[path]` by the tests that need it.)
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// Run argv quietly; did it succeed?
pub fn sh(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub struct Netns {
    pub sensor: String,
    pub peer: String,
    pub sensor_if: String,
    pub peer_if: String,
}

impl Netns {
    pub fn new() -> Netns {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        // A prefix of our own, so names never collide with tests/live_e2e.rs.
        let id = format!("{}{n}", std::process::id());
        let ns = Netns {
            sensor: format!("kwsec{id}s"),
            peer: format!("kwsec{id}p"),
            sensor_if: format!("kx{id}a"),
            peer_if: format!("kx{id}b"),
        };
        for argv in [
            vec!["ip", "netns", "add", &ns.sensor],
            vec!["ip", "netns", "add", &ns.peer],
            vec![
                "ip",
                "link",
                "add",
                &ns.sensor_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.peer_if,
            ],
            vec!["ip", "link", "set", &ns.sensor_if, "netns", &ns.sensor],
            vec!["ip", "link", "set", &ns.peer_if, "netns", &ns.peer],
            vec!["ip", "-n", &ns.sensor, "link", "set", "lo", "up"],
            vec!["ip", "-n", &ns.sensor, "link", "set", &ns.sensor_if, "up"],
            vec!["ip", "-n", &ns.peer, "link", "set", &ns.peer_if, "up"],
        ] {
            assert!(sh(&argv), "setup failed: {}", argv.join(" "));
        }
        ns
    }

    /// tcpreplay `file` into the peer end.
    pub fn replay(&self, file: &std::path::Path) {
        let o = Command::new("ip")
            .args(["netns", "exec", &self.peer, "tcpreplay"])
            .arg(format!("--intf1={}", self.peer_if))
            .arg(file)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tcpreplay: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// argv prefix that runs a command inside the sensor namespace.
    pub fn exec(&self) -> Vec<String> {
        ["ip", "netns", "exec", &self.sensor]
            .map(String::from)
            .to_vec()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        sh(&["ip", "netns", "del", &self.sensor]);
        sh(&["ip", "netns", "del", &self.peer]);
        sh(&["ip", "link", "del", &self.sensor_if]);
    }
}
