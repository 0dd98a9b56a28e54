use super::*;
use std::io::Write;

/// A classic pcap: `magic` picks the byte order and resolution.
fn pcap(big_endian: bool, nanos: bool, linktype: u32, pkts: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let u32b = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u16b = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend(u32b(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend(u16b(2));
    out.extend(u16b(4));
    out.extend(u32b(0)); // thiszone
    out.extend(u32b(0)); // sigfigs
    out.extend(u32b(65535));
    out.extend(u32b(linktype));
    for &(sec, frac, data) in pkts {
        out.extend(u32b(sec));
        out.extend(u32b(frac));
        out.extend(u32b(data.len() as u32));
        out.extend(u32b(data.len() as u32 + 10)); // origlen: snapped
        out.extend_from_slice(data);
    }
    out
}

fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let len = (12 + body.len() + pad) as u32;
    let mut b = Vec::new();
    b.extend(kind.to_le_bytes());
    b.extend(len.to_le_bytes());
    b.extend_from_slice(body);
    b.extend(std::iter::repeat_n(0u8, pad));
    b.extend(len.to_le_bytes());
    b
}

fn shb() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(0x1a2b_3c4du32.to_le_bytes());
    body.extend(1u16.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend((-1i64).to_le_bytes());
    block(0x0a0d_0d0a, &body)
}

fn idb(linktype: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(linktype.to_le_bytes());
    body.extend(0u16.to_le_bytes());
    body.extend(65535u32.to_le_bytes());
    block(1, &body)
}

fn epb(if_id: u32, ts_us: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(if_id.to_le_bytes());
    body.extend(((ts_us >> 32) as u32).to_le_bytes());
    body.extend((ts_us as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend((data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    block(6, &body)
}

/// (frame, ts, linktype, interface, data, wire_len) of every packet, and the end.
type Seen = (u64, u64, u32, u32, Vec<u8>, u32);

fn read(bytes: &[u8]) -> (Vec<Seen>, FileSummary) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("t.pcap");
    std::fs::write(&p, bytes).unwrap();
    read_path(&p)
}

fn read_path(p: &Path) -> (Vec<Seen>, FileSummary) {
    let mut seen = Vec::new();
    let sum = CaptureFile::open(p).unwrap().for_each(|n, r| {
        seen.push((
            n,
            r.ts,
            r.linktype,
            r.interface,
            r.data.to_vec(),
            r.wire_len,
        ));
    });
    (seen, sum)
}

#[test]
fn pcap_both_byte_orders_and_resolutions() {
    for (be, ns) in [(false, false), (true, false), (false, true), (true, true)] {
        let f = pcap(be, ns, 101, &[(10, 5, b"abc"), (11, 0, b"")]);
        let (seen, sum) = read(&f);
        let frac = if ns { 5 } else { 5_000 };
        assert_eq!(sum.end, End::Complete, "be={be} ns={ns}");
        assert_eq!(sum.frames, 2);
        assert_eq!(
            seen[0],
            (1, 10_000_000_000 + frac, 101, 0, b"abc".to_vec(), 13)
        );
        assert_eq!(seen[1].1, 11_000_000_000);
    }
}

#[test]
fn pcap_truncated_keeps_what_came_before() {
    let f = pcap(false, false, 1, &[(1, 0, &[1; 40]), (2, 0, &[2; 40])]);
    let (seen, sum) = read(&f[..f.len() - 20]);
    assert_eq!(seen.len(), 1);
    assert_eq!(sum.frames, 1);
    match sum.end {
        End::Damaged(why) => assert!(
            why.contains("truncated") && why.contains("read 1 frames"),
            "{why}"
        ),
        e => panic!("{e:?}"),
    }
}

#[test]
fn gzip_is_read_through() {
    let f = pcap(false, false, 1, &[(1, 0, b"xyz")]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&f).unwrap();
    let (seen, sum) = read(&gz.finish().unwrap());
    assert_eq!(sum.end, End::Complete);
    assert_eq!(seen[0].4, b"xyz");
}

#[test]
fn pcapng_sections_reset_interfaces() {
    let f = [
        shb(),
        idb(1),
        idb(113),
        epb(1, 2_000_001, b"sll"),
        epb(0, 3_000_000, b"eth"),
        shb(),
        idb(101),
        epb(0, 4_000_000, b"raw"),
    ]
    .concat();
    let (seen, sum) = read(&f);
    assert_eq!(sum.end, End::Complete);
    let got: Vec<(u64, u64, u32, u32)> = seen.iter().map(|s| (s.0, s.1, s.2, s.3)).collect();
    assert_eq!(
        got,
        [
            (1, 2_000_001_000, 113, 1),
            (2, 3_000_000_000, 1, 0),
            (3, 4_000_000_000, 101, 0)
        ]
    );
    // Interface 1 of the first section is gone after the second header.
    let bad = [shb(), idb(1), idb(1), shb(), idb(1), epb(1, 0, b"x")].concat();
    let (seen, sum) = read(&bad);
    assert!(seen.is_empty());
    match sum.end {
        End::Damaged(why) => assert!(why.contains("never described"), "{why}"),
        e => panic!("{e:?}"),
    }
}

#[test]
fn pcapng_truncated_block() {
    let f = [shb(), idb(1), epb(0, 1, &[7; 64]), epb(0, 2, &[8; 64])].concat();
    let (seen, sum) = read(&f[..f.len() - 30]);
    assert_eq!(seen.len(), 1);
    assert!(
        matches!(sum.end, End::Damaged(ref w) if w.contains("truncated")),
        "{:?}",
        sum.end
    );
}

#[test]
fn open_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let err = |bytes: &[u8]| {
        let p = dir.path().join("x");
        std::fs::write(&p, bytes).unwrap();
        CaptureFile::open(&p).err().unwrap().to_string()
    };
    assert!(err(b"").contains("empty file"));
    assert!(err(b"this is not a capture file at all").contains("not a pcap or pcapng"));
    let e = CaptureFile::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("is a directory"), "{e}");
    let e = CaptureFile::open(&dir.path().join("missing"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no such file"), "{e}");
}

#[test]
fn timestamps_convert() {
    let us = Iface {
        linktype: 1,
        resol: 1_000_000,
        offset_s: 0,
    };
    assert_eq!(to_ns(2, 3, us), 2_000_003_000);
    let shifted = Iface { offset_s: -5, ..us };
    assert_eq!(to_ns(2, 0, shifted), 0, "negative times clamp to 0");
    let ms = Iface { resol: 1_000, ..us };
    assert_eq!(to_ns(1, 1, ms), 1_001_000_000);
}

/// Every frame of `bytes` through `CaptureFile::from_bytes`.
fn read_bytes(bytes: &[u8]) -> (Vec<Seen>, FileSummary) {
    let mut seen = Vec::new();
    let sum = CaptureFile::from_bytes(bytes.to_vec())
        .unwrap()
        .for_each(|n, r| {
            seen.push((
                n,
                r.ts,
                r.linktype,
                r.interface,
                r.data.to_vec(),
                r.wire_len,
            ));
        });
    (seen, sum)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn bytes_and_path_give_the_same_frames() {
    let caps = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures");
    let mut checked = 0;
    for name in ["demo.pcapng", "ksc.pcap", "quic.pcap", "real-clients.pcap"] {
        let whole = std::fs::read(caps.join(name)).unwrap();
        // Whole, cut inside a block (truncated), and gzipped whole and cut.
        let cut = whole.get(..whole.len() * 2 / 3).unwrap().to_vec();
        for (what, bytes) in [
            ("whole", whole.clone()),
            ("cut", cut.clone()),
            ("gzip", gzip(&whole)),
            ("gzip cut", gzip(&cut)),
        ] {
            let (by_path, path_sum) = read(&bytes);
            let (in_memory, mem_sum) = read_bytes(&bytes);
            assert!(!by_path.is_empty(), "{name} {what}: no frames");
            assert_eq!(by_path, in_memory, "{name} {what}: frames differ");
            assert_eq!(path_sum.frames, mem_sum.frames, "{name} {what}");
            assert_eq!(path_sum.end, mem_sum.end, "{name} {what}");
            if what.contains("cut") {
                assert!(
                    matches!(mem_sum.end, End::Damaged(ref w) if w.contains("truncated")),
                    "{name} {what}: {:?}",
                    mem_sum.end
                );
            } else {
                assert_eq!(mem_sum.end, End::Complete, "{name} {what}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 16);
}

#[test]
fn bytes_refused_like_files() {
    let err = |bytes: &[u8]| {
        CaptureFile::from_bytes(bytes.to_vec())
            .err()
            .unwrap()
            .to_string()
    };
    let e = err(b"");
    assert!(e.contains("empty file") && e.contains(MEMORY_NAME), "{e}");
    assert!(err(b"this is not a capture file at all").contains("not a pcap or pcapng"));
    assert!(err(&gzip(b"not a capture either")).contains("not a pcap or pcapng"));
    let f = CaptureFile::from_bytes(pcap(false, false, 1, &[])).unwrap();
    assert_eq!(f.path(), Path::new(MEMORY_NAME));
}

/// Three frames, 60 bytes, `big`, 60 bytes, as classic pcap and as pcapng.
fn small_big_small(big: &[u8]) -> [Vec<u8>; 2] {
    let small = [1u8; 60];
    let legacy = pcap(
        false,
        false,
        1,
        &[(1, 0, &small[..]), (2, 0, big), (3, 0, &small[..])],
    );
    let mut ng = shb();
    ng.extend(idb(1));
    ng.extend(epb(0, 1, &small));
    ng.extend(epb(0, 2, big));
    ng.extend(epb(0, 3, &small));
    [legacy, ng]
}

/// A frame larger than the initial read buffer (pcap-parser reports
/// BufferTooSmall, not Incomplete): the buffer grows and every frame is read,
/// in pcap and pcapng, from a file and from memory; a block beyond
/// MAX_BLOCK_BYTES still ends the file with the block size named.
#[test]
fn blocks_larger_than_the_buffer_are_read() {
    for big_len in [
        INITIAL_BUFFER + 1000,
        3 * INITIAL_BUFFER,
        9 * INITIAL_BUFFER,
    ] {
        let big = vec![0x5a; big_len];
        for bytes in &small_big_small(&big) {
            for (seen, sum) in [read(bytes), read_bytes(bytes)] {
                assert_eq!(sum.end, End::Complete, "{big_len}");
                let lens: Vec<usize> = seen.iter().map(|s| s.4.len()).collect();
                assert_eq!(lens, vec![60, big_len, 60]);
                assert!(seen[1].4.iter().all(|b| *b == 0x5a));
            }
        }
    }
    // Over the limit: refused with the limit named, frames before it kept.
    let huge = vec![0u8; MAX_BLOCK_BYTES + 16];
    let legacy = pcap(
        false,
        false,
        1,
        &[(1, 0, &[1u8; 60][..]), (2, 0, &huge[..])],
    );
    let (seen, sum) = read_bytes(&legacy);
    assert_eq!(seen.len(), 1);
    match sum.end {
        End::Damaged(why) => assert!(why.contains("larger than 16777216"), "{why}"),
        e => panic!("{e:?}"),
    }
}

/// Records of every size from 0 to 3,000 bytes, ~3 MB in all: many records
/// straddle the end of the 1 MiB read buffer (the general path) and the
/// rest are read whole from it (the classic-pcap fast path). Both byte
/// orders and resolutions; each file also cut at offsets around the
/// buffer's end and in its last record.
#[test]
fn pcap_records_across_buffer_boundaries() {
    let mut x = 0x1234_5678u32;
    let mut datas: Vec<Vec<u8>> = Vec::new();
    let mut total = 0;
    while total < 3 << 20 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let len = (x % 3001) as usize;
        datas.push((0..len).map(|i| (i as u32 ^ x) as u8).collect());
        total += 16 + len;
    }
    let pkts: Vec<(u32, u32, &[u8])> = datas
        .iter()
        .enumerate()
        .map(|(i, d)| (i as u32, (i as u32 * 7) % 1_000_000, d.as_slice()))
        .collect();
    for (be, ns) in [(false, false), (true, true)] {
        let f = pcap(be, ns, 1, &pkts);
        let (seen, sum) = read(&f);
        assert_eq!(sum.end, End::Complete, "be={be}");
        assert_eq!(seen.len(), pkts.len());
        for (s, (i, p)) in seen.iter().zip(pkts.iter().enumerate()) {
            let frac = if ns {
                u64::from(p.1)
            } else {
                u64::from(p.1) * 1_000
            };
            let want = (
                i as u64 + 1,
                u64::from(p.0) * 1_000_000_000 + frac,
                1,
                0,
                p.2.to_vec(),
                p.2.len() as u32 + 10,
            );
            assert_eq!(*s, want, "frame {} be={be}", i + 1);
        }
        // Cut: near the first buffer's end and inside the last record.
        let ends: Vec<usize> = [1 << 20, (1 << 20) + 7, f.len() - 1, f.len() - 17]
            .into_iter()
            .collect();
        for cut in ends {
            let (seen, sum) = read(&f[..cut]);
            // Whole records before the cut, nothing after.
            let mut at = 24;
            let mut whole = 0;
            for p in &pkts {
                if at + 16 + p.2.len() > cut {
                    break;
                }
                at += 16 + p.2.len();
                whole += 1;
            }
            assert_eq!(seen.len(), whole, "cut {cut}");
            if at == cut {
                assert_eq!(sum.end, End::Complete, "cut {cut}");
            } else {
                assert!(
                    matches!(sum.end, End::Damaged(ref w) if w.contains("truncated")),
                    "cut {cut}: {:?}",
                    sum.end
                );
            }
        }
    }
}

/// The "modified" pcap format (24-byte records) is not the fast path's:
/// it is read by the general parser.
#[test]
fn modified_pcap_is_read() {
    let mut f = pcap(false, false, 1, &[]);
    f[..4].copy_from_slice(&0xa1b2_cd34u32.to_le_bytes());
    for (sec, data) in [(5u32, &b"abcd"[..]), (6, b"")] {
        f.extend(sec.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend((data.len() as u32).to_le_bytes());
        f.extend((data.len() as u32).to_le_bytes());
        f.extend([0u8; 8]); // ifindex, protocol, pkt_type, pad
        f.extend_from_slice(data);
    }
    let (seen, sum) = read(&f);
    assert_eq!(sum.end, End::Complete);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].4, b"abcd".to_vec());
    assert_eq!(seen[1].1, 6_000_000_000);
}

/// A stream that hands out at most `step` bytes per read (a slow pipe, a
/// gzip decoder): every frame still arrives, a block larger than the
/// buffer included, and a stream cut inside a block is reported truncated
/// after the frames before it. The old refill read twice at most before
/// calling a block truncated.
#[test]
fn short_reads_still_give_every_frame() {
    struct Trickle(std::io::Cursor<Vec<u8>>, usize);
    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }
    let big = vec![0x33u8; INITIAL_BUFFER + 5000];
    for bytes in &small_big_small(&big) {
        for step in [4096usize, 65_536, 1 << 20] {
            let run = |b: &[u8]| {
                let s = Box::new(Trickle(std::io::Cursor::new(b.to_vec()), step));
                let f = CaptureFile::recognise(Path::new("t"), Path::new("t"), s).unwrap();
                let mut lens = Vec::new();
                let sum = f.for_each(|_, r| lens.push(r.data.len()));
                (lens, sum)
            };
            let (lens, sum) = run(bytes);
            assert_eq!(sum.end, End::Complete, "step {step}");
            assert_eq!(lens, vec![60, big.len(), 60], "step {step}");
            // Cut inside the big block: the first frame, then "truncated".
            let (lens, sum) = run(&bytes[..bytes.len() - 2000]);
            assert_eq!(lens, vec![60], "step {step}");
            match sum.end {
                End::Damaged(why) => assert!(why.contains("truncated"), "{why}"),
                End::Complete => panic!("a cut stream read as complete (step {step})"),
            }
        }
    }
}
