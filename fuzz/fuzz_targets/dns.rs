//! DNS message parsing: header, questions, answers, the plausibility test
//! and the name reader at every early offset.
#![no_main]

use kaswatch::proto::dns;
use kaswatch::proto::name::MAX_NAME_LEN;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|msg: &[u8]| {
    let _ = dns::header(msg);
    let _ = dns::plausible(msg);
    let mut names = 0usize;
    let walk = dns::questions(msg, |q| {
        assert!(q.name.len() <= MAX_NAME_LEN);
        names += 1;
    });
    if let Some(w) = walk {
        assert_eq!(w.delivered, names);
        assert!(w.end <= msg.len());
    }
    let answers = dns::answers(msg);
    assert!(answers.len() <= dns::MAX_ANSWERS);
    let mut out = [0u8; MAX_NAME_LEN];
    let mut slow = [0u8; MAX_NAME_LEN];
    for off in 0..msg.len().min(48) {
        let got = dns::read_name(msg, off, &mut out);
        // The one-pass copy of plain names agrees with the label walk.
        let want = dns::read_name_labels(msg, off, &mut slow);
        assert_eq!(got, want);
        if let Ok((n, end)) = got {
            assert!(n <= MAX_NAME_LEN && end <= msg.len() && end > off);
            assert_eq!(out.get(..n), slow.get(..n));
        }
    }
});
