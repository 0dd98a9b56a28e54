//! Federation for real (root only, else skipped visibly; fails under
//! CI=true): two `kaswatch live` sensors, each in its own network namespace
//! capturing on a veth pair that tcpreplay feeds from a peer namespace, each
//! scraped by its own site Prometheus inside that namespace (configured from
//! deploy/prometheus/prometheus.yml), and a global Prometheus in a third
//! namespace, linked to both sites by veth pairs, federating them with
//! deploy/prometheus/federation.yml. A query on the global Prometheus sees
//! both sensors' hosts, labelled by sensor (and site). Also checks the live
//! sensor's `/api/hosts`. All namespaces and processes are removed by Drop
//! guards.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: &str = "federation_of_two_sensors";

fn sh(argv: &[&str]) -> bool {
    Command::new(argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn must(argv: &[&str]) {
    assert!(sh(argv), "setup failed: {}", argv.join(" "));
}

/// Network namespaces and veth pairs created here; removed on drop.
#[derive(Default)]
struct Net {
    namespaces: Vec<String>,
}

impl Net {
    fn ns(&mut self, name: &str) -> String {
        let n = format!("kwfed{}{name}", std::process::id());
        must(&["ip", "netns", "add", &n]);
        must(&["ip", "-n", &n, "link", "set", "lo", "up"]);
        self.namespaces.push(n.clone());
        n
    }
    /// A veth pair `a` (in `ns_a`) <-> `b` (in `ns_b`), both up, with
    /// optional IPv4 addresses (CIDR).
    fn veth(
        &self,
        ns_a: &str,
        a: &str,
        addr_a: Option<&str>,
        ns_b: &str,
        b: &str,
        addr_b: Option<&str>,
    ) {
        must(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
        for (ns, ifc, addr) in [(ns_a, a, addr_a), (ns_b, b, addr_b)] {
            must(&["ip", "link", "set", ifc, "netns", ns]);
            if let Some(addr) = addr {
                must(&["ip", "-n", ns, "addr", "add", addr, "dev", ifc]);
            }
            must(&["ip", "-n", ns, "link", "set", ifc, "up"]);
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace removes the veth ends in it (and their peers).
        for n in &self.namespaces {
            sh(&["ip", "netns", "del", n]);
        }
    }
}

/// A Prometheus with the given config, in a namespace, listening on `listen`.
struct Prom {
    ns: String,
    port: u16,
    dir: tempfile::TempDir,
    _child: ChildGuard,
}

impl Prom {
    fn start(ns: &str, config: &serde_yaml::Value, listen: &str, port: u16) -> Prom {
        let dir = tempfile::tempdir().unwrap();
        // The rule files the deploy configs name (rules/*.yml), beside the config.
        let rules = dir.path().join("rules");
        std::fs::create_dir_all(&rules).unwrap();
        for f in std::fs::read_dir(root().join("deploy/prometheus/rules")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, rules.join(f.file_name().unwrap())).unwrap();
        }
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, serde_yaml::to_string(config).unwrap()).unwrap();
        let check = Command::new("promtool")
            .args(["check", "config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            check.status.success(),
            "promtool check config: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "prometheus"])
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let p = Prom {
            ns: ns.to_string(),
            port,
            dir,
            _child: ChildGuard(Some(child)),
        };
        let ready = p.get("/-/ready", Duration::from_secs(60), |s| s.contains("Ready"));
        assert!(ready.contains("Ready"), "prometheus not ready: {}", p.log());
        p
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }
    fn get(&self, path: &str, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        poll_cmd(
            &[
                "ip",
                "netns",
                "exec",
                &self.ns,
                "curl",
                "-s",
                "-g",
                "--max-time",
                "5",
                &url,
            ],
            timeout,
            ok,
        )
    }
}

fn yaml(path: &str) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join(path)).unwrap()).unwrap()
}

/// deploy/prometheus/prometheus.yml for one site: scrape every second, the
/// sensor named `sensor`, the site as an external label.
fn site_config(sensor: &str, site: &str) -> serde_yaml::Value {
    let mut c = yaml("deploy/prometheus/prometheus.yml");
    c["global"]["scrape_interval"] = "1s".into();
    c["global"]["evaluation_interval"] = "1s".into();
    let mut ext = serde_yaml::Mapping::new();
    ext.insert("site".into(), site.into());
    c["global"]["external_labels"] = ext.into();
    let job = &mut c["scrape_configs"][0];
    assert_eq!(job["job_name"], "kaswatch");
    job["scrape_interval"] = "1s".into();
    let sc = &mut job["static_configs"][0];
    sc["targets"] = vec![serde_yaml::Value::from("127.0.0.1:10470")].into();
    sc["labels"]["sensor"] = sensor.into();
    c
}

/// deploy/prometheus/federation.yml federating `sites` (address, name) every second.
fn global_config(sites: &[(&str, &str)]) -> serde_yaml::Value {
    let mut c = yaml("deploy/prometheus/federation.yml");
    c["global"]["scrape_interval"] = "1s".into();
    c["global"]["evaluation_interval"] = "1s".into();
    let job = &mut c["scrape_configs"][0];
    assert_eq!(job["metrics_path"], "/federate");
    job["scrape_interval"] = "1s".into();
    job["scrape_timeout"] = "1s".into();
    let statics: Vec<serde_yaml::Value> = sites
        .iter()
        .map(|(addr, name)| {
            let mut m = serde_yaml::Mapping::new();
            m.insert(
                "targets".into(),
                vec![serde_yaml::Value::from(*addr)].into(),
            );
            let mut l = serde_yaml::Mapping::new();
            l.insert("federated_from".into(), (*name).into());
            m.insert("labels".into(), l.into());
            m.into()
        })
        .collect();
    job["static_configs"] = statics.into();
    c
}

fn replay(ns: &str, ifc: &str, file: &Path) {
    let o = Command::new("ip")
        .args(["netns", "exec", ns, "tcpreplay", &format!("--intf1={ifc}")])
        .arg(file)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

struct Sensor {
    _child: ChildGuard,
    log: PathBuf,
}

fn start_sensor(ns: &str, ifc: &str, dir: &Path) -> Sensor {
    let log = dir.join(format!("{ifc}.err"));
    let child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(bin())
        .args(["live", "-i", ifc, "--listen", "127.0.0.1:10470", "-s"])
        .arg(signatures())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let s = Sensor {
        _child: ChildGuard(Some(child)),
        log,
    };
    let h = poll_cmd(
        &[
            "ip",
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "http://127.0.0.1:10470/healthz",
        ],
        Duration::from_secs(20),
        |s| s == "ok\n",
    );
    assert_eq!(
        h,
        "ok\n",
        "sensor: {}",
        std::fs::read_to_string(&s.log).unwrap_or_default()
    );
    s
}

/// (sensor, site, host) of every series in a Prometheus query answer.
fn sensor_hosts(json: &str) -> BTreeSet<(String, String, String)> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    v["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|s| {
                    let l = |k: &str| s["metric"][k].as_str().unwrap_or("").to_string();
                    (l("sensor"), l("site"), l("host"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn federation_of_two_sensors() {
    if !is_root() {
        skip(
            T,
            "needs root (network namespaces, raw capture); run `sudo cargo test`",
        );
        return;
    }
    if !(have("ip", T)
        && have("tcpreplay", T)
        && have("prometheus", T)
        && have("promtool", T)
        && have("curl", T))
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let id = std::process::id() % 100_000;
    let mut net = Net::default();
    let global = net.ns("g");
    let mut sites = Vec::new();
    for (i, name) in ["a", "b"].into_iter().enumerate() {
        let sensor_ns = net.ns(&format!("s{name}"));
        let peer_ns = net.ns(&format!("p{name}"));
        let (cap, feed) = (format!("kwf{id}c{name}"), format!("kwf{id}f{name}"));
        net.veth(&sensor_ns, &cap, None, &peer_ns, &feed, None);
        // The link the global Prometheus federates over (not captured).
        let (g_end, s_end) = (format!("kwf{id}g{name}"), format!("kwf{id}l{name}"));
        let (g_addr, s_addr) = (
            format!("10.201.{}.1/30", i + 1),
            format!("10.201.{}.2", i + 1),
        );
        net.veth(
            &global,
            &g_end,
            Some(&g_addr),
            &sensor_ns,
            &s_end,
            Some(&format!("{s_addr}/30")),
        );
        sites.push((name, sensor_ns, peer_ns, cap, feed, s_addr));
    }

    let mut sensors = Vec::new();
    let mut site_proms = Vec::new();
    for (name, sensor_ns, _, cap, _, s_addr) in &sites {
        sensors.push(start_sensor(sensor_ns, cap, dir.path()));
        let cfg = site_config(&format!("sensor-{name}"), &format!("site-{name}"));
        // Listens on the namespace's loopback and on its link to the global namespace.
        let p = Prom::start(sensor_ns, &cfg, "0.0.0.0", 9090);
        // The global side must reach it over the link.
        let over_link = poll_cmd(
            &[
                "ip",
                "netns",
                "exec",
                &global,
                "curl",
                "-s",
                "--max-time",
                "5",
                &format!("http://{s_addr}:9090/-/ready"),
            ],
            Duration::from_secs(20),
            |s| s.contains("Ready"),
        );
        assert!(
            over_link.contains("Ready"),
            "site {name} not reachable from the global namespace"
        );
        site_proms.push(p);
    }
    let targets: Vec<(String, String)> = sites
        .iter()
        .map(|s| (format!("{}:9090", s.5), format!("site-{}", s.0)))
        .collect();
    let t: Vec<(&str, &str)> = targets
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let global_prom = Prom::start(&global, &global_config(&t), "127.0.0.1", 9090);

    // Sensor a sees demo.pcapng's Ethernet frames, sensor b tunnels.pcap.
    let demo = dir.path().join("demo-ethernet.pcap");
    ethernet_only(&capture("demo.pcapng"), &demo);
    replay(&sites[0].2, &sites[0].4, &demo);
    replay(&sites[1].2, &sites[1].4, &capture("tunnels.pcap"));

    let mut want = BTreeSet::new();
    for ((host, _), _) in demo_expected() {
        want.insert(("sensor-a".to_string(), "site-a".to_string(), host));
    }
    for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14] {
        want.insert(("sensor-b".into(), "site-b".into(), format!("10.99.0.{i}")));
    }
    want.insert(("sensor-b".into(), "site-b".into(), "2001:db8:99::d".into()));

    let q = format!(
        "/api/v1/query?query={}",
        urlencode("count by (sensor, site, host) (kaswatch_host_callbacks_total)")
    );
    let json = global_prom.get(&q, Duration::from_secs(60), |s| sensor_hosts(s) == want);
    assert_eq!(
        sensor_hosts(&json),
        want,
        "global view: {json}\nsensor a: {}\nsensor b: {}\nglobal: {}",
        std::fs::read_to_string(&sensors[0].log).unwrap_or_default(),
        std::fs::read_to_string(&sensors[1].log).unwrap_or_default(),
        global_prom.log()
    );
    // Each sensor's hosts, counted globally by sensor.
    let q = format!(
        "/api/v1/query?query={}",
        urlencode("count by (sensor) (count by (sensor, host) (kaswatch_host_callbacks_total))")
    );
    let json = global_prom.get(&q, Duration::from_secs(10), |s| s.contains("sensor-b"));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut counts: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["sensor"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [
            ("sensor-a".to_string(), "4".to_string()),
            ("sensor-b".into(), "14".into())
        ]
    );

    // The live sensor's status API has the same hosts.
    let api = poll_cmd(
        &[
            "ip",
            "netns",
            "exec",
            &sites[0].1,
            "curl",
            "-s",
            "http://127.0.0.1:10470/api/hosts",
        ],
        Duration::from_secs(10),
        |s| s.contains("\"totals\""),
    );
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    let hosts: BTreeSet<String> = v["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["host"].as_str().unwrap().to_string())
        .collect();
    let want_a: BTreeSet<String> = want
        .iter()
        .filter(|w| w.0 == "sensor-a")
        .map(|w| w.2.clone())
        .collect();
    assert_eq!(hosts, want_a);
    assert_eq!(v["health"]["mode"], "live");
    assert_eq!(v["health"]["sources"][0], sites[0].3.as_str());
    drop(site_proms);
}
