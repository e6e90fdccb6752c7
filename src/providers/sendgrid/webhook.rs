//! SendGrid Event Webhook: a JSON array of events signed with ECDSA P-256 over the timestamp
//! header and the raw body.
//!
//! A batch is verified once over its raw bytes, then written in one transaction of a handful of
//! statements whatever its size: find the logs, append the events, advance the statuses, update
//! the ledgers. Events name their log through our custom args (`outreach_log_id`, `practice_id`,
//! flattened by SendGrid into every event), else through `sg_message_id` up to its first dot,
//! which is the `X-Message-Id` our send stored. An event that names a practice other than the
//! route's is kept but changes nothing: a practice signs with a key it chose itself, so its route
//! must not reach another practice's messages.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, value::RawValue};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::providers::email_events::{EmailLog, Logs, NamesMessage, Target};

use crate::webhooks::{
    Context, Receipt, Route, Tenant, WebhookError,
    events::{self, NewEvent},
};
use crate::{
    messaging::{
        Channel,
        settings::PracticeMessagingConfig,
        suppression::{
            self, GroupResubscribe, Scope, Suppression, SuppressionReason, SuppressionSource,
        },
    },
    outreach::status::{self, OutreachStatus, StatusChange},
    providers::sendgrid::signature::SendGridVerifier,
};

/// A request as received: the two signature headers (empty when absent) and the untouched body.
#[derive(Debug, Clone, Copy)]
pub struct SignedBatch<'a> {
    pub timestamp: &'a str,
    pub signature: &'a str,
    pub body: &'a [u8],
}

/// Verifies the batch with the route's key and ingests it.
#[tracing::instrument(skip_all)]
pub async fn receive(
    ctx: Context<'_>,
    route: Route<'_>,
    batch: SignedBatch<'_>,
) -> Result<Receipt, WebhookError> {
    crate::webhooks::counted(
        "sendgrid",
        verify_and_ingest(ctx, route, batch),
        |receipt| *receipt,
    )
    .await
}

async fn verify_and_ingest(
    ctx: Context<'_>,
    route: Route<'_>,
    batch: SignedBatch<'_>,
) -> Result<Receipt, WebhookError> {
    let tenant = route.tenant()?;
    let key = verify_key(ctx, tenant).await?;
    authenticate(
        &key,
        batch,
        ctx.settings.sendgrid_webhook_max_age,
        Utc::now(),
    )?;
    let events = parse(batch.body)?;
    let mut tx = ctx.pool.begin().await?;
    let receipt = ingest(&mut tx, tenant, events).await?;
    tx.commit().await?;
    Ok(receipt)
}

async fn verify_key(ctx: Context<'_>, tenant: Tenant) -> Result<String, WebhookError> {
    let key = match tenant {
        Tenant::System => ctx.settings.sendgrid_webhook_verify_key.clone(),
        Tenant::Practice(id) => {
            let config = PracticeMessagingConfig::load(ctx.pool, id)
                .await?
                .ok_or_else(|| WebhookError::unauthenticated("no such practice"))?;
            super::SendGridAccount::of(&config).webhook_verify_key
        }
    };
    key.ok_or_else(|| {
        WebhookError::unauthenticated(
            "no SendGrid webhook verification key is configured for this route",
        )
    })
}

/// The signature over the timestamp header and the raw body, then the timestamp's age: a
/// captured request replayed after `max_age` is refused (within it, event keys dedupe it).
fn authenticate(
    key: &str,
    batch: SignedBatch<'_>,
    max_age: Option<Duration>,
    now: DateTime<Utc>,
) -> Result<(), WebhookError> {
    let verifier = SendGridVerifier::from_base64_der(key).map_err(|e| {
        WebhookError::unauthenticated(format!("the configured verification key is unusable: {e}"))
    })?;
    verifier
        .verify(batch.timestamp, batch.body, batch.signature)
        .map_err(|e| WebhookError::unauthenticated(e.to_string()))?;
    if let Some(max_age) = max_age {
        let signed_at: i64 = batch
            .timestamp
            .parse()
            .map_err(|_| WebhookError::unauthenticated("the timestamp is out of range"))?;
        if now.timestamp().abs_diff(signed_at) > max_age.as_secs() {
            return Err(WebhookError::unauthenticated(
                "the timestamp is outside SENDGRID_WEBHOOK_MAX_AGE_SECS",
            ));
        }
    }
    Ok(())
}

/// What one event says that we act on, read once.
#[derive(Debug)]
struct Event {
    key: String,
    kind: String,
    email: Option<String>,
    log_id: Option<Uuid>,
    practice_id: Option<Uuid>,
    message_id: Option<String>,
    reason: Option<String>,
    bounce_type: BounceType,
    asm_group_id: Option<i64>,
    occurred_at: Option<DateTime<Utc>>,
    payload: Map<String, Value>,
}

/// A `bounce` event's `type`: SendGrid reports a permanent refusal as `bounce` and a temporary
/// one (the receiving server blocked this message, e.g. for reputation or content) as `blocked`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BounceType {
    Hard,
    Blocked,
    /// Absent or unknown: too unsure to put the address on the ledger for good.
    Unspecified,
}

impl BounceType {
    fn parse(value: Option<&str>) -> Self {
        match value.map(str::trim) {
            Some(t) if t.eq_ignore_ascii_case("bounce") => Self::Hard,
            Some(t) if t.eq_ignore_ascii_case("blocked") => Self::Blocked,
            _ => Self::Unspecified,
        }
    }

    /// The stored reason's prefix, which analytics and the ledger read to tell the kinds apart.
    fn label(self) -> &'static str {
        match self {
            Self::Hard => "hard bounce",
            Self::Blocked => "blocked (temporary)",
            Self::Unspecified => "bounce",
        }
    }
}

fn parse(body: &[u8]) -> Result<Vec<Event>, WebhookError> {
    let malformed = |e: serde_json::Error| {
        WebhookError::Malformed(format!("expected a JSON array of event objects: {e}"))
    };
    let raw: Vec<&RawValue> = serde_json::from_slice(body).map_err(malformed)?;
    raw.into_iter()
        .map(|raw| {
            let mut payload = serde_json::from_str(raw.get()).map_err(malformed)?;
            crate::webhooks::replace_nul_in_object(&mut payload);
            Ok(Event::read(raw, payload))
        })
        .collect()
}

impl Event {
    fn read(raw: &RawValue, payload: Map<String, Value>) -> Self {
        let text = |name: &str| payload.get(name).and_then(Value::as_str).map(str::to_owned);
        let id = |name: &str| {
            payload
                .get(name)
                .and_then(Value::as_str)
                .and_then(|v| v.parse().ok())
        };
        let key = match payload.get("sg_event_id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => format!("sendgrid:{id}"),
            // A redelivery repeats the event byte for byte, so its hash is as stable a key.
            _ => format!(
                "sendgrid:sha256:{}",
                hex::encode(Sha256::digest(raw.get().as_bytes()))
            ),
        };
        Self {
            key,
            kind: text("event").unwrap_or_else(|| "unknown".into()),
            email: text("email"),
            log_id: id("outreach_log_id"),
            practice_id: id("practice_id"),
            message_id: payload
                .get("sg_message_id")
                .and_then(Value::as_str)
                .and_then(|id| id.split('.').next())
                .filter(|id| !id.is_empty())
                .map(str::to_owned),
            reason: text("reason"),
            bounce_type: BounceType::parse(payload.get("type").and_then(Value::as_str)),
            asm_group_id: payload.get("asm_group_id").and_then(|group| {
                group
                    .as_i64()
                    .or_else(|| group.as_str().and_then(|g| g.trim().parse().ok()))
            }),
            occurred_at: payload
                .get("timestamp")
                .and_then(Value::as_i64)
                .and_then(|secs| DateTime::from_timestamp(secs, 0)),
            payload,
        }
    }

    /// The status this event reports for its log, with SendGrid's reason for a bounce or drop;
    /// a bounce's reason says first whether it was hard or a temporary block.
    fn status_change(&self, log: &EmailLog) -> Option<StatusChange> {
        let status = reported_status(&self.kind)?;
        let error = match status {
            OutreachStatus::Bounced => Some(match &self.reason {
                Some(reason) => format!("{}: {reason}", self.bounce_type.label()),
                None => self.bounce_type.label().to_string(),
            }),
            OutreachStatus::Dropped => self.reason.clone(),
            _ => None,
        };
        Some(StatusChange {
            log_id: log.id,
            status,
            error,
        })
    }

    /// The ledger entry this event makes in `practice`'s ledger: for a hard bounce (not a
    /// temporary block), a spam report, an unsubscribe, and a drop because SendGrid's own list
    /// holds the address as bounced, invalid, unsubscribed or spam-reporting (another account's
    /// send would otherwise still reach the person).
    fn suppression(&self, practice: Uuid) -> Option<Suppression> {
        let dropped_because = self
            .reason
            .as_deref()
            .map(|r| r.trim().to_ascii_lowercase());
        let mut unsubscribe_group = None;
        let reason = match (self.kind.as_str(), dropped_because.as_deref()) {
            ("bounce", _) if self.bounce_type == BounceType::Hard => SuppressionReason::Bounced,
            ("dropped", Some("bounced address")) => SuppressionReason::Bounced,
            ("dropped", Some("invalid" | "invalid address")) => SuppressionReason::Invalid,
            ("dropped", Some("unsubscribed address")) => SuppressionReason::Unsubscribed,
            ("dropped", Some("spam reporting address")) => SuppressionReason::SpamReported,
            ("spamreport", _) => SuppressionReason::SpamReported,
            ("unsubscribe", _) => SuppressionReason::Unsubscribed,
            ("group_unsubscribe", _) => {
                unsubscribe_group = self.asm_group_id;
                SuppressionReason::Unsubscribed
            }
            _ => return None,
        };
        Some(Suppression {
            scope: Scope::Practice(practice),
            channel: Channel::Email,
            address: self.email.clone()?,
            reason,
            unsubscribe_group,
            source: SuppressionSource::ProviderEvent,
        })
    }

    /// A `group_resubscribe` puts the address back in its group: what that group's unsubscribe
    /// added to `practice`'s ledger is lifted.
    fn resubscribe(&self, practice: Uuid) -> Option<GroupResubscribe> {
        (self.kind == "group_resubscribe").then_some(())?;
        Some(GroupResubscribe {
            practice_id: practice,
            address: self.email.clone()?,
            group: self.asm_group_id?,
        })
    }

    /// The ledger entry a group event is about, so the latest of a batch's events for it wins.
    fn group_key(&self, practice: Uuid) -> Option<GroupEntry> {
        matches!(
            self.kind.as_str(),
            "group_unsubscribe" | "group_resubscribe"
        )
        .then_some(())?;
        Some((
            practice,
            suppression::normalize(Channel::Email, self.email.as_deref()?),
            self.asm_group_id?,
        ))
    }
}

/// A group unsubscribe's ledger entry: practice, normalised address and SendGrid group id.
type GroupEntry = (Uuid, String, i64);

impl NamesMessage for Event {
    fn log_id(&self) -> Option<Uuid> {
        self.log_id
    }

    fn practice_id(&self) -> Option<Uuid> {
        self.practice_id
    }

    fn message_id(&self) -> Option<&str> {
        self.message_id.as_deref()
    }
}

async fn ingest(
    db: &mut PgConnection,
    tenant: Tenant,
    mut events: Vec<Event>,
) -> Result<Receipt, WebhookError> {
    let logs = Logs::find(db, &events).await?;
    let targets: Vec<Target<'_>> = events
        .iter()
        .map(|event| logs.target(event, tenant))
        .collect();
    let records: Vec<NewEvent> = events
        .iter_mut()
        .zip(&targets)
        .map(|(event, target)| NewEvent {
            key: event.key.clone(),
            practice_id: target
                .log()
                .map(|log| log.practice_id)
                .or(tenant.practice_id()),
            outreach_log_id: target.log().map(|log| log.id),
            event_type: event.kind.clone(),
            provider_message_id: event.message_id.clone(),
            payload: Value::Object(std::mem::take(&mut event.payload)),
            occurred_at: event.occurred_at,
        })
        .collect();
    let mut new_keys = events::append(db, "sendgrid", tenant, &records).await?;

    let (mut changes, mut suppressions, mut stored) = (Vec::new(), Vec::new(), 0);
    // Per group entry, the latest unsubscribe or resubscribe of the batch (by its timestamp).
    let mut group_events: HashMap<GroupEntry, &Event> = HashMap::new();
    for (event, target) in events.iter().zip(&targets) {
        // `remove`: a key repeated within the batch acts once, like a key repeated across batches.
        if !new_keys.remove(&event.key) {
            continue;
        }
        stored += 1;
        let (kind, key) = (&event.kind, &event.key);
        let practice = match target {
            Target::Log(log) => {
                let provider = log.messaging_provider.as_deref().unwrap_or("unknown");
                let practice = log.practice_id;
                tracing::info!(
                    "Processing SendGrid {kind} for practice {practice} (provider: {provider})"
                );
                changes.extend(event.status_change(log));
                Some(practice)
            }
            Target::Unknown => {
                tracing::info!(event = %key, "SendGrid {kind} for an unknown message; kept");
                tenant.practice_id()
            }
            Target::Foreign => {
                tracing::warn!(event = %key, ?tenant, "SendGrid {kind} of another practice; ignored");
                None
            }
        };
        let Some(practice) = practice else {
            continue;
        };
        match event.group_key(practice) {
            Some(key) => {
                let latest = group_events.entry(key).or_insert(event);
                if event.occurred_at >= latest.occurred_at {
                    *latest = event;
                }
            }
            None => suppressions.extend(event.suppression(practice)),
        }
    }
    let mut resubscribes = Vec::new();
    for ((practice, ..), event) in group_events {
        suppressions.extend(event.suppression(practice));
        resubscribes.extend(event.resubscribe(practice));
    }
    status::advance(db, &changes).await?;
    crate::outreach::opt_outs::suppress(db, &suppressions).await?;
    suppression::lift_group_unsubscribes(&mut *db, &resubscribes).await?;
    Ok(Receipt {
        received: events.len(),
        stored,
    })
}

/// The status a SendGrid event type reports. `deferred` (still retrying), unsubscribes
/// (a ledger matter, not a delivery state) and unknown types change nothing.
fn reported_status(event: &str) -> Option<OutreachStatus> {
    match event {
        "processed" => Some(OutreachStatus::Sent),
        "delivered" => Some(OutreachStatus::Delivered),
        "open" => Some(OutreachStatus::Opened),
        "click" => Some(OutreachStatus::Clicked),
        "bounce" => Some(OutreachStatus::Bounced),
        "dropped" => Some(OutreachStatus::Dropped),
        "spamreport" => Some(OutreachStatus::SpamReported),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    use p256::{
        ecdsa::{Signature, SigningKey, signature::Signer},
        elliptic_curve::Generate,
        pkcs8::EncodePublicKey,
    };

    use super::*;

    fn read(event: &str) -> Event {
        parse(format!("[{event}]").as_bytes()).unwrap().remove(0)
    }

    #[test]
    fn events_read_their_key_custom_args_and_message_id_prefix() {
        let (log, practice) = (Uuid::new_v4(), Uuid::new_v4());
        let event = read(&format!(
            r#"{{"event":"delivered","sg_event_id":"ZGVsaXZlcmVk","timestamp":1600112492,
                "sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-9.0",
                "outreach_log_id":"{log}","practice_id":"{practice}"}}"#
        ));
        assert_eq!(event.key, "sendgrid:ZGVsaXZlcmVk");
        assert_eq!(
            (event.log_id, event.practice_id),
            (Some(log), Some(practice))
        );
        assert_eq!(event.message_id.as_deref(), Some("LRzXl_NHStOGhQ4kofSm_A"));
        assert_eq!(event.occurred_at.unwrap().timestamp(), 1600112492);

        let without_id = read(r#"{"event":"deferred","email":"a@b.co"}"#);
        assert!(without_id.key.starts_with("sendgrid:sha256:"));
        assert_eq!(
            read(r#"{"event":"deferred","email":"a@b.co"}"#).key,
            without_id.key
        );
        assert_ne!(
            read(r#"{"event":"deferred","email":"c@b.co"}"#).key,
            without_id.key
        );
        assert_eq!((without_id.log_id, without_id.message_id), (None, None));
    }

    #[test]
    fn only_hard_bounces_bad_address_drops_spam_reports_and_unsubscribes_suppress() {
        let practice = Uuid::new_v4();
        let cases = [
            (
                r#""event":"bounce","type":"bounce""#,
                Some(SuppressionReason::Bounced),
            ),
            (r#""event":"bounce","type":"blocked""#, None),
            (
                r#""event":"dropped","reason":"Bounced Address""#,
                Some(SuppressionReason::Bounced),
            ),
            (
                r#""event":"dropped","reason":"Invalid""#,
                Some(SuppressionReason::Invalid),
            ),
            (
                r#""event":"dropped","reason":"Invalid SMTPAPI header""#,
                None,
            ),
            (
                r#""event":"spamreport""#,
                Some(SuppressionReason::SpamReported),
            ),
            (
                r#""event":"unsubscribe""#,
                Some(SuppressionReason::Unsubscribed),
            ),
            (
                r#""event":"group_unsubscribe""#,
                Some(SuppressionReason::Unsubscribed),
            ),
            (r#""event":"deferred""#, None),
        ];
        for (fields, reason) in cases {
            let event = read(&format!(r#"{{"email":"pat@example.com",{fields}}}"#));
            let entry = event.suppression(practice);
            assert_eq!(entry.as_ref().map(|e| e.reason), reason, "{fields}");
            if let Some(entry) = entry {
                assert_eq!(entry.scope, Scope::Practice(practice));
                assert_eq!(entry.address, "pat@example.com");
            }
        }
        assert_eq!(
            read(r#"{"event":"spamreport"}"#).suppression(practice),
            None,
            "no address"
        );
    }

    #[test]
    fn drops_for_addresses_sendgrid_holds_as_unsubscribed_or_spam_reporting_go_on_the_ledger() {
        let practice = Uuid::new_v4();
        for (reason, expected) in [
            ("Unsubscribed Address", SuppressionReason::Unsubscribed),
            ("Spam Reporting Address", SuppressionReason::SpamReported),
        ] {
            let event = read(&format!(
                r#"{{"email":"pat@example.com","event":"dropped","reason":"{reason}"}}"#
            ));
            let entry = event.suppression(practice).expect(reason);
            assert_eq!(
                (entry.reason, entry.unsubscribe_group),
                (expected, None),
                "{reason}"
            );
        }
    }

    #[test]
    fn a_bounce_stores_whether_it_was_hard_or_a_temporary_block() {
        let log = EmailLog {
            id: Uuid::new_v4(),
            practice_id: Uuid::new_v4(),
            messaging_provider: None,
            provider_message_id: None,
        };
        let error = |fields: &str| {
            read(&format!(r#"{{"event":"bounce",{fields}}}"#))
                .status_change(&log)
                .and_then(|change| change.error)
        };
        assert_eq!(
            error(r#""type":"bounce","reason":"550 5.1.1 no such user""#).as_deref(),
            Some("hard bounce: 550 5.1.1 no such user")
        );
        assert_eq!(
            error(r#""type":"blocked","reason":"554 policy rejection""#).as_deref(),
            Some("blocked (temporary): 554 policy rejection")
        );
        assert_eq!(
            error(r#""type":"blocked""#).as_deref(),
            Some("blocked (temporary)")
        );
        assert_eq!(error(r#""reason":"550""#).as_deref(), Some("bounce: 550"));
    }

    #[test]
    fn group_unsubscribes_remember_their_group_and_resubscribes_name_it() {
        let practice = Uuid::new_v4();
        let unsubscribe =
            read(r#"{"email":"Pat@Example.com","event":"group_unsubscribe","asm_group_id":42}"#);
        let entry = unsubscribe.suppression(practice).unwrap();
        assert_eq!(
            (entry.reason, entry.unsubscribe_group),
            (SuppressionReason::Unsubscribed, Some(42))
        );
        assert_eq!(unsubscribe.resubscribe(practice), None);

        let resubscribe =
            read(r#"{"email":"pat@example.com","event":"group_resubscribe","asm_group_id":"42"}"#);
        assert_eq!(resubscribe.suppression(practice), None);
        assert_eq!(
            resubscribe.resubscribe(practice),
            Some(GroupResubscribe {
                practice_id: practice,
                address: "pat@example.com".into(),
                group: 42
            })
        );
        assert_eq!(
            unsubscribe.group_key(practice),
            resubscribe.group_key(practice),
            "both are about the same entry"
        );
        assert_eq!(
            read(r#"{"email":"pat@example.com","event":"unsubscribe"}"#)
                .suppression(practice)
                .unwrap()
                .unsubscribe_group,
            None,
            "a global unsubscribe belongs to no group"
        );
    }

    #[test]
    fn an_event_is_foreign_when_it_or_its_log_names_a_practice_other_than_the_route() {
        let (ours, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        let row = |practice_id| EmailLog {
            id: Uuid::new_v4(),
            practice_id,
            messaging_provider: None,
            provider_message_id: Some(format!("msg-{practice_id}")),
        };
        let (our_log, their_log) = (row(ours), row(theirs));
        let (our_id, their_id) = (our_log.id, their_log.id);
        let logs = Logs {
            by_message_id: [
                (format!("msg-{ours}"), our_id),
                (format!("msg-{theirs}"), their_id),
            ]
            .into(),
            by_id: [(our_id, our_log), (their_id, their_log)].into(),
        };
        let event = |log: Option<Uuid>, practice: Option<Uuid>, message: Option<Uuid>| {
            let mut fields = vec![r#""event":"delivered""#.to_string()];
            fields.extend(log.map(|id| format!(r#""outreach_log_id":"{id}""#)));
            fields.extend(practice.map(|id| format!(r#""practice_id":"{id}""#)));
            fields.extend(message.map(|id| format!(r#""sg_message_id":"msg-{id}.filter""#)));
            read(&format!("{{{}}}", fields.join(",")))
        };
        let kind = |target: Target<'_>| match target {
            Target::Log(log) => format!("log {}", log.id),
            Target::Unknown => "unknown".into(),
            Target::Foreign => "foreign".into(),
        };
        let on_our_route = |e: &Event| kind(logs.target(e, Tenant::Practice(ours)));
        let on_system_route = |e: &Event| kind(logs.target(e, Tenant::System));

        let ours_by_args = event(Some(our_id), Some(ours), None);
        assert_eq!(on_our_route(&ours_by_args), format!("log {our_id}"));
        assert_eq!(
            on_our_route(&event(None, None, Some(ours))),
            format!("log {our_id}")
        );
        assert_eq!(
            on_our_route(&event(Some(their_id), Some(theirs), None)),
            "foreign"
        );
        assert_eq!(on_our_route(&event(None, None, Some(theirs))), "foreign");
        assert_eq!(
            on_our_route(&event(Some(their_id), Some(ours), None)),
            "foreign"
        );
        assert_eq!(on_our_route(&event(None, Some(theirs), None)), "foreign");
        assert_eq!(
            on_our_route(&event(Some(Uuid::new_v4()), Some(ours), None)),
            "unknown"
        );

        assert_eq!(
            on_system_route(&event(Some(their_id), Some(theirs), None)),
            format!("log {their_id}")
        );
        assert_eq!(
            on_system_route(&event(Some(their_id), Some(ours), None)),
            "foreign",
            "args disagree"
        );
    }

    #[test]
    fn a_timestamp_outside_the_window_either_way_is_refused_unless_the_check_is_off() {
        let key = SigningKey::generate();
        let public = STANDARD.encode(key.verifying_key().to_public_key_der().unwrap().as_bytes());
        let body = b"[]\r\n";
        let now = Utc::now();
        let check = |signed_at: DateTime<Utc>, max_age: Option<Duration>| {
            let timestamp = signed_at.timestamp().to_string();
            let signature: Signature = key.sign(&[timestamp.as_bytes(), body].concat());
            let signature = STANDARD.encode(signature.to_der().as_bytes());
            let batch = SignedBatch {
                timestamp: &timestamp,
                signature: &signature,
                body,
            };
            authenticate(&public, batch, max_age, now).is_ok()
        };
        let day = Some(Duration::from_secs(86_400));
        let hours = |h| chrono::Duration::hours(h);

        assert!(check(now - hours(23), day));
        assert!(!check(now - hours(25), day), "too old");
        assert!(!check(now + hours(25), day), "too far ahead");
        assert!(check(now - hours(24 * 365), None), "0 turns the check off");
    }

    #[test]
    fn sendgrid_events_map_to_statuses_and_the_rest_change_nothing() {
        let cases = [
            ("processed", Some(OutreachStatus::Sent)),
            ("delivered", Some(OutreachStatus::Delivered)),
            ("open", Some(OutreachStatus::Opened)),
            ("click", Some(OutreachStatus::Clicked)),
            ("bounce", Some(OutreachStatus::Bounced)),
            ("dropped", Some(OutreachStatus::Dropped)),
            ("spamreport", Some(OutreachStatus::SpamReported)),
            ("deferred", None),
            ("unsubscribe", None),
            ("group_unsubscribe", None),
            ("account_status_change", None),
        ];
        for (event, status) in cases {
            assert_eq!(reported_status(event), status, "{event}");
        }
    }
}
