//! Command-line interface (clap derive): `read`, `check-signatures` and the
//! flags they share. Parsed here, validated into settings by `run.rs`.

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
    /// Validate signature files and print counts per category
    CheckSignatures(CheckArgs),
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
    /// Most hosts kept; the least recently seen is evicted (and counted)
    #[arg(long, value_name = "N", default_value_t = crate::hosts::DEFAULT_MAX_HOSTS)]
    pub max_hosts: usize,
    /// Forget hosts with no callback for this long (packet time), e.g. 7d, 12h, 30m
    #[arg(long, value_name = "DURATION")]
    pub host_idle: Option<String>,
    /// Worker threads (default: half the cores, at least 1); output is identical for any N
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

#[derive(Args, Debug)]
pub struct ReadArgs {
    /// Capture files or directories, processed in order into one host table
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
    /// No summary line on stderr
    #[arg(short, long)]
    pub quiet: bool,
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
