//! Live capture with AF_PACKET directly (`kaswatch live --capture afpacket`):
//! per interface, `--fanout N` packet sockets joined in one
//! `PACKET_FANOUT_HASH` group (with `PACKET_FANOUT_FLAG_DEFRAG`, so IPv4
//! fragments are reassembled before hashing and every packet of a flow, both
//! directions, reaches the same socket), each with its own TPACKET_V3 mmap
//! ring, promiscuous (`PACKET_ADD_MEMBERSHIP`), with `--bpf` compiled to
//! classic BPF by libpcap and attached with `SO_ATTACH_FILTER`. `live.rs`
//! runs one thread and pipeline worker per socket.
//!
//! The ring is shared with the kernel: a block belongs to us from the moment
//! its status has `TP_STATUS_USER` (read with acquire ordering) until we
//! store `TP_STATUS_KERNEL` (release); only then is the block viewed as a
//! byte slice, and every header in it is read with bounds checks.
//!
//! Workers of one interface see different flows at different times; the
//! [`Sequencer`] hands their observations to the merger in packet-time order
//! (each worker reports a watermark below which it will deliver nothing
//! more), so the host table and events are those of a single capture.

use super::RawPacket;
use crate::error::{Error, Result};
use std::collections::BinaryHeap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};

/// Most sockets (and worker threads) per interface (`--fanout`).
pub const MAX_FANOUT_WORKERS: usize = 64;
/// Largest default ring block; the default is a sixteenth of the socket's
/// buffer within [one snaplen-sized packet, this], so a block timeout that
/// retires a partly filled block wastes little of the ring.
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;
/// Blocks the default block size aims at per socket.
const DEFAULT_BLOCKS: u64 = 16;
/// Default `tp_frame_size` (only sizes `tp_frame_nr`; V3 stores packets at their real size).
pub const DEFAULT_FRAME_SIZE: u32 = 2048;
/// Largest block accepted (`--ring-block-size`).
pub const MAX_BLOCK_SIZE: u32 = 64 << 20;
/// A partly filled block is handed to us after this long (ms).
const BLOCK_TIMEOUT_MS: u32 = 8;
/// Longest wait for packets before the thread checks for shutdown (ms).
const POLL_MS: i32 = 100;
/// A packet can still be in the kernel (backlog, open block) this long after
/// its timestamp; a worker whose ring is empty vouches only for older times.
pub const WATERMARK_LAG_NS: u64 = 250_000_000;
/// Timestamps within one socket can step back this much (different CPUs).
const SKEW_NS: u64 = 2_000_000;

// Linux UAPI (linux/if_packet.h, linux/if_ether.h, asm-generic/socket.h).
const SOL_PACKET: libc::c_int = 263;
const PACKET_ADD_MEMBERSHIP: libc::c_int = 1;
const PACKET_RX_RING: libc::c_int = 5;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_VERSION: libc::c_int = 10;
const PACKET_FANOUT: libc::c_int = 18;
const TPACKET_V3: libc::c_int = 2;
const PACKET_MR_PROMISC: libc::c_ushort = 1;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;
const PACKET_FANOUT_FLAG_DEFRAG: u32 = 0x8000;
const PACKET_OUTGOING: u8 = 4;
const ETH_P_ALL: u16 = 0x0003;
const SO_ATTACH_FILTER: libc::c_int = 26;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NONE: u16 = 0xfffe;
/// struct tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1.
const BD_STATUS: usize = 8;
const BD_NUM_PKTS: usize = 12;
const BD_FIRST: usize = 16;
const BD_LEN: usize = 24; // up to and including blk_len
/// struct tpacket3_hdr (48 bytes), then struct sockaddr_ll.
const H3_LEN: usize = 48;
const SLL_PKTTYPE: usize = H3_LEN + 10;

#[repr(C)]
struct TpacketReq3 {
    tp_block_size: u32,
    tp_block_nr: u32,
    tp_frame_size: u32,
    tp_frame_nr: u32,
    tp_retire_blk_tov: u32,
    tp_sizeof_priv: u32,
    tp_feature_req_word: u32,
}

#[repr(C)]
struct PacketMreq {
    mr_ifindex: libc::c_int,
    mr_type: libc::c_ushort,
    mr_alen: libc::c_ushort,
    mr_address: [u8; 8],
}

#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    tp_packets: u32,
    tp_drops: u32,
    tp_freeze_q_cnt: u32,
}

/// Ring geometry of one socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    pub block_size: u32,
    pub frame_size: u32,
    pub blocks: u32,
}

impl Ring {
    /// From the flags: `--buffer-size` MiB per interface is shared by its
    /// `fanout` sockets unless `--ring-blocks` says otherwise.
    pub fn from_flags(
        buffer_mib: u32,
        snaplen: u32,
        fanout: usize,
        block_size: Option<u32>,
        frame_size: Option<u32>,
        blocks: Option<u32>,
    ) -> std::result::Result<Ring, String> {
        // SAFETY: sysconf has no memory effects.
        let page = u32::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .ok()
            .filter(|p| *p > 0)
            .unwrap_or(4096);
        let per_socket = (u64::from(buffer_mib) << 20) / fanout.max(1) as u64;
        // A whole snaplen-sized packet plus headers must fit one block.
        let least = (u64::from(snaplen.max(1)) + 256)
            .next_power_of_two()
            .max(u64::from(page));
        let derived = (per_socket / DEFAULT_BLOCKS)
            .max(1)
            .next_power_of_two()
            .clamp(
                least.min(u64::from(DEFAULT_BLOCK_SIZE)),
                u64::from(DEFAULT_BLOCK_SIZE),
            );
        let block_size = block_size.unwrap_or(u32::try_from(derived).unwrap_or(DEFAULT_BLOCK_SIZE));
        if block_size < page || block_size > MAX_BLOCK_SIZE || !block_size.is_power_of_two() {
            return Err(format!(
                "--ring-block-size must be a power of two between {page} and {MAX_BLOCK_SIZE} bytes"
            ));
        }
        let frame_size = frame_size.unwrap_or(DEFAULT_FRAME_SIZE);
        if frame_size < 64 || frame_size % 16 != 0 || frame_size > block_size {
            return Err(format!(
                "--ring-frame-size must be a multiple of 16 between 64 and the block size ({block_size})"
            ));
        }
        let blocks = match blocks {
            Some(b) => b,
            None => u32::try_from(per_socket / u64::from(block_size))
                .unwrap_or(u32::MAX)
                .max(2),
        };
        let total = u64::from(blocks) * u64::from(block_size);
        if blocks < 2 || total > u64::from(super::live::MAX_BUFFER_MIB) << 20 {
            return Err(format!(
                "--ring-blocks: at least 2 blocks, at most {} MiB per socket",
                super::live::MAX_BUFFER_MIB
            ));
        }
        Ok(Ring {
            block_size,
            frame_size,
            blocks,
        })
    }
}

/// Options of one interface's sockets.
#[derive(Clone, Debug)]
pub struct AfOptions {
    pub snaplen: u32,
    pub bpf: Option<String>,
    pub ring: Ring,
}

/// Cumulative PACKET_STATISTICS of one socket (the kernel resets on read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketStats {
    pub packets: u64,
    pub drops: u64,
    /// Times the ring was full (each comes with drops counted in `drops`).
    pub freezes: u64,
}

/// One packet socket with its mapped ring.
pub struct AfPacket {
    fd: OwnedFd,
    ring: *mut u8,
    ring_len: usize,
    cfg: Ring,
    next: usize,
    pub linktype: u32,
    loopback: bool,
    snaplen: usize,
    scratch: Vec<u8>,
    stats: SocketStats,
    /// Blocks whose descriptors or packet headers did not parse (skipped).
    pub malformed: u64,
}

// SAFETY: the ring is owned by this value alone (mapped in open, unmapped in
// drop); moving it to another thread moves that ownership.
unsafe impl Send for AfPacket {}

impl Drop for AfPacket {
    fn drop(&mut self) {
        // SAFETY: ring/ring_len are exactly what mmap returned; nothing
        // borrows the ring past a poll call.
        unsafe {
            libc::munmap(self.ring.cast(), self.ring_len);
        }
    }
}

fn os_err() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn setopt<T>(fd: libc::c_int, level: libc::c_int, name: libc::c_int, v: &T) -> std::io::Result<()> {
    // SAFETY: `v` is a live, initialised T and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(os_err())
    }
}

fn getopt<T>(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    v: &mut T,
) -> std::io::Result<()> {
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a live T, writable for `len` bytes; the kernel writes at most len.
    let r = unsafe { libc::getsockopt(fd, level, name, (v as *mut T).cast(), &mut len) };
    if r == 0 {
        Ok(())
    } else {
        Err(os_err())
    }
}

fn is_permission(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::EACCES))
}

/// Interface index, or the usual one-line error.
pub fn ifindex(name: &str) -> Result<i32> {
    let c = std::ffi::CString::new(name).map_err(|_| Error::input(name, "no such interface"))?;
    // SAFETY: valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    match i32::try_from(idx) {
        Ok(i) if i > 0 => Ok(i),
        _ => Err(Error::input(name, "no such interface")),
    }
}

/// Compile `expr` for `linktype` with libpcap and turn it into kernel
/// socket-filter instructions; accepted packets are cut to `snaplen`.
pub fn compile_filter(
    expr: Option<&str>,
    linktype: u32,
    snaplen: u32,
) -> std::result::Result<Vec<libc::sock_filter>, String> {
    let Some(expr) = expr else {
        // No filter: one instruction that accepts `snaplen` bytes.
        return Ok(vec![libc::sock_filter {
            code: 0x06,
            jt: 0,
            jf: 0,
            k: snaplen,
        }]);
    };
    let cap = pcap::Capture::dead(pcap::Linktype(linktype as i32)).map_err(|e| e.to_string())?;
    let prog = cap.compile(expr, true).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for ins in prog.get_instructions() {
        // Display is "code jt jf k", the only public view of an instruction.
        let text = ins.to_string();
        let f: Vec<u32> = text
            .split_whitespace()
            .filter_map(|s| s.parse().ok())
            .collect();
        let [code, jt, jf, k] = f[..] else {
            return Err(format!("unexpected BPF instruction {text:?}"));
        };
        let (Ok(code), Ok(jt), Ok(jf)) = (u16::try_from(code), u8::try_from(jt), u8::try_from(jf))
        else {
            return Err(format!("unexpected BPF instruction {text:?}"));
        };
        // BPF_RET|BPF_K with a non-zero length: accept at most snaplen bytes.
        let k = if code == 0x06 && k != 0 {
            k.min(snaplen)
        } else {
            k
        };
        out.push(libc::sock_filter { code, jt, jf, k });
    }
    if out.is_empty() || out.len() > usize::from(u16::MAX) {
        return Err("empty or oversized BPF program".into());
    }
    Ok(out)
}

/// Open the `n` sockets of one interface in a new fanout group; returns them
/// and the group id (for [`AfPacket::open`] when one is reopened).
pub fn open_group(name: &str, o: &AfOptions, n: usize) -> Result<(Vec<AfPacket>, u16)> {
    let first = AfPacket::open(name, o, None)?;
    let mut v: u32 = 0;
    getopt(first.fd.as_raw_fd(), SOL_PACKET, PACKET_FANOUT, &mut v)
        .map_err(|e| Error::input(name, format!("cannot read the fanout group: {e}")))?;
    let group = (v & 0xffff) as u16;
    let mut socks = vec![first];
    for _ in 1..n {
        socks.push(AfPacket::open(name, o, Some(group))?);
    }
    Ok((socks, group))
}

impl AfPacket {
    /// One socket on `name`: a new fanout group of its own (`None`, the
    /// kernel picks a free id) or joining `group`.
    pub fn open(name: &str, o: &AfOptions, group: Option<u16>) -> Result<AfPacket> {
        let idx = ifindex(name)?;
        let fail = |what: &str, e: std::io::Error| {
            if is_permission(&e) {
                Error::input(name, "no permission to capture: the CAP_NET_RAW capability is missing (run as root or grant cap_net_raw)")
            } else if e.raw_os_error() == Some(libc::ENODEV)
                || e.raw_os_error() == Some(libc::ENXIO)
            {
                Error::input(name, "no such interface")
            } else {
                Error::input(name, format!("cannot capture ({what}): {e}"))
            }
        };
        // Protocol 0: no packets queue before the ring, filter and bind are set.
        // SAFETY: plain syscall.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(fail("socket", os_err()));
        }
        // SAFETY: `raw` is a fresh descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let s = fd.as_raw_fd();
        setopt(s, SOL_PACKET, PACKET_VERSION, &TPACKET_V3).map_err(|e| fail("TPACKET_V3", e))?;
        // Learn the link type first (bind without a protocol delivers nothing).
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = idx;
        sll.sll_protocol = 0;
        bind(s, &sll).map_err(|e| fail("bind", e))?;
        // SAFETY: as above.
        let mut got: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `got` is writable for `len` bytes.
        let r =
            unsafe { libc::getsockname(s, (&mut got as *mut libc::sockaddr_ll).cast(), &mut len) };
        if r != 0 {
            return Err(fail("getsockname", os_err()));
        }
        let linktype = match got.sll_hatype {
            ARPHRD_ETHER | ARPHRD_LOOPBACK => 1,
            ARPHRD_NONE => 101,
            t => {
                return Err(Error::input(
                    name,
                    format!("--capture afpacket supports Ethernet, loopback and raw-IP interfaces, not ARPHRD {t}; use --capture pcap"),
                ))
            }
        };
        let filter = compile_filter(o.bpf.as_deref(), linktype, o.snaplen.max(1)).map_err(|e| {
            Error::Usage(format!("--bpf {:?}: {e}", o.bpf.as_deref().unwrap_or("")))
        })?;
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        setopt(s, libc::SOL_SOCKET, SO_ATTACH_FILTER, &prog)
            .map_err(|e| fail("SO_ATTACH_FILTER", e))?;
        let ring = o.ring;
        let req = TpacketReq3 {
            tp_block_size: ring.block_size,
            tp_block_nr: ring.blocks,
            tp_frame_size: ring.frame_size,
            tp_frame_nr: (ring.block_size / ring.frame_size).saturating_mul(ring.blocks),
            tp_retire_blk_tov: BLOCK_TIMEOUT_MS,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setopt(s, SOL_PACKET, PACKET_RX_RING, &req).map_err(|e| fail("PACKET_RX_RING", e))?;
        let ring_len = ring.block_size as usize * ring.blocks as usize;
        // SAFETY: maps the ring just configured on `s`; checked against MAP_FAILED.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                ring_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                s,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(fail("mmap", os_err()));
        }
        let mut sock = AfPacket {
            fd,
            ring: p.cast(),
            ring_len,
            cfg: ring,
            next: 0,
            linktype,
            loopback: got.sll_hatype == ARPHRD_LOOPBACK,
            snaplen: o.snaplen.max(1) as usize,
            scratch: Vec::new(),
            stats: SocketStats::default(),
            malformed: 0,
        };
        let mreq = PacketMreq {
            mr_ifindex: idx,
            mr_type: PACKET_MR_PROMISC,
            mr_alen: 0,
            mr_address: [0; 8],
        };
        setopt(s, SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq)
            .map_err(|e| fail("promiscuous mode", e))?;
        sll.sll_protocol = ETH_P_ALL.to_be();
        bind(s, &sll).map_err(|e| fail("bind", e))?;
        let kind = PACKET_FANOUT_HASH | PACKET_FANOUT_FLAG_DEFRAG;
        let arg: u32 = match group {
            None => (kind | PACKET_FANOUT_FLAG_UNIQUEID) << 16,
            Some(id) => u32::from(id) | kind << 16,
        };
        setopt(s, SOL_PACKET, PACKET_FANOUT, &arg).map_err(|e| fail("PACKET_FANOUT", e))?;
        // Packets queued before the filter (none: protocol 0) and the
        // counters of the setup are not ours.
        let _ = sock.stats();
        Ok(sock)
    }

    /// Wait up to the poll interval, then hand over the packets of at most
    /// `max_blocks` ready blocks; `on_block(n)` is told each block's packet
    /// count before its packets. Returns (packets, ring now empty) or the
    /// capture error (e.g. the interface went down).
    pub fn poll(
        &mut self,
        max_blocks: usize,
        iface: u32,
        mut on_block: impl FnMut(usize),
        mut f: impl FnMut(&RawPacket<'_>),
    ) -> std::result::Result<(usize, bool), String> {
        if !self.ready() {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1, bounded timeout.
            let n = unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
            if n > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
                let mut err: libc::c_int = 0;
                if getopt(
                    self.fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    &mut err,
                )
                .is_ok()
                    && err != 0
                {
                    return Err(std::io::Error::from_raw_os_error(err).to_string());
                }
                if pfd.revents & libc::POLLNVAL != 0 {
                    return Err("capture socket closed".into());
                }
            }
        }
        let mut pkts = 0;
        for _ in 0..max_blocks {
            if !self.ready() {
                return Ok((pkts, true));
            }
            let block = self.block_ptr(self.next);
            let bs = self.cfg.block_size as usize;
            // SAFETY: the block is ours (TP_STATUS_USER seen with acquire
            // ordering in ready()); the kernel does not write it until we
            // store TP_STATUS_KERNEL below, and it lies inside the mapping.
            let data = unsafe { std::slice::from_raw_parts(block.cast_const(), bs) };
            pkts += walk_block(
                data,
                self.linktype,
                self.loopback,
                self.snaplen,
                iface,
                &mut self.scratch,
                &mut self.malformed,
                &mut on_block,
                &mut f,
            );
            self.status(self.next)
                .store(TP_STATUS_KERNEL, Ordering::Release);
            self.next = (self.next + 1) % self.cfg.blocks as usize;
        }
        Ok((pkts, !self.ready()))
    }

    fn block_ptr(&self, i: usize) -> *mut u8 {
        // SAFETY: i < blocks, so the offset stays inside the mapping.
        unsafe { self.ring.add(i * self.cfg.block_size as usize) }
    }

    /// The status word of block `i`, shared with the kernel.
    fn status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block starts are page aligned, so ring + i*block + 8 is a
        // 4-aligned u32 inside the mapping, which lives as long as self;
        // the kernel updates it concurrently, hence the atomic view.
        unsafe { &*(self.block_ptr(i).add(BD_STATUS) as *const AtomicU32) }
    }

    fn ready(&self) -> bool {
        self.status(self.next).load(Ordering::Acquire) & TP_STATUS_USER != 0
    }

    /// Counters so far (since this socket was opened).
    pub fn stats(&mut self) -> SocketStats {
        let mut st = TpacketStatsV3::default();
        if getopt(self.fd.as_raw_fd(), SOL_PACKET, PACKET_STATISTICS, &mut st).is_ok() {
            self.stats.packets += u64::from(st.tp_packets);
            self.stats.drops += u64::from(st.tp_drops);
            self.stats.freezes += u64::from(st.tp_freeze_q_cnt);
        }
        self.stats
    }
}

fn bind(s: libc::c_int, sll: &libc::sockaddr_ll) -> std::io::Result<()> {
    // SAFETY: `sll` is a valid sockaddr_ll of the length passed.
    let r = unsafe {
        libc::bind(
            s,
            (sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(os_err())
    }
}

fn rd_u16(b: &[u8], at: usize) -> Option<u16> {
    b.get(at..at.checked_add(2)?)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_ne_bytes)
}

fn rd_u32(b: &[u8], at: usize) -> Option<u32> {
    b.get(at..at.checked_add(4)?)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
}

/// The packets of one retired block (its bytes, `block.len()` = block size):
/// every offset and length is checked against the block; a bad header ends
/// the block and counts it in `malformed`. Returns the packets handed over.
#[allow(clippy::too_many_arguments)]
pub fn walk_block(
    block: &[u8],
    linktype: u32,
    loopback: bool,
    snaplen: usize,
    iface: u32,
    scratch: &mut Vec<u8>,
    malformed: &mut u64,
    on_block: &mut impl FnMut(usize),
    f: &mut impl FnMut(&RawPacket<'_>),
) -> usize {
    if block.len() < BD_LEN {
        *malformed += 1;
        return 0;
    }
    let (Some(num), Some(first)) = (rd_u32(block, BD_NUM_PKTS), rd_u32(block, BD_FIRST)) else {
        *malformed += 1;
        return 0;
    };
    let num = num as usize;
    on_block(num);
    let mut off = first as usize;
    let mut done = 0;
    for i in 0..num {
        let Some(h) = off.checked_add(H3_LEN).and_then(|e| block.get(off..e)) else {
            *malformed += 1;
            break;
        };
        let (Some(next), Some(sec), Some(nsec), Some(caplen), Some(len), Some(status), Some(mac)) = (
            rd_u32(h, 0),
            rd_u32(h, 4),
            rd_u32(h, 8),
            rd_u32(h, 12),
            rd_u32(h, 16),
            rd_u32(h, 20),
            rd_u16(h, 24),
        ) else {
            *malformed += 1;
            break;
        };
        let start = off + usize::from(mac);
        let Some(frame) = start
            .checked_add(caplen as usize)
            .and_then(|end| block.get(start..end))
        else {
            *malformed += 1;
            break;
        };
        // libpcap skips outgoing copies on loopback (each is seen incoming too).
        let outgoing_lo = loopback && block.get(off + SLL_PKTTYPE) == Some(&PACKET_OUTGOING);
        if !outgoing_lo {
            // Microseconds, as libpcap reports by default.
            let ts = u64::from(sec) * 1_000_000_000 + u64::from(nsec / 1000) * 1000;
            let tci = rd_u32(h, 32).unwrap_or(0);
            let vlan = linktype == 1
                && frame.len() >= 12
                && (status & TP_STATUS_VLAN_VALID != 0 || tci != 0);
            let (data, wire_len) = if vlan {
                // The kernel took the 802.1Q tag out of the frame; put it back as libpcap does.
                let tpid = if status & TP_STATUS_VLAN_TPID_VALID != 0 {
                    rd_u16(h, 36).unwrap_or(0x8100)
                } else {
                    0x8100
                };
                scratch.clear();
                scratch.extend_from_slice(frame.get(..12).unwrap_or_default());
                scratch.extend_from_slice(&tpid.to_be_bytes());
                scratch.extend_from_slice(&(tci as u16).to_be_bytes());
                scratch.extend_from_slice(frame.get(12..).unwrap_or_default());
                (&scratch[..], len.saturating_add(4))
            } else {
                (frame, len)
            };
            let data = data.get(..snaplen.min(data.len())).unwrap_or(data);
            f(&RawPacket {
                ts,
                linktype,
                interface: iface,
                data,
                wire_len,
            });
            done += 1;
        }
        if next == 0 {
            if i + 1 < num {
                *malformed += 1;
            }
            break;
        }
        off = off.saturating_add(next as usize);
    }
    done
}

/// A worker's watermark after a poll: with its ring empty, anything still to
/// come was stamped at most [`WATERMARK_LAG_NS`] ago; otherwise what follows
/// in the ring is no older than its last packet, give or take CPU skew.
pub fn watermark(last_ts: u64, ring_empty: bool) -> u64 {
    let seen = last_ts.saturating_sub(SKEW_NS);
    if !ring_empty {
        return seen;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    seen.max(now.saturating_sub(WATERMARK_LAG_NS))
}

/// Orders the observations of one interface's workers by packet time.
/// Each push carries the worker's watermark: it will deliver nothing older.
/// Items older than every worker's watermark are released in time order
/// (ties: worker, then push order). With one worker everything passes at once.
pub struct Sequencer<T> {
    marks: Vec<u64>,
    heap: BinaryHeap<Pending<T>>,
    order: u64,
    /// Most items held; beyond, the oldest are released early.
    pub limit: usize,
}

struct Pending<T> {
    key: (u64, usize, u64),
    item: T,
}

impl<T> PartialEq for Pending<T> {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl<T> Eq for Pending<T> {}
impl<T> PartialOrd for Pending<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Pending<T> {
    // Reversed: BinaryHeap is a max-heap, we pop the oldest.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.key.cmp(&self.key)
    }
}

impl<T> Sequencer<T> {
    pub fn new(workers: usize) -> Self {
        Sequencer {
            marks: vec![0; workers.max(1)],
            heap: BinaryHeap::new(),
            order: 0,
            limit: 1 << 18,
        }
    }

    /// Worker `w` delivers `items` (with their packet times) and promises
    /// nothing older than `mark` from now on (u64::MAX: it is done).
    /// Returns what can go to the merger now, oldest first.
    pub fn push(
        &mut self,
        w: usize,
        items: impl IntoIterator<Item = T>,
        ts: impl Fn(&T) -> u64,
        mark: u64,
    ) -> Vec<T> {
        let single = self.marks.len() == 1;
        if let Some(m) = self.marks.get_mut(w) {
            *m = (*m).max(mark);
        }
        if single {
            let mut v: Vec<T> = self.heap.drain().map(|p| p.item).collect();
            v.extend(items);
            return v;
        }
        for item in items {
            self.order += 1;
            self.heap.push(Pending {
                key: (ts(&item), w, self.order),
                item,
            });
        }
        let low = self.marks.iter().copied().min().unwrap_or(0);
        let mut out = Vec::new();
        while let Some(p) = self.heap.peek() {
            if p.key.0 < low || low == u64::MAX || self.heap.len() > self.limit {
                if let Some(p) = self.heap.pop() {
                    out.push(p.item);
                }
            } else {
                break;
            }
        }
        out
    }

    pub fn held(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn block(pkts: &[(u32, &[u8])], next_zero_early: bool) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        let n = pkts.len() as u32;
        b[BD_NUM_PKTS..BD_NUM_PKTS + 4].copy_from_slice(&n.to_ne_bytes());
        b[BD_FIRST..BD_FIRST + 4].copy_from_slice(&48u32.to_ne_bytes());
        let mut off = 48usize;
        for (i, (sec, data)) in pkts.iter().enumerate() {
            let mac = 80u16;
            let size = (usize::from(mac) + data.len() + 15) & !15;
            let last = i + 1 == pkts.len() || next_zero_early;
            let next = if last { 0 } else { size as u32 };
            b[off..off + 4].copy_from_slice(&next.to_ne_bytes());
            b[off + 4..off + 8].copy_from_slice(&sec.to_ne_bytes());
            b[off + 8..off + 12].copy_from_slice(&1_234_567u32.to_ne_bytes());
            b[off + 12..off + 16].copy_from_slice(&(data.len() as u32).to_ne_bytes());
            b[off + 16..off + 20].copy_from_slice(&(data.len() as u32 + 10).to_ne_bytes());
            b[off + 24..off + 26].copy_from_slice(&mac.to_ne_bytes());
            b[off + usize::from(mac)..off + usize::from(mac) + data.len()].copy_from_slice(data);
            off += size;
        }
        b
    }

    fn walk(b: &[u8], snaplen: usize) -> (Vec<(u64, Vec<u8>, u32)>, u64) {
        let mut out = Vec::new();
        let mut bad = 0;
        let mut scratch = Vec::new();
        walk_block(
            b,
            1,
            false,
            snaplen,
            0,
            &mut scratch,
            &mut bad,
            &mut |_| {},
            &mut |p| out.push((p.ts, p.data.to_vec(), p.wire_len)),
        );
        (out, bad)
    }

    #[test]
    fn walks_packets_and_truncates() {
        let b = block(&[(1, &[1; 60]), (2, &[2; 100])], false);
        let (p, bad) = walk(&b, 64);
        assert_eq!(bad, 0);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].0, 1_001_234_000);
        assert_eq!(p[0].1, vec![1; 60]);
        assert_eq!(p[1].1, vec![2; 64]);
        assert_eq!(p[1].2, 110);
    }

    #[test]
    fn hostile_headers_never_panic() {
        let good = block(&[(1, &[1; 60]), (2, &[2; 100]), (3, &[3; 40])], false);
        // Every single-byte corruption of the descriptor and headers, and every truncation.
        for at in 0..400 {
            for v in [0u8, 0x7f, 0xff] {
                let mut b = good.clone();
                b[at] = v;
                let _ = walk(&b, 65535);
            }
        }
        for cut in 0..good.len() {
            let _ = walk(&good[..cut], 65535);
        }
        // A length running past the block is refused, not read.
        let mut b = good.clone();
        b[48 + 12..48 + 16].copy_from_slice(&u32::MAX.to_ne_bytes());
        let (p, bad) = walk(&b, 65535);
        assert!(p.is_empty() && bad == 1);
        // A packet count larger than the chain: counted malformed.
        let b = block(&[(1, &[1; 60]), (2, &[2; 60])], true);
        let (p, bad) = walk(&b, 65535);
        assert_eq!((p.len(), bad), (1, 1));
    }

    #[test]
    fn vlan_tag_is_put_back() {
        let mut b = block(&[(1, &[9; 60])], false);
        b[48 + 20..48 + 24].copy_from_slice(&TP_STATUS_VLAN_VALID.to_ne_bytes());
        b[48 + 32..48 + 36].copy_from_slice(&42u32.to_ne_bytes());
        let (p, _) = walk(&b, 65535);
        assert_eq!(p[0].1.len(), 64);
        assert_eq!(&p[0].1[12..16], &[0x81, 0x00, 0, 42]);
        assert_eq!(p[0].2, 74);
    }

    #[test]
    fn sequencer_orders_by_time_under_watermarks() {
        let mut s = Sequencer::new(2);
        let id = |x: &u64| *x;
        assert!(s.push(0, [10, 30], id, 31).is_empty());
        assert_eq!(s.push(1, [20], id, 25), vec![10, 20]);
        assert_eq!(s.push(1, [40], id, 50), vec![30]);
        assert_eq!(s.push(0, [], id, u64::MAX), vec![40]);
        assert_eq!(s.push(1, [60], id, 55), Vec::<u64>::new());
        assert_eq!(s.push(1, [], id, u64::MAX), vec![60]);
        let mut one = Sequencer::new(1);
        assert_eq!(one.push(0, [5, 3], id, 0), vec![5, 3]);
        let mut capped = Sequencer::new(2);
        capped.limit = 1;
        assert_eq!(capped.push(0, [7, 8], id, 0), vec![7]);
        assert_eq!(capped.held(), 1);
    }

    #[test]
    fn ring_geometry_from_flags() {
        let r = Ring::from_flags(32, 65535, 2, None, None, None).unwrap();
        assert_eq!((r.block_size, r.blocks), (1 << 20, 16));
        // Small buffers: smaller blocks, still one full-size packet each.
        let r = Ring::from_flags(2, 65535, 1, None, None, None).unwrap();
        assert_eq!((r.block_size, r.blocks), (128 << 10, 16));
        let r = Ring::from_flags(2, 65535, 2, None, None, None).unwrap();
        assert_eq!((r.block_size, r.blocks), (128 << 10, 8));
        let r = Ring::from_flags(2, 1500, 2, None, None, None).unwrap();
        assert_eq!((r.block_size, r.blocks), (64 << 10, 16));
        assert!(Ring::from_flags(32, 65535, 1, Some(3000), None, None).is_err());
        assert!(Ring::from_flags(32, 65535, 1, None, Some(100), None).is_err());
        assert_eq!(
            Ring::from_flags(1, 65535, 8, None, None, None)
                .unwrap()
                .blocks,
            2
        );
        assert!(Ring::from_flags(32, 65535, 1, None, None, Some(1)).is_err());
    }

    #[test]
    fn filter_compiles_and_cuts_to_snaplen() {
        let f = compile_filter(Some("udp port 53"), 1, 200).unwrap();
        assert!(f.len() > 2);
        assert!(f.iter().any(|i| i.code == 0x06 && i.k == 200));
        assert!(f.iter().all(|i| i.code != 0x06 || i.k <= 200));
        assert!(compile_filter(Some("not a filter (("), 1, 200).is_err());
        assert_eq!(compile_filter(None, 1, 96).unwrap()[0].k, 96);
    }
}
