//! Differential test against tshark: for every capture of the public corpus
//! (tests/corpus, always present, plus the captures that
//! ../shared/captures-public adds when it is beside the checkout), every name
//! tshark lists in `truth/*.tsv` (DNS query, TLS SNI, QUIC SNI, HTTP Host)
//! must be extracted by `kaswatch read --all-names`, with the same frame and
//! source address. Recall is reported per file; below 100% fails unless the
//! file is listed, with a reason, in tests/differential-exceptions.txt. No
//! capture may make kaswatch fail or panic. Every truth row of tests/corpus
//! must have been compared: the test cannot pass having checked nothing.

// Test code through and through: clippy.toml's allow-*-in-tests applies.
#![cfg(test)]

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

fn check(test: &str, workers: &str) {
    let exc = exceptions();
    let files = public_captures(test);
    let mut failures = Vec::new();
    let mut report = String::new();
    let (mut want_all, mut got_all) = (0usize, 0usize);
    let (mut checked_files, mut checked_repo_rows) = (0usize, 0usize);
    for c in &files {
        let f = &c.rel;
        let out = tmp(&format!("names-{workers}.tsv"));
        let o = std::process::Command::new(bin())
            .args(["read", "-q", "--workers", workers, "--all-names"])
            .arg(&out)
            .arg(c.path())
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
        let want = truth_rows(&c.truth());
        checked_files += 1;
        if c.in_repo() {
            checked_repo_rows += want.len();
        }
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
    eprintln!(
        "recall per file (workers={workers}):\n{report}total {got_all}/{want_all} names in {checked_files} captures"
    );
    let known: Vec<String> = files
        .iter()
        .map(|c| c.rel.clone())
        .chain(not_included().into_iter().map(|(p, _)| p))
        .collect();
    for p in exc.keys() {
        assert!(
            known.contains(p),
            "exception for a file not in the corpus: {p}"
        );
    }
    assert!(
        failures.is_empty(),
        "differential failures:\n{}",
        failures.join("\n")
    );
    // Checked everything tests/corpus holds (and so more than nothing).
    assert_eq!(checked_files, files.len());
    let repo_rows = repo_truth_rows();
    assert!(repo_rows > 0, "tests/corpus has no truth rows");
    assert_eq!(
        checked_repo_rows, repo_rows,
        "truth rows of tests/corpus compared"
    );
}

#[test]
fn every_tshark_name_is_extracted() {
    check("every_tshark_name_is_extracted", "1");
}

#[test]
fn every_tshark_name_is_extracted_with_two_workers() {
    check("every_tshark_name_is_extracted_with_two_workers", "2");
}

/// tests/corpus holds only captures whose sources carry an open-source
/// licence, each named in its NOTICE.md, and none of the captures left out.
#[test]
fn corpus_files_are_attributed() {
    let repo = repo_corpus();
    let notice = std::fs::read_to_string(repo.join("NOTICE.md")).unwrap();
    let files = capture_files(&repo);
    assert!(!files.is_empty());
    let licensed = [
        "zeek",
        "suricata-verify",
        "nDPI",
        "mercury",
        "arkime",
        "dnscap",
        "go-dnscollector",
        "pktvisor",
        "tcpdump",
    ];
    for f in &files {
        let (source, path) = f.split_once('/').unwrap();
        assert!(
            licensed.contains(&source),
            "tests/corpus/{f}: source {source} is not one of the open-source ones"
        );
        assert!(
            notice.contains(&format!("`{path}`")),
            "tests/corpus/NOTICE.md does not name {f}"
        );
    }
    for (p, _) in not_included() {
        assert!(!files.contains(&p), "{p} must not be in tests/corpus");
    }
}
