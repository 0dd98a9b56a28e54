//! `deploy/`: every config is checked by the tool that runs it.
//!
//! * Prometheus: `promtool check config` on every config, `promtool test
//!   rules` on every unit-test file, and every alert has a firing and a
//!   not-firing case.
//! * systemd: `systemd-analyze verify` clean (no output) in a temporary root,
//!   the `security` exposure at most 2.0, and the ExecStart built from the
//!   example EnvironmentFile parses as a `kaswatch live` command line.
//! * Docker: hadolint, `docker-compose config` (or `docker compose config`),
//!   and the compose file's paths, capabilities and ports.
//! * Kubernetes: kubernetes-validate --strict, plus structural assertions.
//! * Grafana: the dashboard's structure, and every panel query run against a
//!   real Prometheus holding the history of five captures (`kaswatch read
//!   --backfill` loaded with `promtool tsdb create-blocks-from openmetrics`),
//!   failing on a query error or an empty answer. Queries that need the
//!   `evidence`/`role` labels or the signature-reload counter, which are being
//!   added, are listed in [`PENDING`]: they must run without error, and are
//!   reported (not failed) while they find nothing.
//!
//! A missing tool prints `SKIPPED ...`; with CI=true it fails instead.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

mod common;

use common::*;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The default listen port used throughout deploy/ (9464 is the
/// OpenTelemetry Prometheus exporters' default).
const PORT: &str = "10470";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Is `tool` on PATH? Otherwise SKIPPED on stderr, and a failure under CI.
fn need(tool: &str, test: &str) -> bool {
    if have(tool, test) {
        return true;
    }
    eprintln!("SKIPPED {test}: {tool} is not installed");
    assert!(!ci(), "{test}: {tool} is required when CI=true");
    false
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// All YAML documents of a file as JSON values.
fn yaml_docs(p: &Path) -> Vec<Value> {
    let text = read(p);
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml(p: &Path) -> Value {
    let mut d = yaml_docs(p);
    assert_eq!(d.len(), 1, "{}: expected one YAML document", p.display());
    d.remove(0)
}

/// Runs a command; (success, stdout + stderr).
fn run_cmd(cmd: &mut Command) -> (bool, String) {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    v.sort();
    v
}

fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------- Prometheus

#[test]
fn promtool_checks_every_config_and_rule_file() {
    if !need("promtool", "promtool_checks_every_config_and_rule_file") {
        return;
    }
    let dir = deploy().join("prometheus");
    let configs = files_in(&dir, "yml");
    let names: Vec<String> = configs
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in ["prometheus.yml", "federation.yml", "site-remote-write.yml"] {
        assert!(names.iter().any(|n| n == want), "missing {want}: {names:?}");
    }
    for c in &configs {
        let (ok, out) = run_cmd(Command::new("promtool").arg("check").arg("config").arg(c));
        assert!(ok, "promtool check config {}:\n{out}", c.display());
        assert!(out.contains("SUCCESS"), "{out}");
        assert!(!out.contains("WARNING"), "{}: {out}", c.display());
    }
    for r in files_in(&dir.join("rules"), "yml") {
        let (ok, out) = run_cmd(Command::new("promtool").arg("check").arg("rules").arg(&r));
        assert!(ok, "promtool check rules {}:\n{out}", r.display());
    }
    // The compose stack mounts deploy/prometheus as /etc/prometheus and
    // scrapes kaswatch on loopback at the default port.
    let p = yaml(&dir.join("prometheus.yml"));
    let job = &p["scrape_configs"][0];
    assert_eq!(job["job_name"], "kaswatch");
    assert_eq!(
        strs(&job["static_configs"][0]["targets"]),
        [format!("127.0.0.1:{PORT}")]
    );
    assert!(job["static_configs"][0]["labels"]["sensor"].is_string());
}

/// Alert names in the rule files.
fn alert_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for f in files_in(&deploy().join("prometheus/rules"), "yml") {
        let v = yaml(&f);
        for g in v["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                if let Some(a) = r["alert"].as_str() {
                    names.insert(a.to_string());
                }
            }
        }
    }
    names
}

#[test]
fn promtool_unit_tests_cover_every_alert_firing_and_not() {
    let dir = deploy().join("prometheus/tests");
    let files = files_in(&dir, "yml");
    assert!(
        !files.is_empty(),
        "no promtool test files in {}",
        dir.display()
    );
    let want = alert_names();
    for a in [
        "KaswatchNewUnmanagedHost",
        "KaswatchHostContactsUpdateServers",
        "KaswatchSensorDown",
        "KaswatchCaptureDrops",
        "KaswatchHostTableFull",
        "KaswatchSignatureReloadFailed",
    ] {
        assert!(want.contains(a), "rule {a} missing: {want:?}");
    }
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for f in &files {
        for t in yaml(f)["tests"].as_array().unwrap() {
            for c in t["alert_rule_test"].as_array().into_iter().flatten() {
                let name = c["alertname"].as_str().unwrap().to_string();
                let n = c["exp_alerts"].as_array().map_or(0, Vec::len);
                if n > 0 {
                    firing.insert(name);
                } else {
                    silent.insert(name);
                }
            }
        }
    }
    for a in &want {
        assert!(firing.contains(a), "{a}: no unit test where it fires");
        assert!(
            silent.contains(a),
            "{a}: no unit test where it stays silent"
        );
    }
    if !need(
        "promtool",
        "promtool_unit_tests_cover_every_alert_firing_and_not",
    ) {
        return;
    }
    for f in &files {
        let (ok, out) = run_cmd(
            Command::new("promtool")
                .arg("test")
                .arg("rules")
                .arg(f)
                .current_dir(deploy().join("prometheus")),
        );
        assert!(ok, "promtool test rules {}:\n{out}", f.display());
        assert!(out.contains("SUCCESS"), "{out}");
    }
}

// ---------------------------------------------------------------- systemd

/// KEY=value lines of an EnvironmentFile (quotes removed).
fn env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .collect()
}

#[test]
fn systemd_unit_verifies_clean_and_is_hardened() {
    let unit_path = deploy().join("systemd/kaswatch.service");
    let unit = read(&unit_path);
    assert_eq!(
        unit_values(&unit, "AmbientCapabilities"),
        ["CAP_NET_RAW CAP_NET_ADMIN"]
    );
    assert_eq!(
        unit_values(&unit, "CapabilityBoundingSet"),
        ["CAP_NET_RAW CAP_NET_ADMIN"]
    );
    for (k, v) in [
        ("DynamicUser", "yes"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        (
            "RestrictAddressFamilies",
            "AF_PACKET AF_INET AF_INET6 AF_UNIX AF_NETLINK",
        ),
        ("EnvironmentFile", "-/etc/default/kaswatch"),
    ] {
        assert_eq!(unit_values(&unit, k), [v], "{k}");
    }

    // ExecStart with the example EnvironmentFile's values is a valid
    // `kaswatch live` command line: run it with an interface that does not
    // exist; clap accepts it (exit 1 "unknown interface", not 2 "usage").
    let exec = unit_values(&unit, "ExecStart")[0];
    let env = env_file(&read(&deploy().join("systemd/kaswatch.env")));
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("kaswatch.env lacks {k}"))
    };
    assert_eq!(get("KASWATCH_LISTEN"), format!("127.0.0.1:{PORT}"));
    let port = free_port();
    let line = exec
        .replace("$KASWATCH_INTERFACES", "-i kaswatch-none0")
        .replace("${KASWATCH_LISTEN}", &format!("127.0.0.1:{port}"))
        .replace("$KASWATCH_ARGS", &get("KASWATCH_ARGS"));
    assert!(!line.contains('$'), "unexpanded variable in {line}");
    let argv: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(argv[0], "/usr/bin/kaswatch");
    let o = Command::new(bin())
        .args(&argv[1..])
        .arg("-s")
        .arg(signatures())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{argv:?}: {}", stderr(&o));
    assert!(stderr(&o).contains("kaswatch-none0"), "{}", stderr(&o));

    if !need(
        "systemd-analyze",
        "systemd_unit_verifies_clean_and_is_hardened",
    ) {
        return;
    }
    // verify needs the unit's executable and the system's units: a
    // temporary root with both.
    let r = tempfile::tempdir().unwrap();
    let sys = r.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&sys).unwrap();
    std::fs::create_dir_all(r.path().join("usr/bin")).unwrap();
    std::fs::create_dir_all(r.path().join("etc/systemd/system")).unwrap();
    let (ok, out) = run_cmd(
        Command::new("cp")
            .arg("-a")
            .arg("/usr/lib/systemd/system")
            .arg(&sys),
    );
    assert!(ok, "{out}");
    let stub = r.path().join("usr/bin/kaswatch");
    std::fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::copy(
        &unit_path,
        r.path().join("etc/systemd/system/kaswatch.service"),
    )
    .unwrap();
    let (ok, out) = run_cmd(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .arg(format!("--root={}", r.path().display()))
            .arg("/etc/systemd/system/kaswatch.service"),
    );
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );

    let (_, out) = run_cmd(
        Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&unit_path),
    );
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("kaswatch.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    eprintln!("systemd-analyze security: exposure {score}");
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{out}");
}

// ---------------------------------------------------------------- Docker

#[test]
fn dockerfile_and_compose_are_consistent_and_lint_clean() {
    let d = deploy().join("docker");
    let dockerfile = read(&d.join("Dockerfile"));
    // Every COPY source from the build context exists.
    for l in dockerfile.lines().filter(|l| l.starts_with("COPY ")) {
        if l.contains("--from=") {
            continue;
        }
        let parts: Vec<&str> = l.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(root().join(src).exists(), "COPY source {src} missing");
        }
    }
    assert!(dockerfile.contains("USER 10470:10470"));
    assert!(dockerfile.contains("setcap cap_net_raw,cap_net_admin+ep /usr/bin/kaswatch"));
    assert!(dockerfile.contains(&format!("EXPOSE {PORT}/tcp")));

    let c = yaml(&d.join("docker-compose.yml"));
    let s = &c["services"];
    let k = &s["kaswatch"];
    assert_eq!(k["network_mode"], "host");
    assert_eq!(strs(&k["cap_drop"]), ["ALL"]);
    assert_eq!(strs(&k["cap_add"]), ["NET_RAW", "NET_ADMIN"]);
    assert_eq!(k["build"]["dockerfile"], "deploy/docker/Dockerfile");
    assert!(d
        .join(k["build"]["context"].as_str().unwrap())
        .join("Cargo.toml")
        .is_file());
    let cmd = strs(&k["command"]);
    let listen = cmd.iter().position(|a| a == "--listen").unwrap();
    assert_eq!(cmd[listen + 1], format!("127.0.0.1:{PORT}"));
    for svc in ["prometheus", "grafana"] {
        assert_eq!(s[svc]["network_mode"], "host", "{svc}");
    }
    // Bind mounts exist.
    for svc in ["prometheus", "grafana"] {
        for v in strs(&s[svc]["volumes"]) {
            let src = v.split(':').next().unwrap();
            if src.starts_with('.') {
                assert!(d.join(src).exists(), "{svc} mounts missing {src}");
            }
        }
    }
    // Grafana reads Prometheus where compose runs it, and loads the dashboard
    // from where compose mounts it.
    let prom_args = strs(&s["prometheus"]["command"]);
    assert!(prom_args.contains(&"--web.listen-address=127.0.0.1:9090".to_string()));
    let ds = yaml(&deploy().join("grafana/provisioning/datasources/kaswatch.yml"));
    assert_eq!(ds["datasources"][0]["url"], "http://127.0.0.1:9090");
    assert_eq!(ds["datasources"][0]["type"], "prometheus");
    let prov = yaml(&deploy().join("grafana/provisioning/dashboards/kaswatch.yml"));
    let path = prov["providers"][0]["options"]["path"].as_str().unwrap();
    assert!(strs(&s["grafana"]["volumes"])
        .iter()
        .any(|v| v.starts_with("../grafana/kaswatch.json:") && v.contains(path)));

    if need(
        "hadolint",
        "dockerfile_and_compose_are_consistent_and_lint_clean",
    ) {
        let (ok, out) = run_cmd(Command::new("hadolint").arg(d.join("Dockerfile")));
        assert!(ok, "hadolint:\n{out}");
    }
    // `docker compose` (v2 plugin) when present, else docker-compose (v1).
    let v2 = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = if v2 {
        let mut c = Command::new("docker");
        c.arg("compose");
        c
    } else if need(
        "docker-compose",
        "dockerfile_and_compose_are_consistent_and_lint_clean",
    ) {
        Command::new("docker-compose")
    } else {
        return;
    };
    let (ok, out) = run_cmd(
        cmd.args(["-f", "docker-compose.yml", "config", "-q"])
            .env("GRAFANA_ADMIN_PASSWORD", "test")
            .current_dir(&d),
    );
    assert!(ok && out.trim().is_empty(), "compose config:\n{out}");
}

// ---------------------------------------------------------------- Kubernetes

#[test]
fn k8s_manifest_is_valid_and_scrapable() {
    let f = deploy().join("k8s/daemonset.yaml");
    let docs = yaml_docs(&f);
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k} in {}", f.display()))
    };
    for d in &docs {
        assert!(d["apiVersion"].is_string() && d["metadata"]["name"].is_string());
        if d["kind"] != "Namespace" {
            assert_eq!(d["metadata"]["namespace"], "kaswatch", "{}", d["kind"]);
        }
    }
    let ds = kind("DaemonSet");
    let pod = &ds["spec"]["template"];
    let spec = &pod["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true);
    let labels = &pod["metadata"]["labels"];
    assert_eq!(ds["spec"]["selector"]["matchLabels"], *labels);
    let ann = &pod["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/scrape"], "true");
    assert_eq!(ann["prometheus.io/port"], PORT);
    let c = &spec["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(strs(&sc["capabilities"]["drop"]), ["ALL"]);
    assert_eq!(strs(&sc["capabilities"]["add"]), ["NET_RAW", "NET_ADMIN"]);
    assert_eq!(sc["privileged"], false);
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(c["resources"][r][k].is_string(), "resources.{r}.{k}");
        }
    }
    let args = strs(&c["args"]);
    assert_eq!(args[0], "live");
    let listen = args.iter().position(|a| a == "--listen").unwrap();
    assert_eq!(args[listen + 1], format!("$(HOST_IP):{PORT}"));
    assert_eq!(c["ports"][0]["containerPort"].as_u64(), Some(10470));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");

    let svc = kind("Service");
    assert_eq!(svc["spec"]["selector"], *labels);
    assert_eq!(svc["spec"]["ports"][0]["port"].as_u64(), Some(10470));
    let port_name = svc["spec"]["ports"][0]["name"].as_str().unwrap();
    let sm = kind("ServiceMonitor");
    assert_eq!(
        sm["spec"]["selector"]["matchLabels"],
        svc["metadata"]["labels"]
    );
    assert_eq!(sm["spec"]["endpoints"][0]["port"], port_name);
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");

    if need("kubernetes-validate", "k8s_manifest_is_valid_and_scrapable") {
        let (ok, out) = run_cmd(
            Command::new("kubernetes-validate")
                .args(["--strict", "--quiet"])
                .arg(&f),
        );
        assert!(ok, "kubernetes-validate:\n{out}");
        // Only the CRD (ServiceMonitor) has no schema there.
        for l in out.lines() {
            assert!(l.contains("ServiceMonitor"), "kubernetes-validate: {l}");
        }
    }
}

// ---------------------------------------------------------------- port

#[test]
fn deploy_files_use_the_default_port() {
    let mut stack = vec![deploy()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let text = read(&p);
            // The README explains why not 9464; configs must not use it.
            if !p.ends_with("README.md") {
                assert!(!text.contains("9464"), "{} uses 9464", p.display());
            }
            if text.contains(PORT) {
                seen += 1;
            }
        }
    }
    assert!(seen >= 7, "only {seen} deploy files mention port {PORT}");
    assert!(read(&root().join("docs/scale-out.md")).contains(PORT));
}

// ---------------------------------------------------------------- Grafana

/// Panels whose queries may find no data in the backfilled captures: none
/// now (the precision capture brings a resolver and address-only hosts).
/// Listed ones must run without error; while they find nothing they are
/// reported, not failed.
const PENDING: &[(&str, &str)] = &[];

/// Every non-row panel, including those nested in collapsed rows.
fn panels(dash: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

fn dashboard() -> Value {
    serde_json::from_str(&read(&deploy().join("grafana/kaswatch.json"))).expect("dashboard JSON")
}

#[test]
fn grafana_dashboard_structure() {
    let dash = dashboard();
    assert_eq!(dash["uid"], "kaswatch");
    let vars: BTreeSet<String> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    let mut ids = BTreeSet::new();
    for p in dash["panels"].as_array().unwrap() {
        assert!(
            ids.insert(p["id"].as_u64().unwrap()),
            "duplicate id {}",
            p["id"]
        );
        let g = &p["gridPos"];
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{}",
            p["title"]
        );
    }
    let titles: Vec<&str> = panels(&dash)
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for want in [
        "Hosts phoning home (unmanaged first)",
        "Callbacks by category",
        "Callbacks by protocol",
        "Hosts (MAC, vendor, hostname, first and last seen)",
        "New hosts in the last 24 h",
        "Packets per second",
        "Capture drops",
        "Decode errors by layer",
        "Limit drops",
    ] {
        assert!(titles.contains(&want), "no panel {want}: {titles:?}");
    }
    for (t, _) in PENDING {
        assert!(titles.contains(t), "PENDING names a missing panel {t}");
    }
    for p in panels(&dash) {
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", p["title"]);
        let mut refs = BTreeSet::new();
        for t in targets {
            assert!(refs.insert(t["refId"].as_str().unwrap()), "{}", p["title"]);
            let e = t["expr"].as_str().unwrap();
            for v in e.split('$').skip(1) {
                let name: String = v
                    .trim_start_matches('{')
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                assert!(
                    name.starts_with("__") || vars.contains(&name),
                    "{}: unknown variable ${name}",
                    p["title"]
                );
            }
        }
    }
    // The table that lists hosts carries the identity columns.
    let hosts = panels(&dash)
        .into_iter()
        .find(|p| p["title"] == "Hosts (MAC, vendor, hostname, first and last seen)")
        .unwrap();
    let a = hosts["targets"][0]["expr"].as_str().unwrap();
    for l in ["host", "mac", "vendor", "hostname", "managed", "role"] {
        assert!(a.contains(l), "{a} lacks {l}");
    }
}

/// Packet time at which the dashboard is evaluated: 2026-03-02T13:05:00Z,
/// minutes after the last callback of the captures below.
const EVAL_T: u64 = 1_772_456_700;
/// First backfill sample (2026-03-02T09:01:00Z).
const FIRST_T: u64 = 1_772_442_060;

/// Grafana's variables as the test evaluates them.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "24h")
        .replace("${sensor}", ".*")
        .replace("$sensor", ".*")
        .replace("$address_evidence", "address")
}

/// The families of `final_om` (an OpenMetrics `--metrics-out`) that the
/// backfill lacks (packets, drops, decode errors, limit drops, signatures,
/// build info: `--backfill` samples only per-host families and a few
/// aggregates), each sample written at every minute of [from, to]: the
/// sensor-health history a live sensor would have had, flat at its final
/// values.
fn health_history(final_om: &str, backfill: &str, from: u64, to: u64) -> String {
    let have: BTreeSet<&str> = backfill
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut out = String::new();
    let mut keep = false;
    for l in final_om.lines() {
        if l == "# EOF" {
            break;
        }
        if let Some(rest) = l
            .strip_prefix("# TYPE ")
            .or_else(|| l.strip_prefix("# HELP "))
            .or_else(|| l.strip_prefix("# UNIT "))
        {
            keep = !have.contains(rest.split_whitespace().next().unwrap_or(""));
            if keep {
                out.push_str(l);
                out.push('\n');
            }
            continue;
        }
        if keep && !l.is_empty() {
            let mut t = from;
            while t <= to {
                out.push_str(&format!("{l} {t}\n"));
                t += 60;
            }
        }
    }
    out
}

/// (result type, series) of a Prometheus API answer; panics on an error.
fn answer(json: &str, what: &str) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(json).unwrap_or_else(|_| panic!("{what}: not JSON: {json}"));
    assert_eq!(v["status"], "success", "{what}: {json}");
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn grafana_queries_run_against_real_prometheus() {
    let t = "grafana_queries_run_against_real_prometheus";
    if !need("promtool", t) || !need("prometheus", t) || !need("curl", t) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let inv = dir.path().join("inventory.csv");
    std::fs::write(&inv, "192.168.10.22,laptop-22\n10.20.0.5,build-5\n").unwrap();
    let (om, fin) = (dir.path().join("history.om"), dir.path().join("final.om"));
    // precision.pcap (a forwarding resolver with Kaspersky lookups, address-only
    // hosts) was recorded months later: shift it to 2026-03-02T12:58Z so it sits
    // in the same window, before update-paths.pcap (13:00Z).
    if !need("editcap", t) {
        return;
    }
    let precision = dir.path().join("precision.pcap");
    let st = Command::new("editcap")
        .args(["-t", "-23596961"])
        .arg(capture("precision.pcap"))
        .arg(&precision)
        .status()
        .unwrap();
    assert!(st.success(), "editcap failed");
    let o = Command::new(bin())
        .args(["read", "-q", "--step", "1m", "--inventory"])
        .arg(&inv)
        .arg("--backfill")
        .arg(&om)
        .arg("--metrics-out")
        .arg(&fin)
        .arg("-s")
        .arg(signatures())
        .args(["demo.pcapng", "tunnels.pcap", "quic.pcap"].map(capture))
        .arg(&precision)
        // In packet-time order: the backfill samples as time advances.
        .args(["update-paths.pcap", "attribution.pcap"].map(capture))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let backfill = read(&om);
    let health = health_history(&read(&fin), &backfill, FIRST_T, EVAL_T + 60);
    assert!(
        health.contains("kaswatch_packets_total{interface=\"file\"} 308 "),
        "{health}"
    );
    let all = format!(
        "{}{health}# EOF\n",
        backfill
            .strip_suffix("# EOF\n")
            .expect("backfill ends in # EOF")
    );
    let merged = dir.path().join("all.om");
    std::fs::write(&merged, all).unwrap();
    let data = dir.path().join("data");
    let (ok, out) = run_cmd(
        Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&merged)
            .arg(&data),
    );
    assert!(ok, "promtool create-blocks:\n{out}");

    let prom = Prometheus::start(Some(&data), None, None, free_port());
    // Wait until the blocks are loaded.
    let probe = format!(
        "/api/v1/query?query={}&time={EVAL_T}",
        urlencode("count(kaswatch_host_info)")
    );
    let j = prom.get(&probe, Duration::from_secs(30), |s| s.contains("\"31\""));
    assert!(
        j.contains("\"31\""),
        "31 hosts expected (27 + the precision capture's 4): {j}\n{}",
        prom.log()
    );

    let dash = dashboard();
    let (mut checked, mut pending) = (0, Vec::new());
    for p in panels(&dash) {
        let title = p["title"].as_str().unwrap();
        let pend = PENDING.iter().find(|(n, _)| *n == title).map(|(_, l)| *l);
        for tg in p["targets"].as_array().unwrap() {
            let expr = substitute(tg["expr"].as_str().unwrap());
            let instant = tg["instant"] == true;
            let path = if instant {
                format!("/api/v1/query?query={}&time={EVAL_T}", urlencode(&expr))
            } else {
                format!(
                    "/api/v1/query_range?query={}&start={}&end={EVAL_T}&step=60",
                    urlencode(&expr),
                    EVAL_T - 4 * 3600 - 600
                )
            };
            let json = prom.get(&path, Duration::from_secs(10), |s| s.contains("\"status\""));
            let what = format!("panel {title:?} {}: {expr}", tg["refId"]);
            let series = answer(&json, &what);
            let has_data = series.iter().any(|s| {
                s["value"].is_array() || s["values"].as_array().is_some_and(|v| !v.is_empty())
            });
            match pend {
                None => assert!(has_data, "{what}: empty result"),
                Some(label) => {
                    // Landed when the answer has series carrying the label
                    // (or, for a metric, any series).
                    let landed = has_data
                        && (label.starts_with("kaswatch_")
                            || series.iter().all(|s| {
                                s["metric"][label].as_str().is_some_and(|v| !v.is_empty())
                            }));
                    if landed {
                        eprintln!("NOTE {what}: has data now; remove it from PENDING");
                    } else {
                        pending.push(format!("{title} ({label})"));
                    }
                }
            }
            checked += 1;
        }
    }
    for p in &pending {
        eprintln!("PENDING {p}: query runs, no data until the label/metric lands");
    }
    assert!(checked >= 25, "only {checked} queries");

    // The unmanaged-first table really lists unmanaged hosts and the
    // inventory's managed ones.
    let q = "sum by (host, managed) (kaswatch_host_callbacks_total)";
    let json = prom.get(
        &format!("/api/v1/query?query={}&time={EVAL_T}", urlencode(q)),
        Duration::from_secs(10),
        |s| s.contains("\"status\""),
    );
    let rows = answer(&json, q);
    let managed: BTreeSet<&str> = rows
        .iter()
        .filter(|s| s["metric"]["managed"] == "true")
        .filter_map(|s| s["metric"]["host"].as_str())
        .collect();
    assert_eq!(managed, BTreeSet::from(["10.20.0.5", "192.168.10.22"]));
    assert_eq!(rows.len(), 31);
}

// ---------------------------------------------------------------- capabilities

/// Deletes a network namespace on drop.
struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// What the systemd unit (DynamicUser + AmbientCapabilities + NoNewPrivileges)
/// and the container (non-root + NET_RAW/NET_ADMIN) grant is enough: a
/// non-root user holding only CAP_NET_RAW and CAP_NET_ADMIN, with
/// no_new_privs, captures a callback; without them `live` says so and exits 1.
#[test]
fn unprivileged_user_with_net_raw_and_net_admin_captures() {
    let t = "unprivileged_user_with_net_raw_and_net_admin_captures";
    if !is_root() {
        eprintln!("SKIPPED {t}: needs root (network namespace, setpriv)");
        assert!(!ci(), "{t}: CI runs as root");
        return;
    }
    if !need("ip", t) || !need("setpriv", t) || !need("tcpreplay", t) || !need("curl", t) {
        return;
    }
    let ns = Netns(format!("kwdeploy{}", std::process::id()));
    let (ok, out) = run_cmd(Command::new("ip").args(["netns", "add", &ns.0]));
    assert!(ok, "{out}");
    let (ok, out) =
        run_cmd(Command::new("ip").args(["netns", "exec", &ns.0, "ip", "link", "set", "lo", "up"]));
    assert!(ok, "{out}");
    // nobody must be able to reach the binary and the signatures.
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("kaswatch");
    std::fs::copy(bin(), &exe).unwrap();
    let sigs = dir.path().join("signatures");
    std::fs::create_dir(&sigs).unwrap();
    for f in files_in(&signatures(), "toml") {
        std::fs::copy(&f, sigs.join(f.file_name().unwrap())).unwrap();
    }
    for p in [dir.path(), &sigs] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let port = PORT;
    let live = |caps: bool| {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &ns.0,
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
        if caps {
            c.args([
                "--inh-caps=-all,+net_raw,+net_admin",
                "--ambient-caps=-all,+net_raw,+net_admin",
                "--bounding-set=-all,+net_raw,+net_admin",
            ]);
        } else {
            c.args(["--inh-caps=-all", "--bounding-set=-all"]);
        }
        c.args(["--no-new-privs", "--"])
            .arg(&exe)
            .args([
                "live",
                "-i",
                "lo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "-s",
            ])
            .arg(&sigs);
        c
    };

    let o = live(false).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("CAP_NET_RAW"), "{}", stderr(&o));

    let child = live(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = ChildGuard(Some(child));
    let curl = |path: &str| {
        vec![
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            ns.0.clone(),
            "curl".into(),
            "-s".into(),
            "--max-time".into(),
            "2".into(),
            format!("http://127.0.0.1:{port}{path}"),
        ]
    };
    let argv = curl("/healthz");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let h = poll_cmd(&argv, Duration::from_secs(20), |s| s.trim() == "ok");
    assert_eq!(h.trim(), "ok", "/healthz");

    // A DNS query for a Kaspersky name, sent on the namespace's loopback.
    let pcap = dir.path().join("q.pcap");
    let mut w = PcapWriter::create(&pcap, 1);
    w.packet(1, &dns_query([10, 9, 8, 7], 7, "dnl-01.geo.kaspersky.com"));
    drop(w);
    let (ok, out) = run_cmd(
        Command::new("ip")
            .args(["netns", "exec", &ns.0, "tcpreplay", "-q", "-i", "lo"])
            .arg(&pcap),
    );
    assert!(ok, "tcpreplay: {out}");
    let argv = curl("/metrics");
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let m = poll_cmd(&argv, Duration::from_secs(20), |s| {
        s.contains("host=\"10.9.8.7\"")
    });
    assert!(
        m.contains(
            "kaswatch_host_callbacks_total{host=\"10.9.8.7\",category=\"update\",protocol=\"dns\""
        ),
        "no callback in:\n{m}"
    );
    let mut c = guard.0.take().unwrap();
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    unsafe {
        libc::kill(c.id() as i32, libc::SIGTERM);
    }
    let st = c.wait().unwrap();
    assert!(st.success(), "live exit: {st:?}");
}
