use super::*;

fn query(name_wire: &[u8], qtype: u16) -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(name_wire);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    m
}

fn wire(name: &str) -> Vec<u8> {
    let mut w = Vec::new();
    for l in name.split('.') {
        w.push(l.len() as u8);
        w.extend_from_slice(l.as_bytes());
    }
    w.push(0);
    w
}

fn names(msg: &[u8]) -> Vec<String> {
    let mut v = Vec::new();
    questions(msg, |q| v.push(String::from_utf8(q.name.to_vec()).unwrap()));
    v
}

#[test]
fn question_lowercased_0x20() {
    let m = query(&wire("DnL-01.GEO.kaspersky.COM"), 1);
    assert_eq!(names(&m), vec!["dnl-01.geo.kaspersky.com"]);
    assert!(plausible(&m));
}

#[test]
fn compression_pointer_and_loops() {
    // Two questions; the second points back into the first.
    let mut m = vec![0, 1, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(&wire("a.kaspersky.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    m.extend_from_slice(&[3, b'u', b'p', b'd', 0xc0, 14]); // upd + pointer to "kaspersky.com"
    m.extend_from_slice(&[0, 1, 0, 1]);
    assert_eq!(names(&m), vec!["a.kaspersky.com", "upd.kaspersky.com"]);
    // Pointer to itself: a loop.
    let mut l = vec![
        0, 1, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1,
    ];
    let w = questions(&l, |_| panic!("no name")).unwrap();
    assert_eq!(w.error, Some(NameError::PointerLoop));
    // Forward pointer: also refused.
    l[13] = 20;
    assert_eq!(
        questions(&l, |_| {}).unwrap().error,
        Some(NameError::PointerLoop)
    );
}

#[test]
fn odd_bytes_escaped_and_limits() {
    let mut w = vec![5, b'a', b'.', b'b', 0x00, 0xff];
    w.extend_from_slice(&wire("com"));
    let m = query(&w, 1);
    assert_eq!(names(&m), vec!["a\\.b\\000\\255.com"]);
    // > 255 wire bytes
    let long: Vec<String> = (0..5).map(|_| "a".repeat(63)).collect();
    let m = query(&wire(&long.join(".")), 1);
    assert_eq!(
        questions(&m, |_| {}).unwrap().error,
        Some(NameError::TooLong)
    );
    // Root name
    let m = query(&[0], 2);
    assert_eq!(names(&m), vec![""]);
    // qdcount lies (65535): capped, no panic, counted by the caller.
    let mut m = query(&wire("x.com"), 1);
    m[4] = 0xff;
    m[5] = 0xff;
    let w = questions(&m, |_| {}).unwrap();
    assert_eq!(w.delivered, 1);
    assert_eq!(w.error, Some(NameError::Truncated));
}

#[test]
fn plausible_rejects_junk() {
    assert!(!plausible(b"GET / HTTP/1.1\r\n\r\n"));
    assert!(!plausible(&[
        0x30, 0x26, 0x02, 0x01, 0x01, 0x04, 0x06, 0x70, 0x75, 0x62, 0x6c, 0x69, 0x63
    ])); // SNMP
    let mut m = query(&wire("x.com"), 1);
    m[2] = 0x29; // opcode 5
    assert!(!plausible(&m));
}

#[test]
fn answers_a_cname_chain() {
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
    m.extend_from_slice(&wire("dnl-01.geo.kaspersky.com"));
    m.extend_from_slice(&[0, 1, 0, 1]);
    // CNAME dnl-01... -> edge.example.net
    m.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60]);
    let target = wire("edge.example.net");
    m.extend_from_slice(&(target.len() as u16).to_be_bytes());
    let tpos = m.len();
    m.extend_from_slice(&target);
    m.extend_from_slice(&[
        0xc0, tpos as u8, 0, 1, 0, 1, 0, 0, 1, 0, 0, 4, 203, 0, 113, 7,
    ]);
    let r = answers(&m);
    assert_eq!(
        r,
        vec![
            Resolution::Cname {
                owner: "dnl-01.geo.kaspersky.com".into(),
                target: "edge.example.net".into(),
                ttl: 60
            },
            Resolution::Addr {
                owner: "edge.example.net".into(),
                addr: "203.0.113.7".parse().unwrap(),
                ttl: 256
            },
        ]
    );
    assert!(answers(b"junk").is_empty());
    // The zero-copy walker agrees with hickory on the addresses.
    let mut got = Vec::new();
    assert_eq!(answer_addrs(&m, |a, t| got.push((a, t))), 1);
    assert_eq!(got, vec![("203.0.113.7".parse().unwrap(), 256)]);
    for n in 0..m.len() {
        let mut cut = Vec::new();
        answer_addrs(&m[..n], |a, t| cut.push((a, t)));
        assert!(
            cut.is_empty() || n == m.len(),
            "address read from a cut record at {n}"
        );
    }
}

#[test]
fn answer_addrs_reads_aaaa_and_skips_other_classes() {
    let mut m = vec![0, 2, 0x81, 0x80, 0, 1, 0, 3, 0, 0, 0, 0];
    m.extend_from_slice(&wire("www.shop-example.com"));
    m.extend_from_slice(&[0, 28, 0, 1]);
    let mut aaaa = vec![0xc0, 12, 0, 28, 0, 1, 0, 0, 0, 30, 0, 16];
    aaaa.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    m.extend_from_slice(&aaaa);
    // class CH: ignored
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 3, 0, 0, 0, 30, 0, 4, 1, 2, 3, 4]);
    // A with a wrong rdata length: ignored
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 3, 1, 2, 3]);
    let mut got = Vec::new();
    answer_addrs(&m, |a, t| got.push((a, t)));
    assert_eq!(got, vec![("2001:db8::9".parse().unwrap(), 30)]);
}

#[test]
fn every_truncation_never_panics() {
    let m = query(&wire("s07.upd.kaspersky.com"), 28);
    for n in 0..m.len() {
        let _ = plausible(&m[..n]);
        let got = names(&m[..n]);
        assert!(got.is_empty() || n >= m.len() - 4 || got[0] == "s07.upd.kaspersky.com");
        let _ = answers(&m[..n]);
    }
}

/// Every DNS response in the captures shipped with the repository (captures/
/// and the public corpus in tests/corpus/): the walker's resolutions equal
/// hickory-proto's wherever the walker takes a message on.
#[test]
fn answers_walker_agrees_with_hickory_on_real_responses() {
    use crate::capture::file::CaptureFile;
    use crate::decode::{decode, Decoded, Transport};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    let mut dirs = vec![root.join("captures"), root.join("tests/corpus")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".pcap"))
            {
                files.push(p);
            }
        }
    }
    assert!(files.len() > 50, "captures found: {}", files.len());
    let (mut walked, mut handed_over, mut resolutions) = (0, 0, 0);
    let mut c = crate::stats::Counters::default();
    for f in &files {
        let Ok(cap) = CaptureFile::open(f) else {
            continue;
        };
        cap.for_each(|_, raw| {
            let Decoded::Packet(p) = decode(raw.linktype, raw.data, &mut c) else {
                return;
            };
            let Transport::Udp { sport, payload, .. } = p.transport else {
                return;
            };
            if !matches!(sport, 53 | 5353 | 5355) {
                return;
            }
            match answers_walk(payload) {
                Some(r) => {
                    walked += 1;
                    resolutions += r.len();
                    // hickory escapes more (a label's leading '-' as "\\-"):
                    // the names must agree once escapes are removed. Ours
                    // are the form questions have, which chains must match.
                    assert_eq!(
                        unescaped(&r),
                        unescaped(&answers_hickory(payload)),
                        "{}",
                        f.display()
                    );
                }
                None => handed_over += 1,
            }
        });
    }
    eprintln!(
        "{} captures: {walked} responses walked ({resolutions} resolutions), {handed_over} handed to hickory",
        files.len()
    );
    assert!(walked > 1000 && resolutions > 300, "{walked} {resolutions}");
}

fn unescaped(r: &[Resolution]) -> Vec<Resolution> {
    let u = |s: &String| s.replace('\\', "");
    r.iter()
        .map(|x| match x {
            Resolution::Addr { owner, addr, ttl } => Resolution::Addr {
                owner: u(owner),
                addr: *addr,
                ttl: *ttl,
            },
            Resolution::Cname { owner, target, ttl } => Resolution::Cname {
                owner: u(owner),
                target: u(target),
                ttl: *ttl,
            },
        })
        .collect()
}

#[test]
fn answers_hand_https_records_to_hickory() {
    let mut m = vec![0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0];
    m.extend_from_slice(&wire("ksn.kaspersky.com"));
    m.extend_from_slice(&[0, 65, 0, 1]);
    // HTTPS 1 . ipv4hint=192.0.2.1
    let rdata = [0, 1, 0, 0, 4, 0, 4, 192, 0, 2, 1];
    m.extend_from_slice(&[0xc0, 12, 0, 65, 0, 1, 0, 0, 0, 60, 0, rdata.len() as u8]);
    m.extend_from_slice(&rdata);
    assert!(answers_walk(&m).is_none());
    assert_eq!(
        answers(&m),
        vec![Resolution::Addr {
            owner: "ksn.kaspersky.com".into(),
            addr: "192.0.2.1".parse().unwrap(),
            ttl: 60
        }]
    );
}

/// The one-pass copy of plain names gives what the label-by-label reader
/// gives (text, end, or the same error) for every offset of random
/// messages: names of random labels (capitals, dots, backslashes, control
/// and high bytes, empty labels, over-long names), a pointer in front or
/// inside, and any number of bytes after, down to none (no whole last
/// word).
#[test]
fn plain_names_read_in_one_pass_as_label_by_label() {
    let mut rng = crate::testrng::XorShift64(0x9e37_79b9_7f4a_7c15);
    let mut next = move || rng.next();
    let (mut fast_plain, mut compared) = (0, 0);
    for _ in 0..6_000 {
        let mut m = vec![0u8; (next() % 14) as usize];
        let labels = next() % 40;
        let pointer_first = next() % 5 == 0;
        let name_at = m.len();
        if pointer_first && name_at > 0 {
            m.extend_from_slice(&[0xc0, (next() % name_at as u64) as u8]);
        }
        for _ in 0..labels {
            let len = match next() % 10 {
                0 => next() % 64,
                1 => 1,
                _ => 1 + next() % 12,
            } as usize;
            m.push(len as u8);
            for _ in 0..len {
                let b = match next() % 40 {
                    0 => b'.',
                    1 => b'\\',
                    2 => (next() % 0x21) as u8,
                    3 => 0x80 | next() as u8,
                    4..=9 => b'A' + (next() % 26) as u8,
                    _ => b'a' + (next() % 26) as u8,
                };
                m.push(b);
            }
        }
        match next() % 8 {
            0 => m.extend_from_slice(&[0xc0, (next() % (m.len() as u64 + 1)) as u8]),
            1 => m.push(0x40),
            2 => {}
            _ => m.push(0),
        }
        let tail = (next() % 12) as usize;
        m.extend((0..tail).map(|_| next() as u8));
        for off in 0..m.len() {
            let (mut a, mut b) = ([0u8; MAX_NAME_LEN], [0u8; MAX_NAME_LEN]);
            let fast = read_name(&m, off, &mut a);
            let slow = read_name_labels(&m, off, &mut b);
            match (fast, slow) {
                (Ok((n, end)), Ok((n2, end2))) => {
                    assert_eq!((n, end), (n2, end2), "{m:?} at {off}");
                    assert_eq!(a[..n], b[..n], "{m:?} at {off}");
                    if read_plain_name(&m, off, &mut [0u8; MAX_NAME_LEN]).is_some() {
                        fast_plain += 1;
                    }
                }
                (f, s) => assert_eq!(f, s, "{m:?} at {off}"),
            }
            compared += 1;
        }
    }
    // Both paths were taken, many times.
    assert!(
        compared > 60_000 && fast_plain > 3_000,
        "{compared} {fast_plain}"
    );
    eprintln!("{compared} offsets compared, {fast_plain} read in one pass");
}
