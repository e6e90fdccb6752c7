//! The consent ledger (`consents`, written only here): append-only, per patient, channel and
//! category. What is in effect is the newest entry of each pair; no entry is `unknown`.
//!
//! Keywords and unsubscribe links append entries themselves (`recordedBy` null): STOP revokes
//! SMS for every category, START restores `care` only, since marketing needs a fresh grant.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{Category, ComplianceError, optout};
use crate::{
    messaging::{
        Channel,
        suppression::{self, Scope, SuppressionReason},
    },
    types::FieldErrors,
};

const MAX_EVIDENCE_CHARS: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, sqlx::Type)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "text", rename_all = "snake_case")]
pub enum ConsentSource {
    WebForm,
    PaperForm,
    Verbal,
    SmsKeyword,
    EmailLink,
    Import,
    Api,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewConsent {
    pub channel: Channel,
    pub category: Category,
    pub granted: bool,
    pub source: ConsentSource,
    pub evidence: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedBy {
    pub user_id: Uuid,
    pub email: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsentEntry {
    pub channel: Channel,
    pub category: Category,
    pub granted: bool,
    pub source: ConsentSource,
    pub evidence: Option<String>,
    pub recorded_by: Option<RecordedBy>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Effective {
    Granted,
    Revoked,
    #[default]
    Unknown,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, Default, PartialEq, Eq)]
pub struct ByCategory {
    pub care: Effective,
    pub marketing: Effective,
}

#[derive(Debug, Clone, Copy, Serialize, ToSchema, Default, PartialEq, Eq)]
pub struct EffectiveConsents {
    pub sms: ByCategory,
    pub email: ByCategory,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConsentHistory {
    /// Newest first.
    pub history: Vec<ConsentEntry>,
    pub effective: EffectiveConsents,
}

impl EffectiveConsents {
    /// From a history read newest first: the first entry of each pair wins.
    fn from_history(history: &[ConsentEntry]) -> Self {
        let mut effective = Self::default();
        for entry in history.iter().rev() {
            let by = match entry.channel {
                Channel::Sms => &mut effective.sms,
                Channel::Email => &mut effective.email,
            };
            let slot = match entry.category {
                Category::Care => &mut by.care,
                Category::Marketing => &mut by.marketing,
            };
            *slot = if entry.granted {
                Effective::Granted
            } else {
                Effective::Revoked
            };
        }
        effective
    }

    pub fn get(&self, channel: Channel, category: Category) -> Effective {
        let by = match channel {
            Channel::Sms => self.sms,
            Channel::Email => self.email,
        };
        match category {
            Category::Care => by.care,
            Category::Marketing => by.marketing,
        }
    }
}

fn category_str(category: Category) -> &'static str {
    match category {
        Category::Care => "care",
        Category::Marketing => "marketing",
    }
}

async fn patient_exists(
    db: &mut PgConnection,
    practice_id: Uuid,
    patient_id: Uuid,
) -> Result<(), ComplianceError> {
    let exists: bool = sqlx::query_scalar(
        "select exists (select 1 from patients where id = $1 and practice_id = $2)",
    )
    .bind(patient_id)
    .bind(practice_id)
    .fetch_one(&mut *db)
    .await?;
    exists
        .then_some(())
        .ok_or(ComplianceError::NotFound("patient"))
}

/// Appends one entry recorded by a practice user.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn record(
    pool: &PgPool,
    practice_id: Uuid,
    patient_id: Uuid,
    user_id: Uuid,
    consent: &NewConsent,
) -> Result<ConsentHistory, ComplianceError> {
    let evidence = consent
        .evidence
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    if evidence.is_some_and(|e| e.chars().count() > MAX_EVIDENCE_CHARS) {
        return Err(ComplianceError::Invalid(FieldErrors::single(
            "evidence",
            format!("must be at most {MAX_EVIDENCE_CHARS} characters"),
        )));
    }
    let mut tx = pool.begin().await?;
    patient_exists(&mut tx, practice_id, patient_id).await?;
    sqlx::query(
        "insert into consents (practice_id, patient_id, channel, category, granted, source, evidence, recorded_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(practice_id)
    .bind(patient_id)
    .bind(consent.channel.as_str())
    .bind(category_str(consent.category))
    .bind(consent.granted)
    .bind(consent.source)
    .bind(evidence)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    history(pool, practice_id, patient_id).await
}

#[derive(sqlx::FromRow)]
struct Row {
    channel: String,
    category: String,
    granted: bool,
    source: ConsentSource,
    evidence: Option<String>,
    recorded_by: Option<Uuid>,
    email: Option<String>,
    recorded_at: DateTime<Utc>,
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn history(
    pool: &PgPool,
    practice_id: Uuid,
    patient_id: Uuid,
) -> Result<ConsentHistory, ComplianceError> {
    let mut db = pool.acquire().await?;
    patient_exists(&mut db, practice_id, patient_id).await?;
    let rows: Vec<Row> = sqlx::query_as(
        "select c.channel, c.category, c.granted, c.source, c.evidence, c.recorded_by, u.email, c.recorded_at
         from consents c left join users u on u.id = c.recorded_by
         where c.patient_id = $1 and c.practice_id = $2
         order by c.id desc",
    )
    .bind(patient_id)
    .bind(practice_id)
    .fetch_all(&mut *db)
    .await?;
    let history: Vec<ConsentEntry> = rows
        .into_iter()
        .map(|row| ConsentEntry {
            channel: Channel::parse(&row.channel).unwrap_or(Channel::Sms),
            category: if row.category == "marketing" {
                Category::Marketing
            } else {
                Category::Care
            },
            granted: row.granted,
            source: row.source,
            evidence: row.evidence,
            recorded_by: row
                .recorded_by
                .zip(row.email)
                .map(|(user_id, email)| RecordedBy { user_id, email }),
            recorded_at: row.recorded_at,
        })
        .collect();
    let effective = EffectiveConsents::from_history(&history);
    Ok(ConsentHistory { history, effective })
}

/// What is in effect for one channel and category of a patient: its newest entry.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn effective(
    db: &mut PgConnection,
    practice_id: Uuid,
    patient_id: Uuid,
    channel: Channel,
    category: Category,
) -> Result<Effective, sqlx::Error> {
    let granted: Option<bool> = sqlx::query_scalar(
        "select granted from consents
         where patient_id = $1 and practice_id = $2 and channel = $3 and category = $4
         order by id desc limit 1",
    )
    .bind(patient_id)
    .bind(practice_id)
    .bind(channel.as_str())
    .bind(category_str(category))
    .fetch_optional(db)
    .await?;
    Ok(match granted {
        Some(true) => Effective::Granted,
        Some(false) => Effective::Revoked,
        None => Effective::Unknown,
    })
}

/// An entry the service records itself, from a keyword or an unsubscribe.
#[derive(Clone, Copy)]
struct Automatic<'a> {
    categories: &'a [Category],
    granted: bool,
    source: ConsentSource,
    evidence: &'a str,
}

/// Appends `granted` for `categories` of `channel` to every patient reached at `address`: that
/// practice's patients, or for the shared system sender every practice's.
async fn append_for_address(
    db: &mut PgConnection,
    scope: Scope,
    channel: Channel,
    address: &str,
    entry: Automatic<'_>,
) -> Result<u64, sqlx::Error> {
    let Automatic {
        categories,
        granted,
        source,
        evidence,
    } = entry;
    let column_matches = match channel {
        Channel::Email => "lower(p.email) = $2",
        Channel::Sms => "p.phone = $2",
    };
    let statement = format!(
        "insert into consents (practice_id, patient_id, channel, category, granted, source, evidence)
         select p.practice_id, p.id, $3, c.category, $5, $6, $7
         from patients p, unnest($4::text[]) as c(category)
         where ($1::uuid is null or p.practice_id = $1) and {column_matches}"
    );
    let practice = match scope {
        Scope::Practice(id) => Some(id),
        Scope::SystemSender => None,
    };
    let result = sqlx::query(sqlx::AssertSqlSafe(statement))
        .bind(practice)
        .bind(suppression::normalize(channel, address))
        .bind(channel.as_str())
        .bind(
            categories
                .iter()
                .map(|c| category_str(*c))
                .collect::<Vec<_>>(),
        )
        .bind(granted)
        .bind(source)
        .bind(evidence)
        .execute(db)
        .await?;
    Ok(result.rows_affected())
}

/// What an inbound SMS does to consent, called once per newly received message: an opt-out
/// (keyword or phrase) revokes SMS care and marketing for the patients at `from` (a phrase,
/// which the carrier does not act on, the caller also suppresses, as it does a STOP);
/// START/UNSTOP/YES restores care. Returns what the message asked for.
pub async fn on_inbound_sms(
    db: &mut PgConnection,
    scope: Scope,
    from: &str,
    body: &str,
) -> Result<optout::Intent, sqlx::Error> {
    let intent = optout::classify(body);
    let evidence = format!("SMS reply from {from}: {}", body.trim());
    match intent {
        optout::Intent::OptOutKeyword | optout::Intent::OptOutPhrase => {
            append_for_address(
                db,
                scope,
                Channel::Sms,
                from,
                Automatic {
                    categories: &[Category::Care, Category::Marketing],
                    granted: false,
                    source: ConsentSource::SmsKeyword,
                    evidence: &evidence,
                },
            )
            .await?;
        }
        optout::Intent::OptIn => {
            append_for_address(
                db,
                scope,
                Channel::Sms,
                from,
                Automatic {
                    categories: &[Category::Care],
                    granted: true,
                    source: ConsentSource::SmsKeyword,
                    evidence: &evidence,
                },
            )
            .await?;
        }
        optout::Intent::Help | optout::Intent::Other => {}
    }
    Ok(intent)
}

/// An unsubscribe (link or provider event) revokes email marketing for the practice's patients
/// at `address`.
pub async fn on_email_unsubscribe(
    db: &mut PgConnection,
    practice_id: Uuid,
    address: &str,
    evidence: &str,
) -> Result<(), sqlx::Error> {
    append_for_address(
        db,
        Scope::Practice(practice_id),
        Channel::Email,
        address,
        Automatic {
            categories: &[Category::Marketing],
            granted: false,
            source: ConsentSource::EmailLink,
            evidence,
        },
    )
    .await?;
    Ok(())
}

/// [`on_email_unsubscribe`] for each practice-scoped email unsubscribe among suppression entries
/// (the unsubscribe link, a provider's unsubscribe and group-unsubscribe events).
pub async fn on_email_unsubscribes(
    db: &mut PgConnection,
    entries: &[suppression::Suppression],
) -> Result<(), sqlx::Error> {
    for entry in entries {
        if let (Scope::Practice(practice_id), Channel::Email, SuppressionReason::Unsubscribed) =
            (entry.scope, entry.channel, entry.reason)
        {
            let evidence = match entry.source {
                suppression::SuppressionSource::UnsubscribeLink => "unsubscribe link",
                _ => "provider unsubscribe event",
            };
            on_email_unsubscribe(db, practice_id, &entry.address, evidence).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(channel: Channel, category: Category, granted: bool) -> ConsentEntry {
        ConsentEntry {
            channel,
            category,
            granted,
            source: ConsentSource::Api,
            evidence: None,
            recorded_by: None,
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn the_newest_entry_of_each_channel_and_category_is_in_effect_and_the_rest_unknown() {
        let newest_first = [
            entry(Channel::Sms, Category::Care, true),
            entry(Channel::Sms, Category::Marketing, false),
            entry(Channel::Sms, Category::Care, false),
            entry(Channel::Sms, Category::Marketing, true),
        ];
        let effective = EffectiveConsents::from_history(&newest_first);
        assert_eq!(effective.sms.care, Effective::Granted);
        assert_eq!(effective.sms.marketing, Effective::Revoked);
        assert_eq!(effective.email, ByCategory::default());
        assert_eq!(
            effective.get(Channel::Email, Category::Care),
            Effective::Unknown
        );
    }
}
