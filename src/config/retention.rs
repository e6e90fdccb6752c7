//! How long the history is kept (`RETENTION_*`), which the retention job keeps to.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub body_days: u32,
    pub log_days: u32,
    pub event_days: u32,
    pub outbox_days: u32,
    pub idempotency_hours: u32,
    pub interval: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            body_days: 90,
            log_days: 2190,
            event_days: 400,
            outbox_days: 30,
            idempotency_hours: 168,
            interval: Duration::from_secs(3600),
        }
    }
}
