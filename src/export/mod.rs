//! Outputs: the end-of-run host report (`report`), JSON-lines events and the
//! `--all-names` log (`jsonlog`), Prometheus/OpenMetrics exposition and
//! backfill (`metrics`), the live HTTP endpoint (`http`), its TLS/auth
//! settings (`webconfig`) and its status page (`status`). They read state
//! owned by the pipeline's merger and never feed back into it.

pub mod http;
pub mod jsonlog;
pub mod metrics;
pub mod report;
pub mod status;
pub mod webconfig;
