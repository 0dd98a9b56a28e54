//! `--filter` for files: compiles a tcpdump expression with libpcap (a dead
//! handle per link type, compiled lazily) and runs it on each packet read by
//! `file.rs`, so users get exactly tcpdump's semantics.

use crate::error::{Error, Result};
use std::collections::HashMap;

/// Compiled filter, one program per link type seen.
pub struct Filter {
    expr: String,
    programs: HashMap<u32, Option<pcap::BpfProgram>>,
}

impl Filter {
    /// Check that the expression compiles (for Ethernet) before any file is read.
    pub fn new(expr: &str) -> Result<Self> {
        let mut f = Filter {
            expr: expr.to_string(),
            programs: HashMap::new(),
        };
        f.compile(1)
            .map_err(|e| Error::Usage(format!("--filter {expr:?}: {e}")))?;
        Ok(f)
    }

    fn compile(&mut self, linktype: u32) -> std::result::Result<(), String> {
        if self.programs.contains_key(&linktype) {
            return Ok(());
        }
        let cap =
            pcap::Capture::dead(pcap::Linktype(linktype as i32)).map_err(|e| e.to_string())?;
        match cap.compile(&self.expr, true) {
            Ok(p) => {
                self.programs.insert(linktype, Some(p));
                Ok(())
            }
            Err(e) => {
                // Some expressions make no sense on some link types: match nothing there.
                self.programs.insert(linktype, None);
                Err(e.to_string())
            }
        }
    }

    /// Does the packet pass?
    pub fn matches(&mut self, linktype: u32, data: &[u8]) -> bool {
        if !self.programs.contains_key(&linktype) {
            let _ = self.compile(linktype);
        }
        match self.programs.get(&linktype) {
            Some(Some(p)) => p.filter(data),
            _ => false,
        }
    }
}
