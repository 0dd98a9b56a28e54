use super::*;
use crate::cli::{Cli, Command};
use clap::Parser;

fn common(args: &[&str]) -> Common {
    let argv = ["kaswatch", "read"].iter().chain(args).chain(&["x.pcap"]);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Read(r) => r.common,
        _ => unreachable!(),
    }
}

fn usage(args: &[&str]) -> String {
    match settings(&common(args)) {
        Err(Error::Usage(m)) => m,
        Err(e) => panic!("{args:?}: not a usage error: {e}"),
        Ok(_) => panic!("{args:?}: accepted"),
    }
}

#[test]
fn settings_defaults() {
    let s = settings(&common(&[])).unwrap();
    assert!((1..=MAX_WORKERS).contains(&s.workers));
    assert_eq!(s.selection.evidence, EvidenceSet::DEFAULT);
    assert!(!s.selection.count_resolvers);
    assert!(s.group_by_mac, "--group-by mac is the default");
    assert_eq!(s.host_idle, None);
    assert!(
        !settings(&common(&["--group-by", "ip"]))
            .unwrap()
            .group_by_mac
    );
}

#[test]
fn settings_take_flags() {
    let s = settings(&common(&[
        "--workers",
        "3",
        "--evidence",
        "name,address",
        "--count-resolvers",
        "--host-idle",
        "90s",
        "--max-hosts",
        "7",
    ]))
    .unwrap();
    assert_eq!(s.workers, 3);
    assert_eq!(s.selection.evidence.to_string(), "name,address");
    assert!(s.selection.count_resolvers && s.group_by_mac);
    assert_eq!(s.host_idle, Some(90_000_000_000));
    assert_eq!(s.max_hosts, 7);
    assert_eq!(s.host_table().selection, s.selection);
}

#[test]
fn settings_reject_bad_values() {
    assert!(usage(&["--max-hosts", "0"]).contains("--max-hosts"));
    assert!(usage(&["--workers", "0"]).contains("--workers"));
    let too_many = (MAX_WORKERS + 1).to_string();
    assert!(usage(&["--workers", &too_many]).contains("--workers"));
    assert!(usage(&["--evidence", "ip"]).contains("--evidence: unknown evidence `ip`"));
    assert!(usage(&["--host-idle", "soon"]).starts_with("--host-idle: "));
}

#[test]
fn signature_paths_given_or_found() {
    let given = vec![PathBuf::from("a.toml"), PathBuf::from("dir")];
    assert_eq!(signature_paths(&given), given);
    let found = signature_paths(&[]);
    match std::env::var_os("KASWATCH_SIGNATURES") {
        Some(p) => assert_eq!(found, vec![PathBuf::from(p)]),
        // Tests run in the crate root, which has ./signatures.
        None => assert_eq!(found, vec![PathBuf::from("signatures")]),
    }
    assert!(load_matcher(&[]).is_ok());
    assert!(matches!(
        load_matcher(&[PathBuf::from("/nonexistent/sigs")]),
        Err(Error::Input { .. })
    ));
}

#[test]
fn expand_inputs_walks_directories() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("sub")).unwrap();
    for f in [
        "b.pcapng.gz",
        "a.PCAP",
        "sub/c.cap",
        "notes.txt",
        "sub/x.json",
    ] {
        std::fs::write(d.join(f), b"").unwrap();
    }
    let got = expand_inputs(&[d.to_path_buf(), PathBuf::from("-")]).unwrap();
    let want: Vec<PathBuf> = ["a.PCAP", "b.pcapng.gz", "sub/c.cap"]
        .iter()
        .map(|f| d.join(f))
        .chain([PathBuf::from("-")])
        .collect();
    assert_eq!(got, want);

    let empty = tempfile::tempdir().unwrap();
    let e = expand_inputs(&[empty.path().to_path_buf()]).unwrap_err();
    assert!(e.to_string().contains("no capture files"), "{e}");
    let e = expand_inputs(&[d.join("missing.pcap")]).unwrap_err();
    assert!(e.to_string().ends_with("no such file or directory"), "{e}");
    // A file is taken as given, whatever its name.
    assert_eq!(
        expand_inputs(&[d.join("notes.txt")]).unwrap(),
        vec![d.join("notes.txt")]
    );
}

/// A writer into a buffer the test keeps (the events of a run).
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A single-worker run's merger thread applies the observations as they
/// would be applied in place after each packet, whatever the batch shape
/// (one observation at a time, odd sizes, a batch cut by packet count, one
/// batch for everything, the default): same hosts, report, events and
/// counts, over several files read as one run.
#[test]
fn pipelined_run_equals_applying_in_place() {
    let matcher = load_matcher(&[]).unwrap().1.clone();
    let mut files: Vec<PathBuf> = std::fs::read_dir("captures")
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "captures/ has its captures");
    let cfg = WorkerConfig { all_names: false };
    let merger = || {
        let buf = Shared::default();
        let mut m = Merger::new(
            matcher.clone(),
            settings(&common(&[])).unwrap().host_table(),
        );
        m.events = Some(LineSink::with_writer("events", Box::new(buf.clone())));
        (m, buf)
    };
    let outcome = |m: &mut Merger, buf: &Shared, packets: u64| {
        m.finish();
        m.flush();
        let events = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        (
            report::render(&m.hosts, report::Format::Json),
            events,
            m.callbacks,
            m.counters.limit_drops.iter().sum::<u64>(),
            packets,
        )
    };

    let (mut m, buf) = merger();
    let mut w = Worker::new(matcher.clone(), cfg);
    for_each_packet(&files, None, None, |meta, raw| {
        w.process(meta, raw);
        for o in &w.out {
            m.apply(o);
        }
        w.out.clear();
    })
    .unwrap();
    let want = outcome(&mut m, &buf, w.counters().packets);
    assert!(want.2 >= 50, "{} callbacks: too few to tell", want.2);
    assert_eq!(
        want.1.lines().count() as u64,
        want.2,
        "an event per callback"
    );

    for b in [
        Batching { obs: 1, packets: 1 },
        Batching { obs: 7, packets: 3 },
        Batching {
            obs: 5,
            packets: 1 << 30,
        },
        Batching {
            obs: 1 << 20,
            packets: 1 << 30,
        },
        Batching::DEFAULT,
    ] {
        let (mut m, buf) = merger();
        let (c, damaged) = with_merger_thread(&mut m, |t| {
            pipelined(&files, None, None, &matcher, cfg, t, b)
        })
        .unwrap();
        assert!(damaged.is_empty(), "{damaged:?}");
        assert!(want == outcome(&mut m, &buf, c.packets), "{b:?} differs");
    }
}
