//! Outputs: the end-of-run host report (`report`), JSON-lines events and the
//! `--all-names` log (`jsonlog`). They read state owned by the pipeline's
//! merger and never feed back into it.

pub mod jsonlog;
pub mod report;
