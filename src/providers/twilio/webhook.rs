//! Twilio status callbacks and inbound SMS.
//!
//! Both are form posts signed with `X-Twilio-Signature` over the URL we handed Twilio, rebuilt
//! from `WEBHOOK_BASE_URL` (never from `Host`), and the posted parameters. The key is the auth
//! token of the account the route belongs to, or the webhook shared key when Twilio says it used
//! one. A valid signature is not enough: the posted `AccountSid` must be that account too.
//!
//! Inbound keywords follow Twilio's defaults (whole message, any case): Twilio itself answers
//! STOP, START and HELP on long codes, so we record them and reply with an empty `<Response/>`.
//! An account that turned Twilio's HELP answer off chooses our reply instead (per practice, and
//! for the system number by configuration): it names the sender and its contact.

use std::borrow::Cow;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sqlx::PgConnection;

use crate::providers::sms_events::{self as sms, InboundSms, Keyword, SmsLog, opt_out};

use crate::webhooks::{Context, Receipt, Route, Tenant, WebhookError, events::NewEvent};
use crate::{
    config::Settings,
    crypto::CredentialField,
    messaging::{ProviderKind, settings::PracticeMessagingConfig, suppression::SuppressionSource},
    outreach::status::{self, OutreachStatus, StatusChange},
    providers::{
        Vendor,
        twilio::signature::{TwilioAlgorithm, parse_signature_settings, verify_twilio},
    },
};

/// Twilio's error for a send to a number that replied STOP to the sender.
const OPTED_OUT_ERROR: &str = "21610";

/// A status callback's `MessageStatus` when the carrier confirmed only some of the message's parts.
const PARTIALLY_DELIVERED: &str = "partially_delivered";
const PARTIAL_DELIVERY: &str =
    "partially delivered: Twilio confirmed only some parts of the message reached the handset";

/// Who the system routes speak as in a HELP reply.
const SYSTEM_SENDER_NAME: &str = "Dentite";

/// A request as received.
#[derive(Debug, Clone, Copy)]
pub struct SignedForm<'a> {
    /// The request's path and query; the signed URL is `WEBHOOK_BASE_URL` followed by this.
    pub path_and_query: &'a str,
    /// `X-Twilio-Signature`, empty when absent.
    pub signature: &'a str,
    /// `X-Twilio-Webhooks-Signature-Settings`, present when Twilio signed with a shared key.
    pub signature_settings: Option<&'a str>,
    pub body: &'a [u8],
}

/// Applies a status callback to its outreach log.
pub async fn status_callback(
    ctx: Context<'_>,
    route: Route<'_>,
    request: SignedForm<'_>,
) -> Result<Receipt, WebhookError> {
    crate::webhooks::counted("twilio", apply_status(ctx, route, request), |receipt| {
        *receipt
    })
    .await
}

async fn apply_status(
    ctx: Context<'_>,
    route: Route<'_>,
    request: SignedForm<'_>,
) -> Result<Receipt, WebhookError> {
    let Verified { tenant, params, .. } = authenticate(ctx, route, request).await?;
    let sid = params.require("MessageSid")?;
    let reported = params.require("MessageStatus")?;
    let mut tx = ctx.pool.begin().await?;
    let log = SmsLog::find(&mut tx, sid, tenant).await?;
    let event = NewEvent {
        practice_id: log
            .as_ref()
            .map(|log| log.practice_id)
            .or(tenant.practice_id()),
        outreach_log_id: log.as_ref().map(|log| log.id),
        ..params.event(format!("twilio:{sid}:{reported}"), reported, sid)
    };
    let stored = sms::append_once(&mut tx, Vendor::Twilio, tenant, event).await?;
    if stored {
        match &log {
            Some(log) => apply_to_log(&mut tx, log, &params, reported).await?,
            None => tracing::info!(
                message_sid = sid,
                "Twilio {reported} for an unknown message; kept"
            ),
        }
        if params.get("ErrorCode") == Some(OPTED_OUT_ERROR)
            && let Some(to) = params.get("To")
        {
            crate::outreach::opt_outs::suppress(
                &mut tx,
                &[opt_out(tenant, to, SuppressionSource::ProviderRefusal)],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Receipt {
        received: 1,
        stored: usize::from(stored),
    })
}

async fn apply_to_log(
    db: &mut PgConnection,
    log: &SmsLog,
    params: &Params,
    reported: &str,
) -> Result<(), sqlx::Error> {
    let provider = log.messaging_provider.as_deref().unwrap_or("unknown");
    tracing::info!(
        "Processing Twilio {reported} for practice {} (provider: {provider})",
        log.practice_id
    );
    if let Some(price) = params
        .get("Price")
        .and_then(|price| status::ReportedPrice::parse(price, params.get("PriceUnit")))
    {
        status::record_price(db, log.id, &price).await?;
    }
    let Some(status) = reported_status(reported) else {
        return Ok(());
    };
    let twilio_error = params
        .get("ErrorCode")
        .map(|code| match params.get("ErrorMessage") {
            Some(message) => format!("Twilio error {code}: {message}"),
            None => format!("Twilio error {code}"),
        });
    let error = if reported == PARTIALLY_DELIVERED {
        // Delivered, but the log must say the patient may have read only part of it.
        Some(match twilio_error {
            Some(detail) => format!("{PARTIAL_DELIVERY} ({detail})"),
            None => PARTIAL_DELIVERY.to_string(),
        })
    } else {
        twilio_error
    };
    status::advance(
        db,
        &[StatusChange {
            log_id: log.id,
            status,
            error,
        }],
    )
    .await?;
    Ok(())
}

/// The TwiML answer to a webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `<Response/>`: Twilio sends nothing back.
    Empty,
    /// Answers HELP on behalf of the sender.
    Help(HelpReply),
}

/// Who a HELP reply speaks for, when the account chose to send one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpReply {
    pub sender: String,
    /// How to reach the sender: a phone number or an email address.
    pub contact: Option<String>,
}

impl HelpReply {
    /// What carriers expect a HELP answer to hold: who is texting, how to reach them, that
    /// rates may apply and how to stop.
    pub fn text(&self) -> String {
        let contact = self
            .contact
            .as_deref()
            .map(|contact| format!(" For help, contact {contact}."))
            .unwrap_or_default();
        format!(
            "{}: patient reminders and messages.{contact} Msg & data rates may apply. Reply STOP to opt out.",
            self.sender
        )
    }
}

impl Reply {
    pub fn twiml(&self) -> String {
        const DECLARATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        match self {
            Self::Empty => format!("{DECLARATION}<Response/>"),
            Self::Help(help) => format!(
                "{DECLARATION}<Response><Message>{}</Message></Response>",
                xml_escape(&help.text())
            ),
        }
    }
}

fn xml_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// Records an inbound message and acts on its keyword: STOP adds the sender to the route's
/// ledger (the shared one on the system route) and stops their sequences, START removes it.
pub async fn inbound(
    ctx: Context<'_>,
    route: Route<'_>,
    request: SignedForm<'_>,
) -> Result<Reply, WebhookError> {
    crate::webhooks::counted(
        "twilio",
        receive_message(ctx, route, request),
        |(_, receipt)| *receipt,
    )
    .await
    .map(|(reply, _)| reply)
}

async fn receive_message(
    ctx: Context<'_>,
    route: Route<'_>,
    request: SignedForm<'_>,
) -> Result<(Reply, Receipt), WebhookError> {
    let Verified {
        tenant,
        help_reply,
        params,
    } = authenticate(ctx, route, request).await?;
    let sid = params.require("MessageSid")?;
    let from = params.require("From")?;
    let opt_out_type = params.get("OptOutType").filter(|t| !t.is_empty());
    let body = params.get("Body").unwrap_or_default();
    let keyword = Keyword::classify(body, opt_out_type);
    let provider = match tenant {
        Tenant::System => ProviderKind::SystemTwilio,
        Tenant::Practice(_) => ProviderKind::CustomTwilio,
    };
    let message = InboundSms {
        provider,
        message_id: sid,
        from,
        to: params.get("To").unwrap_or_default(),
        body,
        opt_out_type,
        event: NewEvent {
            practice_id: tenant.practice_id(),
            ..params.event(format!("twilio-inbound:{sid}"), keyword.event_type(), sid)
        },
    };
    let stored = sms::receive_inbound(ctx.pool, tenant, message).await?;
    let reply = match (keyword, help_reply) {
        (Keyword::Help, Some(help)) => Reply::Help(help),
        _ => Reply::Empty,
    };
    Ok((
        reply,
        Receipt {
            received: 1,
            stored: usize::from(stored),
        },
    ))
}

/// Form parameters in the order received, repeats kept: all of them are signed.
#[derive(Debug)]
struct Params(Vec<(String, String)>);

impl Params {
    /// `application/x-www-form-urlencoded`, strictly: a value that is not UTF-8 once decoded is
    /// malformed, where a lenient parser would substitute characters and break the signature.
    fn parse(body: &[u8]) -> Result<Self, WebhookError> {
        body.split(|&b| b == b'&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (name, value) = match pair.iter().position(|&b| b == b'=') {
                    Some(eq) => (&pair[..eq], &pair[eq + 1..]),
                    None => (pair, &[][..]),
                };
                Ok((form_decode(name)?, form_decode(value)?))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn require(&self, name: &str) -> Result<&str, WebhookError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| WebhookError::Malformed(format!("the form has no {name}")))
    }

    /// The event these parameters make, tied to no practice or log yet.
    fn event(&self, key: String, event_type: &str, sid: &str) -> NewEvent {
        let payload = self
            .0
            .iter()
            .map(|(n, v)| (n.clone(), Value::String(v.clone())));
        NewEvent {
            key,
            practice_id: None,
            outreach_log_id: None,
            event_type: event_type.to_string(),
            provider_message_id: Some(sid.to_string()),
            payload: Value::Object(payload.collect()),
            occurred_at: None,
        }
    }
}

fn form_decode(raw: &[u8]) -> Result<String, WebhookError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .map(Cow::into_owned)
        .map_err(|_| {
            WebhookError::Malformed("the form body is not UTF-8 once percent-decoded".into())
        })
}

/// A request signed by the route's account.
struct Verified {
    tenant: Tenant,
    /// `None`: the account leaves HELP to Twilio.
    help_reply: Option<HelpReply>,
    params: Params,
}

/// The Twilio account a route belongs to.
struct Account {
    sid: String,
    auth_token: SecretString,
    help_reply: Option<HelpReply>,
}

async fn authenticate(
    ctx: Context<'_>,
    route: Route<'_>,
    request: SignedForm<'_>,
) -> Result<Verified, WebhookError> {
    let tenant = route.tenant()?;
    let params = Params::parse(request.body)?;
    let account = account(ctx, tenant).await?;
    // Built as the factory builds the StatusCallback URLs it hands Twilio.
    let url = ctx.urls.absolute(request.path_and_query);
    let (key, algorithm) = signing_key(ctx.settings, &account, request.signature_settings)?;
    verify_twilio(&url, &params.0, request.signature, key, algorithm)
        .map_err(|e| WebhookError::unauthenticated(format!("X-Twilio-Signature: {e}")))?;
    if params.get("AccountSid") != Some(account.sid.as_str()) {
        return Err(WebhookError::WrongAccount);
    }
    let mut params = params;
    for (name, value) in &mut params.0 {
        crate::webhooks::replace_nul(name);
        crate::webhooks::replace_nul(value);
    }
    Ok(Verified {
        tenant,
        help_reply: account.help_reply,
        params,
    })
}

async fn account(ctx: Context<'_>, tenant: Tenant) -> Result<Account, WebhookError> {
    match tenant {
        Tenant::System => {
            let system = ctx.settings.system_twilio.as_ref().ok_or_else(|| {
                WebhookError::unauthenticated("the system Twilio account is not configured")
            })?;
            Ok(Account {
                sid: system.account_sid.clone(),
                auth_token: system.auth_token.clone(),
                help_reply: system.help_reply_contact.as_ref().map(|contact| HelpReply {
                    sender: SYSTEM_SENDER_NAME.into(),
                    contact: Some(contact.clone()),
                }),
            })
        }
        Tenant::Practice(id) => {
            let config = PracticeMessagingConfig::load(ctx.pool, id)
                .await?
                .ok_or_else(|| WebhookError::unauthenticated("no such practice"))?;
            let decrypt =
                |field, envelope: Option<&str>| ctx.keyring.decrypt_if_present(envelope, id, field);
            let sid = decrypt(
                CredentialField::TwilioAccountSid,
                config.envelope(CredentialField::TwilioAccountSid),
            )?;
            let auth_token = decrypt(
                CredentialField::TwilioAuthToken,
                config.envelope(CredentialField::TwilioAuthToken),
            )?;
            let help_reply = if super::TwilioAccount::of(&config).help_reply_enabled {
                Some(HelpReply {
                    contact: crate::compliance::settings::help_contact(ctx.pool, id).await?,
                    sender: config.name,
                })
            } else {
                None
            };
            match (sid, auth_token) {
                (Some(sid), Some(auth_token)) => Ok(Account {
                    sid: sid.expose_secret().to_string(),
                    auth_token,
                    help_reply,
                }),
                _ => Err(WebhookError::unauthenticated(
                    "the practice has no Twilio credentials",
                )),
            }
        }
    }
}

/// The auth token with HMAC-SHA1, unless the settings header says Twilio signed with a webhook
/// shared key. A header we cannot read is refused rather than downgraded to the auth token.
fn signing_key<'a>(
    settings: &'a Settings,
    account: &'a Account,
    signature_settings: Option<&str>,
) -> Result<(&'a [u8], TwilioAlgorithm), WebhookError> {
    let Some(header) = signature_settings else {
        return Ok((
            account.auth_token.expose_secret().as_bytes(),
            TwilioAlgorithm::HmacSha1,
        ));
    };
    let (key_id, algorithm) = parse_signature_settings(header).ok_or_else(|| {
        WebhookError::unauthenticated("X-Twilio-Webhooks-Signature-Settings is unreadable")
    })?;
    let key = settings.twilio_webhook_shared_key.as_ref().ok_or_else(|| {
        WebhookError::unauthenticated(
            "signed with a shared key, but TWILIO_WEBHOOK_SHARED_KEY is not configured",
        )
    })?;
    if settings
        .twilio_webhook_shared_key_id
        .as_ref()
        .is_some_and(|expected| *expected != key_id)
    {
        return Err(WebhookError::unauthenticated(
            "signed with a shared key other than TWILIO_WEBHOOK_SHARED_KEY_ID",
        ));
    }
    Ok((key.expose_secret().as_bytes(), algorithm))
}

/// The status a Twilio `MessageStatus` reports. `read` (WhatsApp/RCS) implies delivery, and a
/// `canceled` scheduled send never went out. `partially_delivered` (the carrier confirmed
/// some parts of the message but not all) counts as delivered, since something reached the
/// handset and nothing will be retried; the caller records that it was partial.
fn reported_status(status: &str) -> Option<OutreachStatus> {
    match status {
        "queued" | "accepted" | "scheduled" => Some(OutreachStatus::Queued),
        "sending" => Some(OutreachStatus::Sending),
        "sent" => Some(OutreachStatus::Sent),
        "delivered" | "read" | "partially_delivered" => Some(OutreachStatus::Delivered),
        "undelivered" => Some(OutreachStatus::Undelivered),
        "failed" | "canceled" => Some(OutreachStatus::Failed),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_reply_names_the_sender_its_contact_rates_and_stop_and_escapes_them() {
        let reply = Reply::Help(HelpReply {
            sender: "Smith & Jones <Dental>".into(),
            contact: Some("+15551230000".into()),
        })
        .twiml();
        assert_eq!(
            reply,
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Message>Smith &amp; Jones &lt;Dental&gt;: patient reminders and messages. For help, contact +15551230000. Msg &amp; data rates may apply. Reply STOP to opt out.</Message></Response>"#
        );
        let without_contact = HelpReply {
            sender: "Smile".into(),
            contact: None,
        };
        assert_eq!(
            without_contact.text(),
            "Smile: patient reminders and messages. Msg & data rates may apply. Reply STOP to opt out."
        );
        assert_eq!(
            Reply::Empty.twiml(),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response/>"#
        );
    }

    #[test]
    fn form_bodies_decode_strictly_and_keep_repeats() {
        let params =
            Params::parse(b"Body=Hello+there%21&To=%2B15551234567&Flag&MediaUrl=a&MediaUrl=b")
                .unwrap();
        assert_eq!(params.get("Body"), Some("Hello there!"));
        assert_eq!(params.get("To"), Some("+15551234567"));
        assert_eq!(params.get("Flag"), Some(""));
        assert_eq!(params.0.iter().filter(|(n, _)| n == "MediaUrl").count(), 2);
        assert!(matches!(
            Params::parse(b"Body=%FF%FE"),
            Err(WebhookError::Malformed(_))
        ));
        assert!(matches!(
            Params::parse(b"Body=\xff"),
            Err(WebhookError::Malformed(_))
        ));
    }

    #[test]
    fn twilio_statuses_map_onto_the_sms_ladder() {
        let cases = [
            ("accepted", Some(OutreachStatus::Queued)),
            ("scheduled", Some(OutreachStatus::Queued)),
            ("sending", Some(OutreachStatus::Sending)),
            ("sent", Some(OutreachStatus::Sent)),
            ("read", Some(OutreachStatus::Delivered)),
            ("undelivered", Some(OutreachStatus::Undelivered)),
            ("canceled", Some(OutreachStatus::Failed)),
            ("receiving", None),
            ("partially_delivered", Some(OutreachStatus::Delivered)),
        ];
        for (status, expected) in cases {
            assert_eq!(reported_status(status), expected, "{status}");
        }
    }
}
