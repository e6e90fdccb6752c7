//! A health circuit per account: each practice's own account per channel, and each of the
//! platform's vendors. After repeated account failures the account is skipped (a custom one when
//! the practice allows fallback, a system one while another system vendor remains to try) until a
//! probe after the cool-down (`PROVIDER_CIRCUIT_COOL_DOWN_SECS`, 60 s by default), or a successful
//! send, shows it works again. Kept per instance: each instance learns an account's health from
//! its own sends within a few messages.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::Channel;
use super::provider::Vendor;

const FAILURES_TO_OPEN: u32 = 3;
/// The cool-down when none is configured; `PROVIDER_CIRCUIT_COOL_DOWN_SECS` has the same default.
pub const DEFAULT_COOL_DOWN: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Sending normally.
    Healthy,
    /// Recent failures, not yet enough to stop using the account.
    Degraded,
    /// The account is skipped until the cool-down ends.
    Open,
}

/// Whose health a circuit follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CircuitKey {
    /// A practice's own account of a channel.
    Practice(Uuid, Channel),
    /// The platform's account of a vendor, shared by every practice.
    System(Vendor),
}

impl CircuitKey {
    fn channel(self) -> &'static str {
        match self {
            Self::Practice(_, channel) => channel.as_str(),
            Self::System(vendor) => vendor.channel().map_or("none", Channel::as_str),
        }
    }
}

#[derive(Default)]
struct State {
    consecutive_failures: u32,
    opened_at: Option<Instant>,
}

pub struct CircuitBreakers {
    states: Mutex<HashMap<CircuitKey, State>>,
    /// How long an open circuit skips the account before one send probes it.
    cool_down: Duration,
}

impl Default for CircuitBreakers {
    fn default() -> Self {
        Self::new(DEFAULT_COOL_DOWN)
    }
}

impl CircuitBreakers {
    pub fn new(cool_down: Duration) -> Self {
        Self {
            states: Mutex::default(),
            cool_down,
        }
    }

    /// Whether the custom account should be skipped now. After the cool-down one send is let
    /// through as a probe (half-open); its result closes or re-opens the circuit.
    pub fn should_skip(&self, key: CircuitKey) -> bool {
        let mut states = self.states.lock().expect("circuit lock is never poisoned");
        match states.get_mut(&key) {
            Some(State {
                opened_at: Some(opened),
                ..
            }) if opened.elapsed() < self.cool_down => true,
            Some(
                state @ State {
                    opened_at: Some(_), ..
                },
            ) => {
                // Half-open: restart the cool-down so only this send probes.
                state.opened_at = Some(Instant::now());
                false
            }
            _ => false,
        }
    }

    pub fn record_success(&self, key: CircuitKey) {
        let mut states = self.states.lock().expect("circuit lock is never poisoned");
        if states.remove(&key).is_some_and(|s| s.opened_at.is_some()) {
            metrics::counter!("messaging_circuit_transitions_total", "channel" => key.channel(), "to" => "closed").increment(1);
        }
    }

    pub fn record_failure(&self, key: CircuitKey) {
        let mut states = self.states.lock().expect("circuit lock is never poisoned");
        let state = states.entry(key).or_default();
        state.consecutive_failures += 1;
        if state.consecutive_failures >= FAILURES_TO_OPEN && state.opened_at.is_none() {
            state.opened_at = Some(Instant::now());
            metrics::counter!("messaging_circuit_transitions_total", "channel" => key.channel(), "to" => "open").increment(1);
            tracing::warn!(?key, "account circuit opened after repeated failures");
        }
    }

    pub fn health(&self, key: CircuitKey) -> Health {
        let states = self.states.lock().expect("circuit lock is never poisoned");
        match states.get(&key) {
            None => Health::Healthy,
            Some(State {
                opened_at: Some(_), ..
            }) => Health::Open,
            Some(_) => Health::Degraded,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_failures_open_the_circuit_and_a_success_closes_it() {
        let circuits = CircuitBreakers::default();
        let practice = Uuid::new_v4();
        let email = CircuitKey::Practice(practice, Channel::Email);
        for _ in 0..2 {
            circuits.record_failure(email);
        }
        assert_eq!(circuits.health(email), Health::Degraded);
        assert!(!circuits.should_skip(email));
        circuits.record_failure(email);
        assert_eq!(circuits.health(email), Health::Open);
        assert!(circuits.should_skip(email));
        assert!(
            !circuits.should_skip(CircuitKey::Practice(practice, Channel::Sms)),
            "channels are separate"
        );
        circuits.record_success(email);
        assert_eq!(circuits.health(email), Health::Healthy);
        assert!(!circuits.should_skip(email));
    }

    #[test]
    fn after_the_configured_cool_down_one_send_probes_and_a_failed_probe_keeps_the_circuit_open() {
        let circuits = CircuitBreakers::new(Duration::from_millis(50));
        let practice = Uuid::new_v4();
        let email = CircuitKey::Practice(practice, Channel::Email);
        for _ in 0..3 {
            circuits.record_failure(email);
        }
        assert!(circuits.should_skip(email));
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            !circuits.should_skip(email),
            "the first send after the cool-down probes"
        );
        assert!(
            circuits.should_skip(email),
            "sends during the probe are still skipped"
        );
        circuits.record_failure(email);
        assert_eq!(circuits.health(email), Health::Open);
        std::thread::sleep(Duration::from_millis(60));
        assert!(!circuits.should_skip(email));
        circuits.record_success(email);
        assert_eq!(circuits.health(email), Health::Healthy);
    }
}
