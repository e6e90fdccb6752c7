//! The sending rules: which account tries first, when a failure may fall back to the system
//! account, and the suppression ledger checked before any account is called.

use std::sync::Arc;

use super::{
    Channel, OutgoingMessage, ProviderError, ProviderKind,
    factory::{FactoryError, MessagingServiceFactory, Route, Sender},
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

/// Why a message left the practice's own account for the system one; a bounded metric label.
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
    /// Delivers through the practice's custom account when usable, else the system account,
    /// falling back from custom to system only for failures of the account or provider, and
    /// only when the practice allows it. A rate-limited custom account is retried (by the queue)
    /// before falling back: `final_attempt` says whether this is the last chance.
    #[tracing::instrument(skip_all, fields(practice_id = %message.practice_id, channel = message.channel.as_str()))]
    pub async fn deliver(
        &self,
        message: &OutgoingMessage,
        final_attempt: bool,
    ) -> Result<Delivery, DeliveryError> {
        let route = self.route(message.practice_id, message.channel).await?;
        let practice_id = message.practice_id;
        let Some(custom) = &route.custom else {
            if let Some(blocker) = route.custom_blocker {
                tracing::info!(
                    reason = blocker,
                    "Using system {} for practice {practice_id}",
                    route.system.kind().vendor().display_name()
                );
            }
            return self.attempt(&route.system, message, None).await;
        };

        if route.fallback_enabled && self.circuits.should_skip(practice_id, message.channel) {
            return self
                .fall_back(
                    &route,
                    message,
                    FallbackCause::CircuitOpen,
                    "custom account is failing repeatedly (circuit open)".into(),
                )
                .await;
        }
        let label = custom.kind().vendor().display_name();
        tracing::info!("Using custom {label} for practice {practice_id}");
        let delivery = self.attempt(custom, message, None).await?;
        let DeliveryResult::Failed { error, .. } = &delivery.result else {
            if matches!(delivery.result, DeliveryResult::Sent { .. }) {
                self.circuits.record_success(practice_id, message.channel);
            }
            return Ok(delivery);
        };
        if !error.is_account_failure() {
            // The recipient was refused: the system account would repeat it, or break an opt-out.
            return Ok(delivery);
        }
        self.circuits.record_failure(practice_id, message.channel);
        let rate_limited_with_retries_left =
            matches!(error, ProviderError::RateLimited { .. }) && !final_attempt;
        if !route.fallback_enabled || rate_limited_with_retries_left {
            return Ok(delivery);
        }
        let cause = if matches!(error, ProviderError::RateLimited { .. }) {
            FallbackCause::RateLimited
        } else {
            FallbackCause::AccountOrProviderFailure
        };
        let reason = format!("custom {label} failed: {error}");
        self.fall_back(&route, message, cause, reason).await
    }

    async fn fall_back(
        &self,
        route: &Route,
        message: &OutgoingMessage,
        cause: FallbackCause,
        reason: String,
    ) -> Result<Delivery, DeliveryError> {
        let label = route.system.kind().vendor().display_name();
        tracing::warn!(reason = %reason, "Falling back to system {label} for practice {}", route.practice_id);
        metrics::counter!("messaging_fallbacks_total", "channel" => message.channel.as_str(), "reason" => cause.label())
            .increment(1);
        self.attempt(&route.system, message, Some(reason)).await
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
