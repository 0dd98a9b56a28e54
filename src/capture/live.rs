//! Live capture with libpcap (the `pcap` crate): opens an interface
//! promiscuous, non-blocking and *not* in immediate mode (libpcap 1.10 then
//! keeps a TPACKET_V3 ring; immediate mode forces TPACKET_V2 with 64 KiB
//! slots, ~500 packets in 32 MiB), with a configurable
//! snaplen, kernel buffer and BPF filter, and turns libpcap's failures into
//! one clear line (unknown interface, missing CAP_NET_RAW). `live.rs` runs
//! one capture thread per interface over [`LiveCapture`] and feeds the same
//! pipeline as `read`.

use super::RawPacket;
use crate::error::{Error, Result};
use std::os::unix::io::AsRawFd;

/// Options shared by all interfaces.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub snaplen: u32,
    pub buffer_mib: u32,
    pub bpf: Option<String>,
}

/// Most MiB of kernel buffer per interface (`--buffer-size`).
pub const MAX_BUFFER_MIB: u32 = 4096;
/// Longest wait for packets before the thread checks for shutdown.
const POLL_MS: i32 = 100;

/// One open capture.
pub struct LiveCapture {
    cap: pcap::Capture<pcap::Active>,
    pub linktype: u32,
}

/// Capture-side drop statistics (pcap_stats).
#[derive(Clone, Copy, Debug, Default)]
pub struct Drops {
    pub kernel: u64,
    pub interface: u64,
}

fn is_permission(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("permission") || m.contains("not permitted")
}

/// Open `name`; errors are one line naming the interface.
pub fn open(name: &str, o: &LiveOptions) -> Result<LiveCapture> {
    let known = pcap::Device::list().map(|l| l.iter().any(|d| d.name == name));
    if let Ok(false) = known {
        return Err(Error::input(name, "no such interface"));
    }
    let fail = |e: pcap::Error| {
        let msg = e.to_string();
        if is_permission(&msg) {
            Error::input(name, "no permission to capture: the CAP_NET_RAW capability is missing (run as root or grant cap_net_raw)")
        } else if msg.contains("No such device") {
            Error::input(name, "no such interface")
        } else {
            Error::input(name, format!("cannot capture: {msg}"))
        }
    };
    let buffer = i32::try_from(o.buffer_mib.min(MAX_BUFFER_MIB) << 20).unwrap_or(i32::MAX);
    let cap = pcap::Capture::from_device(name)
        .map_err(fail)?
        .promisc(true)
        // Not immediate mode: with it libpcap 1.10 falls back to a TPACKET_V2
        // ring of fixed snaplen-sized slots (64 KiB each on interfaces with
        // segmentation offload), so a 32 MiB buffer holds ~500 packets and
        // drops under load. The V3 ring stores packets at their real size;
        // the cost is up to POLL_MS of latency, nothing for a scraped sensor.
        .immediate_mode(false)
        .timeout(POLL_MS)
        .snaplen(i32::try_from(o.snaplen).unwrap_or(i32::MAX))
        .buffer_size(buffer)
        .open()
        .map_err(fail)?;
    let mut cap = cap.setnonblock().map_err(fail)?;
    if let Some(expr) = &o.bpf {
        cap.filter(expr, true)
            .map_err(|e| Error::Usage(format!("--bpf {expr:?}: {e}")))?;
    }
    let linktype = cap.get_datalink().0 as u32;
    Ok(LiveCapture { cap, linktype })
}

impl LiveCapture {
    /// Wait up to the poll interval for packets, then hand over at most
    /// `max` of them. Returns the number handed over, or the capture error
    /// (e.g. the interface went down).
    pub fn poll(
        &mut self,
        max: usize,
        iface: u32,
        mut f: impl FnMut(&RawPacket<'_>),
    ) -> std::result::Result<usize, String> {
        let mut pfd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, count 1, bounded timeout.
        let ready = unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
        if ready > 0 && pfd.revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0 {
            // The kernel flags ENETDOWN on the socket when the interface goes down.
            let mut err: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: SO_ERROR into a c_int of the given length.
            let r = unsafe {
                libc::getsockopt(
                    pfd.fd,
                    libc::SOL_SOCKET,
                    libc::SO_ERROR,
                    (&mut err as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            if r == 0 && err != 0 {
                return Err(std::io::Error::from_raw_os_error(err).to_string());
            }
            if pfd.revents & libc::POLLNVAL != 0 {
                return Err("capture handle closed".into());
            }
        }
        let mut n = 0;
        while n < max {
            match self.cap.next_packet() {
                Ok(p) => {
                    let h = p.header;
                    let ts = (h.ts.tv_sec.max(0) as u64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add((h.ts.tv_usec.max(0) as u64) * 1000);
                    f(&RawPacket {
                        ts,
                        linktype: self.linktype,
                        interface: iface,
                        data: p.data,
                        wire_len: h.len,
                    });
                    n += 1;
                }
                Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(n)
    }

    /// Drops so far (since this capture was opened).
    pub fn drops(&mut self) -> Drops {
        match self.cap.stats() {
            Ok(s) => Drops {
                kernel: u64::from(s.dropped),
                interface: u64::from(s.if_dropped),
            },
            Err(_) => Drops::default(),
        }
    }
}
