//! The sending rules: which account tries first, when a failure moves a message on to the next
//! account (the practice's own, then each of the platform's in order), and the suppression ledger
//! checked before any account is called.

use std::{ops::ControlFlow, sync::Arc};

use super::{
    Channel, OutgoingMessage, ProviderError, ProviderKind,
    circuit::CircuitKey,
    factory::{FactoryError, MessagingServiceFactory, Sender},
    suppression::{self, Scope, SuppressionReason, SuppressionSource},
};

/// What happened to one attempt to deliver a message.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The account that sent or failed; `None` when suppressed before any account was called.
    pub provider: Option<ProviderKind>,
    pub fell_back: bool,
    pub fallback_reason: Option<String>,
    pub result: DeliveryResult,
}

#[derive(Debug, Clone)]
pub enum DeliveryResult {
    Sent {
        provider_message_id: Option<String>,
    },
    Suppressed {
        reason: String,
    },
    Failed {
        error: ProviderError,
        retryable: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error(transparent)]
    Factory(#[from] FactoryError),
    #[error("could not check the suppression ledger: {0}")]
    Database(#[from] sqlx::Error),
}

/// The reasons a message moved on from each account it left, in order.
#[derive(Debug, Default)]
struct Hops(Vec<String>);

impl Hops {
    fn add(&mut self, channel: Channel, cause: FallbackCause, reason: String) {
        metrics::counter!("messaging_fallbacks_total", "channel" => channel.as_str(), "reason" => cause.label())
            .increment(1);
        self.0.push(reason);
    }

    fn reason(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.join("; then "))
    }
}

/// What one account's attempt means for the rest of the chain.
enum Next {
    /// Sent, suppressed, or refused for the recipient's sake: no other account may try.
    Done { succeeded: bool },
    /// The account failed, but the message stays with it: the queue retries it (rate limited
    /// with retries left) or the practice allows no fallback.
    Stop,
    /// The account failed: the next one tries.
    Move(FallbackCause, ProviderError),
}

impl Next {
    fn after(delivery: &Delivery, final_attempt: bool, no_fallback: bool) -> Self {
        let DeliveryResult::Failed { error, .. } = &delivery.result else {
            return Self::Done {
                succeeded: matches!(delivery.result, DeliveryResult::Sent { .. }),
            };
        };
        if !error.is_account_failure() {
            return Self::Done { succeeded: false };
        }
        let rate_limited = matches!(error, ProviderError::RateLimited { .. });
        if no_fallback || (rate_limited && !final_attempt) {
            return Self::Stop;
        }
        let cause = if rate_limited {
            FallbackCause::RateLimited
        } else {
            FallbackCause::AccountOrProviderFailure
        };
        Self::Move(cause, error.clone())
    }
}

/// Why a message left an account for the next one; a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FallbackCause {
    CircuitOpen,
    RateLimited,
    AccountOrProviderFailure,
}

impl FallbackCause {
    fn label(self) -> &'static str {
        match self {
            Self::CircuitOpen => "circuit_open",
            Self::RateLimited => "rate_limited",
            Self::AccountOrProviderFailure => "account_or_provider_failure",
        }
    }
}

impl MessagingServiceFactory {
    /// Delivers through the practice's own account when usable, then through each of the
    /// platform's accounts in their configured order. Only a failure of the account or its
    /// provider moves the message on (a refused recipient would be refused everywhere, or an
    /// opt-out broken), from the custom account only when the practice allows it; every hop's
    /// reason goes into `fallback_reason`. An account whose circuit is open is passed over,
    /// except the last one, which always gets its try. A rate-limited account is retried (by the
    /// queue) before the message moves on: `final_attempt` says whether this is the last chance.
    #[tracing::instrument(skip_all, fields(practice_id = %message.practice_id, channel = message.channel.as_str()))]
    pub async fn deliver(
        &self,
        message: &OutgoingMessage,
        final_attempt: bool,
    ) -> Result<Delivery, DeliveryError> {
        let route = self.route(message.practice_id, message.channel).await?;
        let practice_id = message.practice_id;
        let mut hops = Hops::default();
        if let Some(custom) = &route.custom {
            let label = custom.kind().vendor().display_name();
            let circuit = CircuitKey::Practice(practice_id, message.channel);
            if route.fallback_enabled && self.circuits.should_skip(circuit) {
                hops.add(
                    message.channel,
                    FallbackCause::CircuitOpen,
                    format!("custom {label} is failing repeatedly (circuit open)"),
                );
            } else {
                tracing::info!("Using custom {label} for practice {practice_id}");
                let delivery = self.attempt(custom, message, None).await?;
                let (cause, error) = match self.conclude(
                    circuit,
                    delivery,
                    final_attempt,
                    !route.fallback_enabled,
                ) {
                    ControlFlow::Continue(failure) => failure,
                    ControlFlow::Break(delivery) => return Ok(delivery),
                };
                hops.add(
                    message.channel,
                    cause,
                    format!("custom {label} failed: {error}"),
                );
            }
        } else if let Some(blocker) = route.custom_blocker {
            tracing::info!(
                reason = blocker,
                "Using the system accounts for practice {practice_id}"
            );
        }

        let (last, before_last) = route
            .system
            .split_last()
            .expect("a route always has a system account");
        for sender in before_last {
            let label = sender.kind().vendor().display_name();
            let circuit = CircuitKey::System(sender.kind().vendor());
            if self.circuits.should_skip(circuit) {
                hops.add(
                    message.channel,
                    FallbackCause::CircuitOpen,
                    format!("system {label} is failing repeatedly (circuit open)"),
                );
                continue;
            }
            let delivery = self.attempt_system(sender, message, &hops).await?;
            let (cause, error) = match self.conclude(circuit, delivery, final_attempt, false) {
                ControlFlow::Continue(failure) => failure,
                ControlFlow::Break(delivery) => return Ok(delivery),
            };
            hops.add(
                message.channel,
                cause,
                format!("system {label} failed: {error}"),
            );
        }
        let delivery = self.attempt_system(last, message, &hops).await?;
        if last.account_key().is_some() {
            let circuit = CircuitKey::System(last.kind().vendor());
            match &delivery.result {
                DeliveryResult::Sent { .. } => self.circuits.record_success(circuit),
                DeliveryResult::Failed { error, .. } if error.is_account_failure() => {
                    self.circuits.record_failure(circuit)
                }
                _ => {}
            }
        }
        Ok(delivery)
    }

    /// Records an attempt's outcome on the account's circuit; `Break` with the delivery ends the
    /// chain there, `Continue` with why it failed moves the message to the next account.
    fn conclude(
        &self,
        circuit: CircuitKey,
        delivery: Delivery,
        final_attempt: bool,
        no_fallback: bool,
    ) -> ControlFlow<Delivery, (FallbackCause, ProviderError)> {
        match Next::after(&delivery, final_attempt, no_fallback) {
            Next::Done { succeeded } => {
                if succeeded {
                    self.circuits.record_success(circuit);
                }
                ControlFlow::Break(delivery)
            }
            Next::Stop => {
                self.circuits.record_failure(circuit);
                ControlFlow::Break(delivery)
            }
            Next::Move(cause, error) => {
                self.circuits.record_failure(circuit);
                ControlFlow::Continue((cause, error))
            }
        }
    }

    async fn attempt_system(
        &self,
        sender: &Arc<Sender>,
        message: &OutgoingMessage,
        hops: &Hops,
    ) -> Result<Delivery, DeliveryError> {
        let reason = hops.reason();
        if let Some(reason) = &reason {
            let label = sender.kind().vendor().display_name();
            tracing::warn!(reason = %reason, "Falling back to system {label} for practice {}", message.practice_id);
        }
        self.attempt(sender, message, reason).await
    }

    /// Delivers through `sender` alone, with no other account to move on to: a test send through
    /// an account that must prove itself.
    pub async fn deliver_through(
        &self,
        sender: &Arc<Sender>,
        message: &OutgoingMessage,
    ) -> Result<Delivery, DeliveryError> {
        self.attempt(sender, message, None).await
    }

    /// One account, one try: the ledger first, then the provider.
    async fn attempt(
        &self,
        sender: &Arc<Sender>,
        message: &OutgoingMessage,
        fallback_reason: Option<String>,
    ) -> Result<Delivery, DeliveryError> {
        let kind = sender.kind();
        let fell_back = fallback_reason.is_some();
        let via_system = !kind.is_custom();
        if let Some(reason) = suppression::check(
            self.pool(),
            message.practice_id,
            message.channel,
            &message.to,
            via_system,
        )
        .await?
        {
            record(message.channel, None, "suppressed");
            return Ok(Delivery {
                provider: None,
                fell_back,
                fallback_reason,
                result: DeliveryResult::Suppressed { reason },
            });
        }
        let result = match sender.send(message).await {
            Ok(accepted) => {
                record(message.channel, Some(kind), "sent");
                DeliveryResult::Sent {
                    provider_message_id: accepted.provider_message_id,
                }
            }
            Err(error) => {
                if let ProviderError::RecipientRejected {
                    opted_out: true, ..
                } = error
                {
                    let scope = if via_system {
                        Scope::SystemSender
                    } else {
                        Scope::Practice(message.practice_id)
                    };
                    suppression::add(
                        self.pool(),
                        scope,
                        message.channel,
                        &message.to,
                        SuppressionReason::OptedOut,
                        SuppressionSource::ProviderRefusal,
                    )
                    .await?;
                }
                record(
                    message.channel,
                    Some(kind),
                    if error.is_transient() {
                        "transient_failure"
                    } else {
                        "failed"
                    },
                );
                DeliveryResult::Failed {
                    retryable: error.is_transient(),
                    error,
                }
            }
        };
        Ok(Delivery {
            provider: Some(kind),
            fell_back,
            fallback_reason,
            result,
        })
    }
}

fn record(channel: Channel, provider: Option<ProviderKind>, outcome: &'static str) {
    let provider = provider.map_or("none", ProviderKind::as_str);
    metrics::counter!("messages_total", "provider" => provider, "channel" => channel.as_str(), "outcome" => outcome).increment(1);
}
