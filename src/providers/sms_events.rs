//! What every SMS vendor's webhooks share once verified: the log a delivery report is about, the
//! append-once of an event, and what an inbound message does (keywords, consent, replies kept).

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::webhooks::{
    Tenant,
    events::{self, NewEvent},
};
use crate::{
    compliance::inbound,
    messaging::{
        Channel, ProviderKind,
        suppression::{self, Suppression, SuppressionReason, SuppressionSource},
    },
    providers::Vendor,
};

/// The SMS log a delivery report is about, among the route's practice's logs.
#[derive(Debug, sqlx::FromRow)]
pub struct SmsLog {
    pub id: Uuid,
    pub practice_id: Uuid,
    pub messaging_provider: Option<String>,
}

impl SmsLog {
    /// The log our send stored `message_id` on; on a practice's route only that practice's.
    pub async fn find(
        db: &mut PgConnection,
        message_id: &str,
        tenant: Tenant,
    ) -> Result<Option<Self>, sqlx::Error> {
        sqlx::query_as(
            "select id, practice_id, messaging_provider from outreach_logs
             where message_type = 'sms' and provider_message_id = $1
               and ($2::uuid is null or practice_id = $2)
             limit 1",
        )
        .bind(message_id)
        .bind(tenant.practice_id())
        .fetch_optional(db)
        .await
    }
}

/// Appends one event; whether it was new.
pub async fn append_once(
    db: &mut PgConnection,
    vendor: Vendor,
    tenant: Tenant,
    event: NewEvent,
) -> Result<bool, sqlx::Error> {
    Ok(!events::append(db, vendor.as_str(), tenant, &[event])
        .await?
        .is_empty())
}

/// `number` opted out of messages from the route's sender.
pub fn opt_out(tenant: Tenant, number: &str, source: SuppressionSource) -> Suppression {
    Suppression {
        scope: tenant.scope(),
        channel: Channel::Sms,
        address: number.to_string(),
        reason: SuppressionReason::OptedOut,
        unsubscribe_group: None,
        source,
    }
}

/// What an inbound message asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
    Other,
}

impl Keyword {
    /// The vendor's own opt-out classification (Twilio's `OptOutType`, sent when Advanced
    /// Opt-Out is on) wins; otherwise the whole trimmed body must be one of the carriers' default
    /// keywords, in any case ("stop please" is a message, which the opt-out phrases then read).
    pub fn classify(body: &str, opt_out_type: Option<&str>) -> Self {
        let word = opt_out_type.unwrap_or(body).trim().to_uppercase();
        match word.as_str() {
            "STOP" | "STOPALL" | "UNSUBSCRIBE" | "CANCEL" | "END" | "QUIT" | "REVOKE"
            | "OPTOUT" => Self::OptOut,
            "START" | "YES" | "UNSTOP" => Self::OptIn,
            "HELP" | "INFO" => Self::Help,
            _ => Self::Other,
        }
    }

    pub fn event_type(self) -> &'static str {
        match self {
            Self::OptOut => "inbound_opt_out",
            Self::OptIn => "inbound_opt_in",
            Self::Help => "inbound_help",
            Self::Other => "inbound",
        }
    }
}

/// An inbound message, verified and read.
#[derive(Debug)]
pub struct InboundSms<'a> {
    /// The account it reached.
    pub provider: ProviderKind,
    pub message_id: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub body: &'a str,
    /// The vendor's own opt-out classification, when it sends one.
    pub opt_out_type: Option<&'a str>,
    pub event: NewEvent,
}

impl InboundSms<'_> {
    pub fn keyword(&self) -> Keyword {
        Keyword::classify(self.body, self.opt_out_type)
    }
}

/// Records an inbound message and acts on its keyword, in one transaction: STOP adds the sender
/// to the route's ledger (the shared one on the system route) and stops their sequences, START
/// removes it, the consent ledger hears both, and a message that is no keyword is kept for the
/// practices it belongs to. A redelivered STOP must not undo a START that came after it, so only
/// a message stored for the first time acts; returns whether it was.
pub async fn receive_inbound(
    pool: &PgPool,
    tenant: Tenant,
    message: InboundSms<'_>,
) -> Result<bool, sqlx::Error> {
    let keyword = message.keyword();
    let vendor = message.provider.vendor();
    let mut tx = pool.begin().await?;
    let stored = append_once(&mut tx, vendor, tenant, message.event.clone()).await?;
    if stored {
        let intent = crate::compliance::consent::on_inbound_sms(
            &mut tx,
            tenant.scope(),
            message.from,
            message.opt_out_type.unwrap_or(message.body),
        )
        .await?;
        if keyword == Keyword::Other {
            inbound::record(
                &mut tx,
                &inbound::Received {
                    scope: tenant.scope(),
                    provider: message.provider.as_str(),
                    provider_message_id: message.message_id,
                    from: message.from,
                    to: message.to,
                    body: message.body,
                    opt_out_matched: intent == crate::compliance::optout::Intent::OptOutPhrase,
                },
            )
            .await?;
        }
        tracing::info!(route = ?tenant, ?keyword, "Processing {} inbound message", vendor.display_name());
        let opt_out_source = match (keyword, intent) {
            (Keyword::OptOut, _) => Some(SuppressionSource::SmsKeyword),
            (_, crate::compliance::optout::Intent::OptOutPhrase) => {
                Some(SuppressionSource::SmsReply)
            }
            _ => None,
        };
        if let Some(source) = opt_out_source {
            crate::outreach::opt_outs::suppress(&mut tx, &[opt_out(tenant, message.from, source)])
                .await?;
        }
        match keyword {
            Keyword::OptOut => {}
            Keyword::OptIn => {
                suppression::remove(&mut *tx, tenant.scope(), Channel::Sms, message.from).await?;
            }
            Keyword::Help | Keyword::Other => {}
        }
    }
    tx.commit().await?;
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_keyword_in_any_case_counts() {
        for (body, expected) in [
            ("STOP", Keyword::OptOut),
            ("  stopall \n", Keyword::OptOut),
            ("Unsubscribe", Keyword::OptOut),
            ("optout", Keyword::OptOut),
            ("start", Keyword::OptIn),
            ("UNSTOP", Keyword::OptIn),
            ("Yes", Keyword::OptIn),
            ("info", Keyword::Help),
            ("stop please", Keyword::Other),
            ("STOP ALL", Keyword::Other),
            ("", Keyword::Other),
        ] {
            assert_eq!(Keyword::classify(body, None), expected, "{body:?}");
        }
    }

    #[test]
    fn a_vendors_opt_out_type_wins_over_the_body() {
        assert_eq!(Keyword::classify("arrête", Some("STOP")), Keyword::OptOut);
        assert_eq!(Keyword::classify("STOP", Some("START")), Keyword::OptIn);
        assert_eq!(Keyword::classify("aide", Some("HELP")), Keyword::Help);
    }
}
