//! A practice's compliance settings (`practice_compliance`, written only here): its time zone,
//! sending window, care-SMS caps, CAN-SPAM contact details and SMS price. A practice without a
//! row has the defaults, which are also the most a practice may allow.

use chrono::NaiveTime;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::{PgExecutor, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    ComplianceError,
    segments::Price,
    window::{EARLIEST, LATEST, SendingWindow},
};
use crate::types::FieldErrors;

pub const DEFAULT_TIMEZONE: Tz = chrono_tz::America::New_York;
pub const MAX_DAILY_CAP: i32 = 1;
pub const MAX_WEEKLY_CAP: i32 = 3;
const MAX_TEXT_CHARS: usize = 500;

/// `{start, end}` as `HH:MM`, local to the recipient.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct WindowView {
    #[schema(example = "08:00")]
    pub start: String,
    #[schema(example = "21:00")]
    pub end: String,
}

/// The compliance settings as the API shows and takes them.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceView {
    /// IANA time zone of the practice, used for patients without their own.
    #[schema(example = "America/New_York")]
    pub timezone: String,
    /// Always clamped to 08:00–21:00 in the recipient's local time.
    pub sending_window: WindowView,
    /// Care SMS per patient per local calendar day, 0 to 1.
    pub sms_care_daily_cap: i32,
    /// Care SMS per patient in the last 7 days, 0 to 3.
    pub sms_care_weekly_cap: i32,
    pub postal_address: Option<String>,
    pub contact_phone: Option<String>,
    pub contact_email: Option<String>,
    /// Price of one SMS segment, a decimal string such as `"0.0079"`.
    #[schema(example = "0.0079")]
    pub sms_segment_price: Option<String>,
}

/// The parsed settings the rules use.
#[derive(Debug, Clone)]
pub struct Compliance {
    pub timezone: Tz,
    pub window: SendingWindow,
    pub sms_care_daily_cap: i32,
    pub sms_care_weekly_cap: i32,
    pub postal_address: Option<String>,
    pub sms_segment_price: Option<Price>,
}

#[derive(sqlx::FromRow)]
struct Row {
    timezone: String,
    window_start: NaiveTime,
    window_end: NaiveTime,
    sms_care_daily_cap: i32,
    sms_care_weekly_cap: i32,
    postal_address: Option<String>,
    contact_phone: Option<String>,
    contact_email: Option<String>,
    sms_segment_price: Option<String>,
}

impl Default for Row {
    fn default() -> Self {
        Self {
            timezone: DEFAULT_TIMEZONE.name().to_string(),
            window_start: EARLIEST,
            window_end: LATEST,
            sms_care_daily_cap: MAX_DAILY_CAP,
            sms_care_weekly_cap: MAX_WEEKLY_CAP,
            postal_address: None,
            contact_phone: None,
            contact_email: None,
            sms_segment_price: None,
        }
    }
}

impl Row {
    fn view(&self) -> ComplianceView {
        ComplianceView {
            timezone: self.timezone.clone(),
            sending_window: WindowView {
                start: self.window_start.format("%H:%M").to_string(),
                end: self.window_end.format("%H:%M").to_string(),
            },
            sms_care_daily_cap: self.sms_care_daily_cap,
            sms_care_weekly_cap: self.sms_care_weekly_cap,
            postal_address: self.postal_address.clone(),
            contact_phone: self.contact_phone.clone(),
            contact_email: self.contact_email.clone(),
            sms_segment_price: self.sms_segment_price.clone(),
        }
    }

    fn rules(&self) -> Compliance {
        Compliance {
            // Stored values were validated on the way in; a zone the tz database has since
            // dropped falls back to the default rather than stopping every send.
            timezone: self.timezone.parse().unwrap_or(DEFAULT_TIMEZONE),
            window: SendingWindow::clamped(self.window_start, self.window_end),
            sms_care_daily_cap: self.sms_care_daily_cap,
            sms_care_weekly_cap: self.sms_care_weekly_cap,
            postal_address: self.postal_address.clone(),
            sms_segment_price: self
                .sms_segment_price
                .as_deref()
                .and_then(|p| Price::parse(p).ok()),
        }
    }
}

async fn row(db: impl PgExecutor<'_>, practice_id: Uuid) -> Result<Row, sqlx::Error> {
    Ok(sqlx::query_as(
        "select timezone, window_start, window_end, sms_care_daily_cap, sms_care_weekly_cap,
                postal_address, contact_phone, contact_email, sms_segment_price
         from practice_compliance where practice_id = $1",
    )
    .bind(practice_id)
    .fetch_optional(db)
    .await?
    .unwrap_or_default())
}

/// How a patient reaches the practice, for the SMS HELP reply: its contact phone, else its
/// contact email, from these settings.
pub async fn help_contact(
    db: impl PgExecutor<'_>,
    practice_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    let contact: Option<Option<String>> = sqlx::query_scalar(
        "select coalesce(nullif(btrim(contact_phone), ''), nullif(btrim(contact_email), ''))
         from practice_compliance where practice_id = $1",
    )
    .bind(practice_id)
    .fetch_optional(db)
    .await?;
    Ok(contact.flatten())
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn get(pool: &PgPool, practice_id: Uuid) -> Result<ComplianceView, ComplianceError> {
    Ok(row(pool, practice_id).await?.view())
}

/// The settings the rules apply for a practice.
pub async fn rules(db: impl PgExecutor<'_>, practice_id: Uuid) -> Result<Compliance, sqlx::Error> {
    Ok(row(db, practice_id).await?.rules())
}

fn parse_time(errors: &mut FieldErrors, field: &str, text: &str) -> Option<NaiveTime> {
    let parsed = NaiveTime::parse_from_str(text, "%H:%M")
        .ok()
        .filter(|_| text.len() == 5);
    if parsed.is_none() {
        errors.add(field, "must be a time as HH:MM, like 08:00");
    }
    parsed
}

fn optional_text(errors: &mut FieldErrors, field: &str, value: Option<&str>) -> Option<String> {
    let value = value.map(str::trim).filter(|v| !v.is_empty())?;
    if value.chars().count() > MAX_TEXT_CHARS {
        errors.add(
            field,
            format!("must be at most {MAX_TEXT_CHARS} characters"),
        );
    }
    Some(value.to_string())
}

fn validate(request: &ComplianceView) -> Result<Row, ComplianceError> {
    let mut errors = FieldErrors::new();
    if request.timezone.parse::<Tz>().is_err() {
        errors.add(
            "timezone",
            "must be an IANA time zone, like America/Chicago",
        );
    }
    let start = parse_time(
        &mut errors,
        "sendingWindow.start",
        &request.sending_window.start,
    );
    let end = parse_time(
        &mut errors,
        "sendingWindow.end",
        &request.sending_window.end,
    );
    if let (Some(start), Some(end)) = (start, end)
        && start >= end
    {
        errors.add("sendingWindow.end", "must be later than the start");
    }
    if !(0..=MAX_DAILY_CAP).contains(&request.sms_care_daily_cap) {
        errors.add(
            "smsCareDailyCap",
            format!("must be 0 to {MAX_DAILY_CAP}: a practice may lower the cap, not raise it"),
        );
    }
    if !(0..=MAX_WEEKLY_CAP).contains(&request.sms_care_weekly_cap) {
        errors.add(
            "smsCareWeeklyCap",
            format!("must be 0 to {MAX_WEEKLY_CAP}: a practice may lower the cap, not raise it"),
        );
    }
    let postal_address = optional_text(
        &mut errors,
        "postalAddress",
        request.postal_address.as_deref(),
    );
    let contact_phone = optional_text(
        &mut errors,
        "contactPhone",
        request.contact_phone.as_deref(),
    );
    let contact_email = optional_text(
        &mut errors,
        "contactEmail",
        request.contact_email.as_deref(),
    );
    let price = optional_text(
        &mut errors,
        "smsSegmentPrice",
        request.sms_segment_price.as_deref(),
    );
    if let Some(price) = &price {
        errors.check("smsSegmentPrice", Price::parse(price));
    }
    match (start, end) {
        (Some(window_start), Some(window_end)) if errors.is_empty() => Ok(Row {
            timezone: request.timezone.clone(),
            window_start,
            window_end,
            sms_care_daily_cap: request.sms_care_daily_cap,
            sms_care_weekly_cap: request.sms_care_weekly_cap,
            postal_address,
            contact_phone,
            contact_email,
            sms_segment_price: price,
        }),
        _ => Err(ComplianceError::Invalid(errors)),
    }
}

/// Replaces the practice's settings as a whole.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn put(
    pool: &PgPool,
    practice_id: Uuid,
    request: &ComplianceView,
) -> Result<ComplianceView, ComplianceError> {
    let row = validate(request)?;
    sqlx::query(
        "insert into practice_compliance (practice_id, timezone, window_start, window_end,
             sms_care_daily_cap, sms_care_weekly_cap, postal_address, contact_phone, contact_email,
             sms_segment_price)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (practice_id) do update set timezone = excluded.timezone,
             window_start = excluded.window_start, window_end = excluded.window_end,
             sms_care_daily_cap = excluded.sms_care_daily_cap,
             sms_care_weekly_cap = excluded.sms_care_weekly_cap,
             postal_address = excluded.postal_address, contact_phone = excluded.contact_phone,
             contact_email = excluded.contact_email, sms_segment_price = excluded.sms_segment_price,
             updated_at = now()",
    )
    .bind(practice_id)
    .bind(&row.timezone)
    .bind(row.window_start)
    .bind(row.window_end)
    .bind(row.sms_care_daily_cap)
    .bind(row.sms_care_weekly_cap)
    .bind(&row.postal_address)
    .bind(&row.contact_phone)
    .bind(&row.contact_email)
    .bind(&row.sms_segment_price)
    .execute(pool)
    .await?;
    Ok(row.view())
}
