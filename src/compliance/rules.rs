//! The rules that withhold a message: one decision, taken when a message is queued, again when
//! a worker hands it to a provider (consent may be withdrawn and caps reached meanwhile), and by
//! the preview. A withheld message is `suppressed` with the rule's name as its `error`.
//!
//! - `opted_out`: the address is on the suppression ledger (STOP, unsubscribe, bounce, spam).
//! - `no_marketing_consent`: marketing SMS needs a recorded grant (TCPA prior express written
//!   consent); marketing email needs none, but a withdrawn marketing consent stops it too.
//! - `frequency_cap`: care SMS per patient, at most the practice's daily cap in the recipient's
//!   local calendar day and its weekly cap in the last 7 days, counting messages a provider took.
//! - `no_postal_address`: CAN-SPAM wants a physical postal address in every marketing email.
//!
//! Test sends do not come through here: they go to the practice's own staff, and only the
//! ledger (checked by the delivery itself) and the rate limits apply to them.

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    Category,
    consent::{self, Effective},
    settings::{self, Compliance},
};
use crate::messaging::{Channel, suppression};

/// Why a message is withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    OptedOut,
    NoMarketingConsent,
    FrequencyCap,
    NoPostalAddress,
}

impl Rule {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::OptedOut => "opted_out",
            Self::NoMarketingConsent => "no_marketing_consent",
            Self::FrequencyCap => "frequency_cap",
            Self::NoPostalAddress => "no_postal_address",
        }
    }
}

/// The message a decision is about.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub practice_id: Uuid,
    pub patient_id: Option<Uuid>,
    pub channel: Channel,
    pub address: &'a str,
    pub category: Category,
    /// At hand-over: the message's own log. Care SMS of the same patient claimed earlier and
    /// still being handed over count towards the caps, so two in one batch cannot both go.
    pub outreach_log_id: Option<Uuid>,
}

/// What the rules allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send it; a marketing email carries `postal_address` in its CAN-SPAM footer.
    Send {
        postal_address: Option<String>,
    },
    Withhold(Rule),
}

/// Decides whether `message` may go now. `via_system_sender`: whether the shared system
/// sender's opt-outs bind it too (they do when the system account will send; when queuing, the
/// account is not known yet and the delivery checks that account's ledger itself).
pub async fn decide(
    db: &mut PgConnection,
    message: &Message<'_>,
    via_system_sender: bool,
    now: DateTime<Utc>,
) -> Result<Verdict, sqlx::Error> {
    if suppression::check(
        &mut *db,
        message.practice_id,
        message.channel,
        message.address,
        via_system_sender,
    )
    .await?
    .is_some()
    {
        return Ok(Verdict::Withhold(Rule::OptedOut));
    }
    let compliance = settings::rules(&mut *db, message.practice_id).await?;
    let marketing = match (message.category, message.patient_id) {
        (Category::Marketing, Some(patient_id)) => {
            consent::effective(
                &mut *db,
                message.practice_id,
                patient_id,
                message.channel,
                Category::Marketing,
            )
            .await?
        }
        _ => Effective::Unknown,
    };
    if let Some(rule) = content_rule(message.channel, message.category, marketing, &compliance) {
        return Ok(Verdict::Withhold(rule));
    }
    if message.channel == Channel::Sms
        && message.category == Category::Care
        && let Some(patient_id) = message.patient_id
    {
        let handed_over = care_sms_handed_over(&mut *db, message, patient_id, now).await?;
        // "A day" is the patient's local calendar day: their own zone, else the practice's.
        let zone = super::recipient::window_for(&mut *db, message.practice_id, Some(patient_id))
            .await?
            .zone;
        if cap_reached(&handed_over, now, zone, &compliance) {
            return Ok(Verdict::Withhold(Rule::FrequencyCap));
        }
    }
    let marketing_email =
        message.channel == Channel::Email && message.category == Category::Marketing;
    Ok(Verdict::Send {
        postal_address: compliance.postal_address.filter(|_| marketing_email),
    })
}

/// The consent and CAN-SPAM rules, given the patient's marketing consent on the channel.
fn content_rule(
    channel: Channel,
    category: Category,
    marketing: Effective,
    compliance: &Compliance,
) -> Option<Rule> {
    match (channel, category) {
        (_, Category::Care) => None,
        (Channel::Sms, Category::Marketing) => {
            (marketing != Effective::Granted).then_some(Rule::NoMarketingConsent)
        }
        (Channel::Email, Category::Marketing) if marketing == Effective::Revoked => {
            Some(Rule::NoMarketingConsent)
        }
        (Channel::Email, Category::Marketing) => compliance
            .postal_address
            .is_none()
            .then_some(Rule::NoPostalAddress),
    }
}

/// When the patient's care SMS of the last 7 days were handed over; one claimed before this one
/// and still being handed over counts as handed over now.
async fn care_sms_handed_over(
    db: &mut PgConnection,
    message: &Message<'_>,
    patient_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "select coalesce(handed_over_at, $4) from outreach_logs
         where patient_id = $1 and practice_id = $2 and message_type = 'sms' and category = 'care'
           and (handed_over_at > $4 - interval '7 days'
                or (handed_over_at is null and status = 'sending' and id < $3))",
    )
    .bind(patient_id)
    .bind(message.practice_id)
    .bind(message.outreach_log_id)
    .bind(now)
    .fetch_all(db)
    .await
}

/// Whether another care SMS would pass the daily cap (the recipient's local calendar day of
/// `now`) or the weekly one (the 7 days before `now`).
fn cap_reached(
    handed_over: &[DateTime<Utc>],
    now: DateTime<Utc>,
    zone: Tz,
    compliance: &Compliance,
) -> bool {
    let today = now.with_timezone(&zone).date_naive();
    let week_start = now - Duration::days(7);
    let in_week = handed_over.iter().filter(|at| **at > week_start).count();
    let today_count = handed_over
        .iter()
        .filter(|at| at.with_timezone(&zone).date_naive() == today)
        .count();
    let reached =
        |count: usize, cap: i32| i64::try_from(count).unwrap_or(i64::MAX) >= i64::from(cap);
    reached(today_count, compliance.sms_care_daily_cap)
        || reached(in_week, compliance.sms_care_weekly_cap)
}

/// A marketing email's body with what CAN-SPAM requires at its end: the sender's postal address
/// and a working way to opt out (the same link as the `List-Unsubscribe` header).
pub fn with_can_spam_footer(body: &str, postal_address: &str, unsubscribe_url: &str) -> String {
    format!("{body}\n\n--\n{postal_address}\nUnsubscribe: {unsubscribe_url}\n")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::compliance::window::{EARLIEST, LATEST, SendingWindow};

    fn compliance(daily: i32, weekly: i32, postal_address: Option<&str>) -> Compliance {
        Compliance {
            timezone: chrono_tz::America::Chicago,
            window: SendingWindow::clamped(EARLIEST, LATEST),
            sms_care_daily_cap: daily,
            sms_care_weekly_cap: weekly,
            postal_address: postal_address.map(str::to_string),
            sms_segment_price: None,
        }
    }

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    #[test]
    fn the_daily_cap_counts_the_recipients_local_day_not_the_utc_one() {
        let rules = compliance(1, 3, None);
        let zone = rules.timezone;
        // 23:30 in Chicago on 1 December is 05:30 UTC on 2 December.
        let late_evening = [utc(2026, 12, 2, 5, 30)];
        // 00:10 the next local day: a new day, though the same UTC date.
        assert!(!cap_reached(
            &late_evening,
            utc(2026, 12, 2, 6, 10),
            zone,
            &rules
        ));
        // 23:50 the same local evening: still 1 December in Chicago.
        assert!(cap_reached(
            &late_evening,
            utc(2026, 12, 2, 5, 50),
            zone,
            &rules
        ));
        // 18:00 UTC on 1 December is noon there, the same local day as the evening send.
        let noon = [utc(2026, 12, 1, 18, 0)];
        assert!(cap_reached(&noon, utc(2026, 12, 2, 5, 40), zone, &rules));
    }

    #[test]
    fn the_weekly_cap_counts_the_last_seven_days_and_a_zero_cap_allows_none() {
        let rules = compliance(1, 3, None);
        let zone = rules.timezone;
        let now = utc(2026, 12, 10, 18, 0);
        let three = [
            utc(2026, 12, 4, 18, 0),
            utc(2026, 12, 6, 18, 0),
            utc(2026, 12, 8, 18, 0),
        ];
        assert!(cap_reached(&three, now, zone, &rules));
        let one_aged_out = [
            utc(2026, 12, 3, 17, 59),
            utc(2026, 12, 6, 18, 0),
            utc(2026, 12, 8, 18, 0),
        ];
        assert!(!cap_reached(&one_aged_out, now, zone, &rules));
        assert!(cap_reached(&[], now, zone, &compliance(0, 3, None)));
        assert!(!cap_reached(&[], now, zone, &rules));
    }

    #[test]
    fn marketing_sms_needs_a_grant_and_marketing_email_an_address_and_no_withdrawal() {
        let with_address = compliance(1, 3, Some("1 Main St"));
        let rule = |channel, category, marketing, rules: &Compliance| {
            content_rule(channel, category, marketing, rules)
        };
        use Category::{Care, Marketing};
        use Channel::{Email, Sms};
        assert_eq!(
            rule(Sms, Marketing, Effective::Unknown, &with_address),
            Some(Rule::NoMarketingConsent)
        );
        assert_eq!(
            rule(Sms, Marketing, Effective::Revoked, &with_address),
            Some(Rule::NoMarketingConsent)
        );
        assert_eq!(
            rule(Sms, Marketing, Effective::Granted, &with_address),
            None
        );
        assert_eq!(
            rule(Email, Marketing, Effective::Unknown, &with_address),
            None
        );
        assert_eq!(
            rule(Email, Marketing, Effective::Revoked, &with_address),
            Some(Rule::NoMarketingConsent)
        );
        assert_eq!(
            rule(
                Email,
                Marketing,
                Effective::Granted,
                &compliance(1, 3, None)
            ),
            Some(Rule::NoPostalAddress)
        );
        assert_eq!(
            rule(Email, Care, Effective::Revoked, &compliance(1, 3, None)),
            None
        );
        assert_eq!(rule(Sms, Care, Effective::Unknown, &with_address), None);
    }

    #[test]
    fn rules_are_named_as_the_api_names_them() {
        for rule in [
            Rule::OptedOut,
            Rule::NoMarketingConsent,
            Rule::FrequencyCap,
            Rule::NoPostalAddress,
        ] {
            assert_eq!(serde_json::to_value(rule).unwrap(), rule.as_str());
        }
    }
}
