//! Command-line interface (clap derive): `read`, `live`, `check-signatures`,
//! `man`, `completions` and the flags they share. Parsed here, validated into settings by `run.rs`.

use crate::export::report::Format;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "kaswatch", version, about = "Find devices that still phone home to Kaspersky endpoints", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read pcap/pcapng files (plain or .gz, or directories of them) and report hosts that contacted Kaspersky endpoints
    Read(ReadArgs),
    /// Capture live from interfaces (libpcap) and serve Prometheus metrics over HTTP
    Live(LiveArgs),
    /// Validate signature files and print counts per category
    CheckSignatures(CheckArgs),
    /// Print the man page (roff) on stdout, or write one per command into --dir
    Man(ManArgs),
    /// Print a shell completion script on stdout
    Completions(CompletionsArgs),
}

/// Flags shared by `read` and `live`.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Signature file or directory (repeatable; default: ./signatures, $KASWATCH_SIGNATURES or the installed set)
    #[arg(short = 's', long = "signatures", value_name = "PATH")]
    pub signatures: Vec<PathBuf>,
    /// Write one JSON object per match (JSON Lines) to PATH, or - for stdout
    #[arg(long, value_name = "PATH|-")]
    pub events: Option<PathBuf>,
    /// Most hosts kept. At a full table a new host enters at its second
    /// callback, evicting the least recently seen (both counted)
    #[arg(long, value_name = "N", default_value_t = crate::hosts::DEFAULT_MAX_HOSTS)]
    pub max_hosts: usize,
    /// Forget hosts with no callback for this long (packet time), e.g. 7d, 12h, 30m
    #[arg(long, value_name = "DURATION")]
    pub host_idle: Option<String>,
    /// Managed devices: CSV of `address[,name]` (IP, CIDR or MAC) -> managed="true" and inventory_name
    #[arg(long, value_name = "FILE")]
    pub inventory: Option<PathBuf>,
    /// Evidence that makes a host a device: comma-separated name, content, address (default: name,content; address-only hosts are listed apart)
    #[arg(long, value_name = "LIST")]
    pub evidence: Option<String>,
    /// One host per device: `mac` groups the addresses bound to one MAC on the local segment (DHCP lease, DHCPv6 DUID, EUI-64); `ip`: one host per address
    #[arg(long, value_enum, default_value_t = GroupBy::Mac)]
    pub group_by: GroupBy,
    /// Count resolvers (hosts that answer DNS for others; their Kaspersky lookups are their clients') as devices
    #[arg(long)]
    pub count_resolvers: bool,
    /// Worker threads (default: half the cores, at least 1); output is identical for any N
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// How hosts are keyed (`--group-by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    Ip,
    Mac,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files or directories (or - for standard input), processed in order into one host table
    #[arg(required = true, value_name = "CAPTURE")]
    pub inputs: Vec<PathBuf>,
    #[command(flatten)]
    pub common: Common,
    /// Report format on stdout
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only packets matching this tcpdump/BPF expression
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,
    /// Log every extracted name, matched or not, as TSV (file, frame, src, kind, name, transport/port)
    #[arg(long, value_name = "PATH|-")]
    pub all_names: Option<PathBuf>,
    /// No summary line and no progress on stderr
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the final state as metrics to FILE (OpenMetrics for *.om, else Prometheus text)
    #[arg(long, value_name = "FILE")]
    pub metrics_out: Option<PathBuf>,
    /// Write per-host and aggregate series every --step of packet time, with timestamps, as OpenMetrics for `promtool tsdb create-blocks-from openmetrics`
    #[arg(long, value_name = "FILE")]
    pub backfill: Option<PathBuf>,
    /// Sampling interval of --backfill (packet time), e.g. 15s, 1m
    #[arg(long, value_name = "DURATION", default_value = "1m")]
    pub step: String,
    /// After reading, serve the final state on ADDR:PORT (status page at /, /api/hosts, /metrics, /healthz) until interrupted
    #[arg(long, value_name = "ADDR:PORT")]
    pub serve: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug)]
pub struct LiveArgs {
    /// Interface to capture on (repeatable; one capture thread each; --workers is ignored)
    #[arg(short = 'i', long = "interface", required = true, value_name = "IFACE")]
    pub interfaces: Vec<String>,
    #[command(flatten)]
    pub common: Common,
    /// Kernel capture filter (tcpdump/BPF expression)
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Bytes captured per packet
    #[arg(long, value_name = "N", default_value_t = 65535)]
    pub snaplen: u32,
    /// Kernel capture buffer per interface, MiB
    #[arg(long = "buffer-size", value_name = "MiB", default_value_t = 32)]
    pub buffer_size: u32,
    /// Address of the HTTP server (status page at /, /api/hosts, /metrics, /healthz)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:10470")]
    pub listen: std::net::SocketAddr,
    /// After opening the captures and the listener, switch to this user (and its group)
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// TLS and basic auth for the HTTP server, in the Prometheus exporter-toolkit web-config format (YAML)
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<PathBuf>,
    /// Capture backend: libpcap, or AF_PACKET TPACKET_V3 rings with fanout (Linux)
    #[arg(long, value_enum, default_value_t = CaptureBackend::Pcap)]
    pub capture: CaptureBackend,
    /// With --capture afpacket: sockets (and worker threads) per interface in one PACKET_FANOUT_HASH group, e.g. one per core
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub fanout: usize,
    /// With --capture afpacket: ring block size, bytes (power of two, at least a page; default: a sixteenth of the socket's buffer, 1 MiB at most, one --snaplen packet at least)
    #[arg(long, value_name = "BYTES")]
    pub ring_block_size: Option<u32>,
    /// With --capture afpacket: ring frame size, bytes (multiple of 16; default 2048)
    #[arg(long, value_name = "BYTES")]
    pub ring_frame_size: Option<u32>,
    /// With --capture afpacket: ring blocks per socket (default: --buffer-size shared by the --fanout sockets)
    #[arg(long, value_name = "N")]
    pub ring_blocks: Option<u32>,
}

/// `live --capture`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CaptureBackend {
    Pcap,
    Afpacket,
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Signature files or directories
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Show which signature matches NAME (repeatable)
    #[arg(long = "test", value_name = "NAME")]
    pub test: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write kaswatch.1 and kaswatch-<command>.1 into this directory instead
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// Shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `kaswatch man`: the man pages, from the same definitions as `--help`.
pub fn cmd_man(a: &ManArgs) -> crate::error::Result<i32> {
    use crate::error::Error;
    use clap::CommandFactory;
    let cmd = Cli::command();
    let render = |c: clap::Command| -> Vec<u8> {
        let mut out = Vec::new();
        // Rendering into memory cannot fail.
        let _ = clap_mangen::Man::new(c).render(&mut out);
        out
    };
    let Some(dir) = &a.dir else {
        use std::io::Write;
        let _ = std::io::stdout().write_all(&render(cmd));
        return Ok(0);
    };
    let write = |name: String, page: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, page).map_err(|e| Error::input(&p, crate::error::io_reason(&e)))
    };
    for sub in cmd.get_subcommands() {
        let name = format!("kaswatch-{}", sub.get_name());
        let sub = sub
            .clone()
            .name(name.clone().leak() as &'static str)
            .version(env!("CARGO_PKG_VERSION"));
        write(format!("{name}.1"), render(sub))?;
    }
    write("kaswatch.1".into(), render(cmd))?;
    Ok(0)
}

/// `kaswatch completions SHELL`.
pub fn cmd_completions(a: &CompletionsArgs) -> crate::error::Result<i32> {
    use clap::CommandFactory;
    use std::io::Write;
    // Into memory first: generate() panics on a write error (a closed pipe).
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut Cli::command(), "kaswatch", &mut out);
    let _ = std::io::stdout().write_all(&out);
    Ok(0)
}
