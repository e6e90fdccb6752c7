//! Patients of a practice: who outreach is sent to.
//!
//! A patient needs a first and last name and at least one way to be reached (an email address, an
//! E.164 phone number, or both): this is a messaging service, and a patient it can never message
//! is a data-entry mistake worth catching at the desk. Blank contact fields count as absent, so a
//! form can send `""` for a field its user cleared. Deleting a patient keeps their outreach logs
//! (the recipient address is kept on each log) and ends their sequence enrolments.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};
use sqlx::PgPool;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{OutreachError, delete_one, required_line};
use crate::{
    page::{Page, PageRequest},
    types::FieldErrors,
    types::{EmailAddress, PhoneE164},
};

const NAME_MAX_CHARS: usize = 100;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    pub id: Uuid,
    pub first_name: String,
    pub last_name: String,
    #[schema(format = Email)]
    pub email: Option<String>,
    /// E.164, like `+15551234567`.
    pub phone: Option<String>,
    /// IANA time zone the patient's sending window is computed in; the practice's when absent.
    #[schema(example = "America/Chicago")]
    pub timezone: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The list's sort key as Postgres computes it, so cursors compare exactly as the index does.
    #[serde(skip)]
    sort_last: String,
    #[serde(skip)]
    sort_first: String,
}

/// Selected by every query returning a [`Patient`].
macro_rules! patient_columns {
    () => {
        "id, first_name, last_name, email, phone, timezone, created_at, updated_at,
         lower(last_name) as sort_last, lower(first_name) as sort_first"
    };
}

/// A new patient. Every field is read as text so that all problems are reported at once.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientFields {
    #[schema(value_type = String, required = true)]
    pub first_name: Option<String>,
    #[schema(value_type = String, required = true)]
    pub last_name: Option<String>,
    #[schema(format = Email)]
    pub email: Option<String>,
    /// E.164, like `+15551234567`.
    pub phone: Option<String>,
    /// IANA time zone, like `America/Chicago`; absent or blank: the practice's.
    pub timezone: Option<String>,
}

/// A change to a patient: an absent field is kept, `null` clears it (only `email` and `phone`
/// may be cleared, and not both).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatientPatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    /// `null` returns the patient to the practice's time zone.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub timezone: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from one not sent at all (`None`, by `default`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl PatientPatch {
    fn apply_to(self, current: Patient) -> PatientFields {
        PatientFields {
            first_name: self.first_name.unwrap_or(Some(current.first_name)),
            last_name: self.last_name.unwrap_or(Some(current.last_name)),
            email: self.email.unwrap_or(current.email),
            phone: self.phone.unwrap_or(current.phone),
            timezone: self.timezone.unwrap_or(current.timezone),
        }
    }
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PatientQuery {
    /// Words matched case-insensitively within first and last names; each word must match one.
    pub search: Option<String>,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<i64>)]
    pub limit: Option<String>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// Patients are listed by last name, then first name, case-insensitively.
type SortKey = (String, String, Uuid);

struct ValidPatient {
    first_name: String,
    last_name: String,
    email: Option<EmailAddress>,
    phone: Option<PhoneE164>,
    timezone: Option<Tz>,
}

impl PatientFields {
    fn validate(&self) -> Result<ValidPatient, OutreachError> {
        let mut errors = FieldErrors::new();
        let first_name = required_line(
            &mut errors,
            "firstName",
            self.first_name.as_deref(),
            NAME_MAX_CHARS,
        );
        let last_name = required_line(
            &mut errors,
            "lastName",
            self.last_name.as_deref(),
            NAME_MAX_CHARS,
        );
        let email = contact(
            &mut errors,
            "email",
            self.email.as_deref(),
            EmailAddress::parse,
        );
        let phone = contact(
            &mut errors,
            "phone",
            self.phone.as_deref(),
            PhoneE164::parse,
        );
        let timezone = contact(&mut errors, "timezone", self.timezone.as_deref(), |text| {
            text.parse::<Tz>()
                .map_err(|_| "must be an IANA time zone, like America/Chicago".to_string())
        });
        if let (Some(None), Some(None)) = (&email, &phone) {
            const UNREACHABLE: &str = "give an email address or a phone number (or both)";
            errors.add("email", UNREACHABLE);
            errors.add("phone", UNREACHABLE);
        }
        match (first_name, last_name, email, phone, timezone) {
            (Some(first_name), Some(last_name), Some(email), Some(phone), Some(timezone))
                if errors.is_empty() =>
            {
                Ok(ValidPatient {
                    first_name,
                    last_name,
                    email,
                    phone,
                    timezone,
                })
            }
            _ => Err(OutreachError::Invalid(errors)),
        }
    }
}

/// An optional contact field: `Some(None)` when absent or blank, `None` when it does not parse.
fn contact<T>(
    errors: &mut FieldErrors,
    field: &str,
    value: Option<&str>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    match value.map(str::trim) {
        None | Some("") => Some(None),
        Some(text) => errors.check(field, parse(text)).map(Some),
    }
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn create(
    pool: &PgPool,
    practice_id: Uuid,
    fields: &PatientFields,
) -> Result<Patient, OutreachError> {
    let patient = fields.validate()?;
    let created = sqlx::query_as(concat!(
        "insert into patients (id, practice_id, first_name, last_name, email, phone, timezone)
         values ($1, $2, $3, $4, $5, $6, $7)
         returning ",
        patient_columns!()
    ))
    .bind(Uuid::new_v4())
    .bind(practice_id)
    .bind(&patient.first_name)
    .bind(&patient.last_name)
    .bind(patient.email.as_ref().map(EmailAddress::as_str))
    .bind(patient.phone.as_ref().map(PhoneE164::as_str))
    .bind(patient.timezone.map(|zone| zone.name()))
    .fetch_one(pool)
    .await?;
    Ok(created)
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn get(pool: &PgPool, practice_id: Uuid, id: Uuid) -> Result<Patient, OutreachError> {
    sqlx::query_as(concat!(
        "select ",
        patient_columns!(),
        " from patients where id = $1 and practice_id = $2"
    ))
    .bind(id)
    .bind(practice_id)
    .fetch_optional(pool)
    .await?
    .ok_or(OutreachError::NotFound("patient"))
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn list(
    pool: &PgPool,
    practice_id: Uuid,
    query: &PatientQuery,
) -> Result<Page<Patient>, OutreachError> {
    let mut errors = FieldErrors::new();
    let search = crate::types::search_text(&mut errors, query.search.as_deref());
    let page =
        PageRequest::<SortKey>::parse(errors, query.limit.as_deref(), query.cursor.as_deref())
            .map_err(OutreachError::Invalid)?;
    let patterns: Vec<String> = search
        .split_whitespace()
        .map(|word| format!("%{}%", crate::types::escape_like(word)))
        .collect();
    let after = page.after.as_ref();
    let rows: Vec<Patient> = sqlx::query_as(concat!(
        "select ",
        patient_columns!(),
        " from patients
         where practice_id = $1
           and (select coalesce(bool_and(first_name ilike pattern or last_name ilike pattern), true)
                from unnest($2::text[]) as pattern)
           and ($3::text is null or (lower(last_name), lower(first_name), id) > ($3, $4, $5))
         order by lower(last_name), lower(first_name), id
         limit $6"
    ))
    .bind(practice_id)
    .bind(&patterns)
    .bind(after.map(|key| &key.0))
    .bind(after.map(|key| &key.1))
    .bind(after.map(|key| key.2))
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    Ok(page.page(rows, |p| (p.sort_last.clone(), p.sort_first.clone(), p.id)))
}

/// Applies `patch` under a row lock, so two concurrent changes to different fields both stick.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn update(
    pool: &PgPool,
    practice_id: Uuid,
    id: Uuid,
    patch: PatientPatch,
) -> Result<Patient, OutreachError> {
    let mut tx = pool.begin().await?;
    let current: Patient = sqlx::query_as(concat!(
        "select ",
        patient_columns!(),
        " from patients where id = $1 and practice_id = $2 for update"
    ))
    .bind(id)
    .bind(practice_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(OutreachError::NotFound("patient"))?;
    let patient = patch.apply_to(current).validate()?;
    let updated = sqlx::query_as(concat!(
        "update patients set first_name = $2, last_name = $3, email = $4, phone = $5, timezone = $6, updated_at = now()
         where id = $1
         returning ",
        patient_columns!()
    ))
    .bind(id)
    .bind(&patient.first_name)
    .bind(&patient.last_name)
    .bind(patient.email.as_ref().map(EmailAddress::as_str))
    .bind(patient.phone.as_ref().map(PhoneE164::as_str))
    .bind(patient.timezone.map(|zone| zone.name()))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(updated)
}

/// Deletes the patient; their outreach logs stay (with no patient) and their enrolments end.
#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn delete(pool: &PgPool, practice_id: Uuid, id: Uuid) -> Result<(), OutreachError> {
    delete_one(
        pool,
        "delete from patients where id = $1 and practice_id = $2",
        id,
        practice_id,
        "patient",
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(first: &str, last: &str, email: Option<&str>, phone: Option<&str>) -> PatientFields {
        PatientFields {
            first_name: Some(first.into()),
            last_name: Some(last.into()),
            email: email.map(Into::into),
            phone: phone.map(Into::into),
            timezone: None,
        }
    }

    fn invalid_fields(fields: &PatientFields) -> Vec<String> {
        match fields.validate() {
            Err(OutreachError::Invalid(errors)) => errors.fields().map(String::from).collect(),
            other => panic!(
                "expected invalid fields, got {:?}",
                other.map(|p| p.first_name)
            ),
        }
    }

    #[test]
    fn every_bad_field_is_reported_together() {
        assert_eq!(
            invalid_fields(&fields(" ", "Lee\nBcc: x", Some("nope"), Some("555"))),
            ["email", "firstName", "lastName", "phone"]
        );
        assert_eq!(
            invalid_fields(&PatientFields::default()),
            ["email", "firstName", "lastName", "phone"]
        );
    }

    #[test]
    fn a_patient_needs_an_email_or_a_phone_and_blank_means_absent() {
        assert_eq!(
            invalid_fields(&fields("Pat", "Lee", Some(" "), None)),
            ["email", "phone"]
        );
        let only_phone = fields(" Pat ", "Lee", Some(""), Some("+15551234567"))
            .validate()
            .unwrap();
        assert_eq!(
            (only_phone.first_name.as_str(), only_phone.email),
            ("Pat", None)
        );
    }

    #[test]
    fn a_time_zone_must_be_one_the_tz_database_knows() {
        let mut patient = fields("Pat", "Lee", None, Some("+15551234567"));
        patient.timezone = Some("Mars/Olympus_Mons".into());
        assert_eq!(invalid_fields(&patient), ["timezone"]);
        patient.timezone = Some("Asia/Tokyo".into());
        assert_eq!(
            patient.validate().unwrap().timezone,
            Some(chrono_tz::Asia::Tokyo)
        );
    }
}
