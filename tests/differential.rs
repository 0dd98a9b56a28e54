//! Differential test against tshark: for every capture in
//! ../shared/captures-public, every name tshark lists in `truth/*.tsv`
//! (DNS query, TLS SNI, QUIC SNI, HTTP Host) must be extracted by
//! `kaswatch read --all-names`, with the same frame and source address.
//! Recall is reported per file; below 100% fails unless the file is listed,
//! with a reason, in tests/differential-exceptions.txt. No capture may make
//! kaswatch fail or panic.

mod common;
use common::*;
use std::collections::HashMap;

type Row = (u64, String, String, String); // frame, src, kind, name

fn truth_rows(path: &std::path::Path) -> Vec<Row> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            (
                c[0].parse().unwrap(),
                c[1].to_string(),
                c[2].to_string(),
                c[3].to_string(),
            )
        })
        .collect()
}

fn exceptions() -> HashMap<String, String> {
    let text = std::fs::read_to_string(root().join("tests/differential-exceptions.txt")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (p, why) = l.split_once('\t').expect("exception line: path<TAB>reason");
            assert!(
                why.trim().len() > 10,
                "exception for {p} needs a real reason"
            );
            (p.to_string(), why.to_string())
        })
        .collect()
}

fn captures(corpus: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![corpus.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().unwrap() != "truth" {
                    stack.push(p);
                }
            } else if ["pcap", "pcapng", "cap"]
                .iter()
                .any(|x| p.extension().is_some_and(|e| e == *x))
            {
                out.push(
                    p.strip_prefix(corpus)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

fn check(workers: &str) {
    let Some(corpus) = corpus() else {
        eprintln!("SKIP: ../shared/captures-public not found beside the checkout");
        return;
    };
    let exc = exceptions();
    let files = captures(&corpus);
    assert!(
        files.len() >= 100,
        "corpus looks incomplete: {} files",
        files.len()
    );
    let mut failures = Vec::new();
    let mut report = String::new();
    let (mut want_all, mut got_all) = (0usize, 0usize);
    for f in &files {
        let out = tmp(&format!("names-{workers}.tsv"));
        let o = std::process::Command::new(bin())
            .args(["read", "-q", "--workers", workers, "--all-names"])
            .arg(&out)
            .arg(corpus.join(f))
            .output()
            .unwrap();
        let err = stderr(&o);
        if !o.status.success() || err.contains("internal error") || err.contains("panicked") {
            failures.push(format!("{f}: exit {:?}: {err}", o.status.code()));
            continue;
        }
        let mut got: HashMap<Row, usize> = HashMap::new();
        for l in std::fs::read_to_string(&out).unwrap().lines() {
            let c: Vec<&str> = l.split('\t').collect();
            let row = (
                c[1].parse().unwrap(),
                c[2].to_string(),
                c[3].to_string(),
                tshark_form(c[4]),
            );
            *got.entry(row).or_default() += 1;
        }
        let want = truth_rows(&corpus.join("truth").join(format!("{f}.tsv")));
        let mut missing = Vec::new();
        for r in &want {
            match got.get_mut(r) {
                Some(n) if *n > 0 => *n -= 1,
                _ => {
                    // tshark reports an HTTP request at the frame that completes its
                    // body; kaswatch reports the Host as soon as the headers are in.
                    // Names with invalid UTF-8: tshark's U+FFFD substitution differs
                    // from Rust's, so only frame, source and kind are compared.
                    let loose = got.iter_mut().find(|(g, n)| {
                        **n > 0
                            && g.1 == r.1
                            && g.2 == r.2
                            && ((r.2 == "http-host" && g.3 == r.3 && g.0 <= r.0)
                                || (r.3.contains('\u{fffd}')
                                    && g.3.contains('\u{fffd}')
                                    && g.0 == r.0))
                    });
                    match loose {
                        Some((_, n)) => *n -= 1,
                        None => missing.push(r.clone()),
                    }
                }
            }
        }
        want_all += want.len();
        got_all += want.len() - missing.len();
        if !want.is_empty() {
            report.push_str(&format!(
                "{:6.1}%  {}/{}  {f}\n",
                100.0 * (want.len() - missing.len()) as f64 / want.len() as f64,
                want.len() - missing.len(),
                want.len()
            ));
        }
        if !missing.is_empty() {
            if let Some(why) = exc.get(f) {
                report.push_str(&format!("        (exception: {why})\n"));
            } else {
                let shown: Vec<String> = missing.iter().take(5).map(|r| format!("{r:?}")).collect();
                failures.push(format!(
                    "{f}: {} of {} missing, e.g. {}",
                    missing.len(),
                    want.len(),
                    shown.join(", ")
                ));
            }
        }
    }
    eprintln!("recall per file (workers={workers}):\n{report}total {got_all}/{want_all}");
    for p in exc.keys() {
        assert!(
            files.contains(p),
            "exception for a file not in the corpus: {p}"
        );
    }
    assert!(
        failures.is_empty(),
        "differential failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_tshark_name_is_extracted() {
    check("1");
}

#[test]
fn every_tshark_name_is_extracted_with_two_workers() {
    check("2");
}
