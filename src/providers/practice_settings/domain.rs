//! The email domain routes, whichever vendor authenticates the domain: the chosen email vendor's
//! own sending domain when it has one (a Mailgun domain, read and verified here, chosen and
//! removed with the account itself), else the platform vendor's domain authentication in the
//! practice's own account of it (SendGrid's: set up, read, verify, delete).

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{EmailRoutes, ProviderFailure, channel::module};
use crate::{
    auth::PracticeCaller, messaging::settings::PracticeMessagingConfig,
    providers::practice_settings::SettingsContext, types::FieldErrors,
};

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("the request has invalid fields")]
    Invalid(FieldErrors),
    #[error(
        "configure a custom SendGrid API key first (PUT /api/practice-settings/messaging/email with provider \
         custom_sendgrid and sendgridApiKey): the domain is authenticated in the practice's own SendGrid account"
    )]
    NoApiKey,
    #[error(
        "{0} is already set up; delete it first (DELETE /api/practice-settings/messaging/email/domain) to authenticate another domain"
    )]
    OtherDomain(String),
    #[error("no email domain is set up")]
    NotSetUp,
    /// The practice's own Mailgun domain is chosen with its account, not set up or deleted here.
    #[error(
        "the practice sends through its own Mailgun domain, which is chosen with PUT /api/practice-settings/messaging/email          (mailgunDomain) and removed with DELETE /api/practice-settings/messaging/email; here it can be read and verified"
    )]
    MailgunDomain,
    #[error("the practice no longer exists")]
    UnknownPractice,
    #[error("{}", .0.unreadable_message())]
    UnreadableCredential(crate::crypto::CredentialField),
    #[error(transparent)]
    Provider(#[from] ProviderFailure),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}
/// A practice's domain authentication, as settings and status pages show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainState {
    pub domain: String,
    pub subdomain: Option<String>,
    pub verified: bool,
    /// When SendGrid last validated the records (on request or in the background).
    pub last_checked_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
}
/// One DNS record, verbatim as the vendor gave it, with its last validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DnsRecordState {
    /// SendGrid's name for it: `mail_cname`, `dkim1`, `dkim2`.
    pub name: String,
    /// Lowercase, as SendGrid sends it: `cname`.
    #[serde(rename = "type")]
    pub record_type: String,
    pub host: String,
    pub data: String,
    pub valid: bool,
    /// Why the record failed validation, in SendGrid's words.
    #[serde(default)]
    pub reason: Option<String>,
}
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainView {
    #[serde(flatten)]
    pub state: DomainState,
    /// SendGrid's id of the domain authentication; absent for a Mailgun domain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sendgrid_domain_id: Option<i64>,
    /// Mailgun's state of the domain (`active`, `unverified`, `disabled`); absent for SendGrid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mailgun_state: Option<String>,
    pub records: Vec<DnsRecordState>,
    /// What to do in a DNS panel, step by step.
    pub instructions: Vec<String>,
}
/// `POST /email/domain`.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct DomainSetupRequest {
    /// The domain mail is sent from, without scheme or path: `smiledental.com`.
    #[schema(required = true, nullable = false, value_type = String, example = "smiledental.com")]
    pub domain: Option<String>,
    /// The return-path label SendGrid uses (a single DNS label such as `em`); SendGrid picks one
    /// when omitted.
    pub subdomain: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetUpOutcome {
    Created,
    /// The practice's SendGrid account already authenticated this domain; that one is used.
    Adopted,
}
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainDeletion {
    pub domain: String,
    /// SendGrid no longer had it (removed in its dashboard, say); it is forgotten here all the same.
    pub already_gone_at_sendgrid: bool,
}

/// A vendor's sending domain, as the domain routes reach it.
pub trait SendingDomain: Sync {
    fn view<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        config: &'a PracticeMessagingConfig,
    ) -> BoxFuture<'a, Result<DomainView, DomainError>>;
    /// Has the vendor check the domain's records now. `user_id` is the caller, or `None` for a
    /// background re-check.
    fn verify<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        config: &'a PracticeMessagingConfig,
        user_id: Option<Uuid>,
    ) -> BoxFuture<'a, Result<DomainView, DomainError>>;
    fn set_up<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        caller: &'a PracticeCaller,
        config: &'a PracticeMessagingConfig,
        request: DomainSetupRequest,
    ) -> BoxFuture<'a, Result<(DomainView, SetUpOutcome), DomainError>>;
    fn delete<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        caller: &'a PracticeCaller,
        config: &'a PracticeMessagingConfig,
    ) -> BoxFuture<'a, Result<DomainDeletion, DomainError>>;
}

/// The practice's configuration and the sending domain its routes reach.
async fn chosen(
    ctx: &SettingsContext,
    practice_id: Uuid,
) -> Result<(PracticeMessagingConfig, &'static dyn SendingDomain), DomainError> {
    let config = PracticeMessagingConfig::load(&ctx.pool, practice_id)
        .await?
        .ok_or(DomainError::UnknownPractice)?;
    let domain = module::<EmailRoutes>(Some(config.email_provider.as_str()))
        .sending_domain()
        .or_else(|| module::<EmailRoutes>(None).sending_domain())
        .expect("the platform's email vendor authenticates domains");
    Ok((config, domain))
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn view(ctx: &SettingsContext, practice_id: Uuid) -> Result<DomainView, DomainError> {
    let (config, domain) = chosen(ctx, practice_id).await?;
    domain.view(ctx, &config).await
}

#[tracing::instrument(skip_all, fields(practice_id = %practice_id))]
pub async fn verify(
    ctx: &SettingsContext,
    practice_id: Uuid,
    user_id: Option<Uuid>,
) -> Result<DomainView, DomainError> {
    let (config, domain) = chosen(ctx, practice_id).await?;
    domain.verify(ctx, &config, user_id).await
}

#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn set_up(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    request: DomainSetupRequest,
) -> Result<(DomainView, SetUpOutcome), DomainError> {
    let (config, domain) = chosen(ctx, caller.practice_id).await?;
    domain.set_up(ctx, caller, &config, request).await
}

#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn delete(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
) -> Result<DomainDeletion, DomainError> {
    let (config, domain) = chosen(ctx, caller.practice_id).await?;
    domain.delete(ctx, caller, &config).await
}
