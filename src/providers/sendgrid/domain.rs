//! SendGrid domain authentication in a practice's own SendGrid account (SendGrid's v3 whitelabel domains API): set it
//! up (or adopt the one the account already has), show the three CNAME records the practice must
//! publish, validate them on request and in the background, and remove it.
//!
//! A verified domain is what makes a custom SendGrid account usable
//! (SendGrid's `PracticeAccounts::custom_blocker`), so every change of `verified` is a settings
//! change: versioned, audited and announced to every instance.

use crate::audit::AuditAction;
use futures::future::BoxFuture;
use std::time::Duration;

use chrono::Utc;

use tokio::sync::watch;
use uuid::Uuid;

use super::{
    SendGridAccount,
    client::{DeleteOutcome, DnsRecord, SendGridClient},
};
use crate::{
    auth::PracticeCaller,
    messaging::{
        accounts,
        factory::wait_or_stop,
        settings::{self, DueDomainCheck, PracticeMessagingConfig, commit_change},
    },
    providers::Vendor,
    providers::practice_settings::ProviderFailure,
    providers::practice_settings::{
        SettingsContext,
        domain::{
            DnsRecordState, DomainDeletion, DomainError, DomainSetupRequest, DomainState,
            DomainView, SendingDomain, SetUpOutcome,
        },
    },
    types::DomainName,
    types::FieldErrors,
};

impl DomainState {
    /// The practice's SendGrid domain authentication, if it has one.
    pub fn from_config(config: &PracticeMessagingConfig) -> Option<Self> {
        let account = SendGridAccount::of(config);
        account.domain.map(|domain| Self {
            domain,
            subdomain: account.domain_subdomain,
            verified: config.email_domain_verified,
            last_checked_at: config.email_domain_last_checked_at,
            created_at: account.domain_created_at,
        })
    }
}

impl From<DnsRecord> for DnsRecordState {
    fn from(record: DnsRecord) -> Self {
        Self {
            name: record.name,
            record_type: record.record_type,
            host: record.host,
            data: record.data,
            valid: record.valid,
            reason: None,
        }
    }
}

impl DomainView {
    pub(crate) fn from_config(config: &PracticeMessagingConfig) -> Result<Self, DomainError> {
        let account = SendGridAccount::of(config);
        let (Some(state), Some(sendgrid_domain_id)) =
            (DomainState::from_config(config), account.domain_id)
        else {
            return Err(DomainError::NotSetUp);
        };
        let records = account.domain_records;
        let instructions = instructions(&state, &records);
        Ok(Self {
            state,
            sendgrid_domain_id: Some(sendgrid_domain_id),
            mailgun_state: None,
            records,
            instructions,
        })
    }
}

fn instructions(state: &DomainState, records: &[DnsRecordState]) -> Vec<String> {
    if state.verified {
        return vec![format!(
            "SendGrid has verified {}. Keep these records published: removing them stops the authentication.",
            state.domain
        )];
    }
    let mut steps = vec![format!(
        "Sign in where the DNS of {} is managed (your domain registrar or DNS host) and open its DNS records.",
        state.domain
    )];
    steps.extend(records.iter().map(|r| {
        format!(
            "Add a {} record with host (name) {} and value (points to) {}.",
            r.record_type.to_uppercase(),
            r.host,
            r.data
        )
    }));
    steps.extend([
        "Many DNS panels add the domain to the host by themselves: if yours does, enter the host without the domain at its end.".to_string(),
        "If your DNS host offers proxying (such as Cloudflare's orange cloud), turn it off for these records: SendGrid must see the CNAME records themselves.".to_string(),
        "DNS changes can take up to 48 hours to be seen. We check again every 15 minutes for 48 hours, then hourly for a week; press Verify to check at once.".to_string(),
    ]);
    steps
}

async fn load(
    ctx: &SettingsContext,
    practice_id: Uuid,
) -> Result<PracticeMessagingConfig, DomainError> {
    PracticeMessagingConfig::load(&ctx.pool, practice_id)
        .await?
        .ok_or(DomainError::UnknownPractice)
}

fn practice_client(
    ctx: &SettingsContext,
    config: &PracticeMessagingConfig,
) -> Result<SendGridClient, DomainError> {
    match crate::messaging::provider::Secrets::decrypt(
        &*ctx.messaging,
        config,
        crate::crypto::CredentialField::SendGridApiKey,
    ) {
        Ok(key) => key
            .map(|key| super::client(ctx.messaging.providers(), key))
            .ok_or(DomainError::NoApiKey),
        Err(crate::messaging::factory::FactoryError::Decrypt { field, .. }) => {
            Err(DomainError::UnreadableCredential(field))
        }
        Err(other) => {
            Err(anyhow::Error::new(other).context("the practice's SendGrid key cannot be used"))?
        }
    }
}

fn refused(
    field: Option<&'static str>,
) -> impl FnOnce(crate::messaging::ProviderError) -> DomainError {
    move |e| {
        ProviderFailure::classify(e, "SendGrid", field, "SendGrid refused the domain request")
            .into()
    }
}

/// Creates the authentication with automatic security in the practice's SendGrid account, or
/// adopts the one already there for the same domain, and stores it with its DNS records.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn set_up(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    config: &PracticeMessagingConfig,
    request: DomainSetupRequest,
) -> Result<(DomainView, SetUpOutcome), DomainError> {
    let mut errors = FieldErrors::new();
    let domain = errors.check(
        "domain",
        request
            .domain
            .ok_or("is required".to_string())
            .and_then(|d| DomainName::parse(&d)),
    );
    let subdomain = errors.check(
        "subdomain",
        request
            .subdomain
            .as_deref()
            .map(DomainName::parse_label)
            .transpose(),
    );
    let (Some(domain), Some(subdomain)) = (domain, subdomain) else {
        return Err(DomainError::Invalid(errors));
    };
    let practice_id = caller.practice_id;
    let client = practice_client(ctx, config)?;
    let stored = SendGridAccount::of(config);
    let same_subdomain = subdomain
        .as_deref()
        .is_none_or(|wanted| stored.domain_subdomain.as_deref() == Some(wanted));
    match &stored.domain {
        Some(stored) if !stored.eq_ignore_ascii_case(domain.as_str()) || !same_subdomain => {
            return Err(DomainError::OtherDomain(stored.clone()));
        }
        _ => {}
    }
    let found = client
        .find_domain(domain.as_str(), subdomain.as_deref())
        .await
        .map_err(refused(Some("domain")))?;
    let (authenticated, outcome) = match found {
        Some(existing) => (existing, SetUpOutcome::Adopted),
        None => {
            let created = client
                .create_domain(domain.as_str(), subdomain.as_deref())
                .await
                .map_err(refused(Some("domain")))?;
            (created, SetUpOutcome::Created)
        }
    };
    let records: Vec<DnsRecordState> = authenticated.records.into_iter().map(Into::into).collect();

    let mut tx = ctx.pool.begin().await?;
    let current = PracticeMessagingConfig::load_for_update(&mut tx, practice_id)
        .await?
        .ok_or(DomainError::UnknownPractice)?;
    let before = SendGridAccount::of(&current);
    // Setting up the stored authentication again keeps its age, and so its re-check schedule.
    let again = before.domain_id == Some(authenticated.id);
    let last_checked_at = current.email_domain_last_checked_at.filter(|_| again);
    let account = SendGridAccount {
        domain: Some(authenticated.domain),
        domain_subdomain: authenticated.subdomain,
        domain_id: Some(authenticated.id),
        domain_records: records,
        domain_created_at: Some(
            before
                .domain_created_at
                .filter(|_| again)
                .unwrap_or_else(Utc::now),
        ),
        ..before
    };
    accounts::update_settings(&mut *tx, practice_id, Vendor::Sendgrid, &account).await?;
    settings::record_email_domain(&mut tx, practice_id, authenticated.valid, last_checked_at)
        .await?;
    commit_change(
        tx,
        &ctx.messaging,
        practice_id,
        Some(caller.user_id),
        AuditAction::EmailDomainSetUp,
        &["domain"],
    )
    .await?;
    Ok((view(ctx, practice_id).await?, outcome))
}

async fn view(ctx: &SettingsContext, practice_id: Uuid) -> Result<DomainView, DomainError> {
    DomainView::from_config(&load(ctx, practice_id).await?)
}

/// Asks SendGrid to validate the records now and stores each record's result. `user_id` is the
/// caller, or `None` for the background re-check.
#[tracing::instrument(skip_all, fields(practice_id = %config.id))]
pub async fn verify(
    ctx: &SettingsContext,
    config: &PracticeMessagingConfig,
    user_id: Option<Uuid>,
) -> Result<DomainView, DomainError> {
    let practice_id = config.id;
    let domain_id = SendGridAccount::of(config)
        .domain_id
        .ok_or(DomainError::NotSetUp)?;
    let client = practice_client(ctx, config)?;
    let validation = client
        .validate_domain(domain_id)
        .await
        .map_err(refused(None))?;

    let mut tx = ctx.pool.begin().await?;
    let current = PracticeMessagingConfig::load_for_update(&mut tx, practice_id)
        .await?
        .ok_or(DomainError::UnknownPractice)?;
    let mut account = SendGridAccount::of(&current);
    // Deleted or replaced while SendGrid was validating: these results are about nothing we keep.
    if account.domain_id != Some(domain_id) {
        return Err(DomainError::NotSetUp);
    }
    for record in &mut account.domain_records {
        if let Some(result) = validation.results.iter().find(|r| r.name == record.name) {
            record.valid = result.valid;
            record.reason = result.reason.clone();
        }
    }

    accounts::update_settings(&mut *tx, practice_id, Vendor::Sendgrid, &account).await?;
    settings::record_email_domain(&mut tx, practice_id, validation.valid, Some(Utc::now())).await?;
    if current.email_domain_verified == validation.valid {
        tx.commit().await?;
    } else {
        // Whether custom SendGrid may send has changed.
        commit_change(
            tx,
            &ctx.messaging,
            practice_id,
            user_id,
            AuditAction::EmailDomainVerify,
            &["domainVerified"],
        )
        .await?;
    }
    view(ctx, practice_id).await
}

/// Removes the authentication at SendGrid, then here. A domain SendGrid no longer has is
/// removed here all the same: the goal state is reached.
#[tracing::instrument(skip_all, fields(practice_id = %caller.practice_id))]
pub async fn delete(
    ctx: &SettingsContext,
    caller: &PracticeCaller,
    config: &PracticeMessagingConfig,
) -> Result<DomainDeletion, DomainError> {
    let practice_id = caller.practice_id;
    let stored = SendGridAccount::of(config);
    let (Some(domain_id), Some(domain)) = (stored.domain_id, stored.domain) else {
        return Err(DomainError::NotSetUp);
    };
    let outcome = practice_client(ctx, config)?
        .delete_domain(domain_id)
        .await
        .map_err(refused(None))?;
    let mut tx = ctx.pool.begin().await?;
    let current = PracticeMessagingConfig::load_for_update(&mut tx, practice_id)
        .await?
        .ok_or(DomainError::UnknownPractice)?;
    let account = SendGridAccount::of(&current);
    // Guarded by the id: a domain set up again meanwhile is not the one SendGrid just removed.
    if account.domain_id == Some(domain_id) {
        accounts::update_settings(
            &mut *tx,
            practice_id,
            Vendor::Sendgrid,
            &account.without_domain(),
        )
        .await?;
        settings::record_email_domain(&mut tx, practice_id, false, None).await?;
        commit_change(
            tx,
            &ctx.messaging,
            practice_id,
            Some(caller.user_id),
            AuditAction::EmailDomainDelete,
            &["domain"],
        )
        .await?;
    }
    Ok(DomainDeletion {
        domain,
        already_gone_at_sendgrid: outcome == DeleteOutcome::AlreadyGone,
    })
}

/// How often the background loop looks for domains due a re-check; the schedule itself is in
/// [`recheck_due_domains`].
const RECHECK_TICK: Duration = Duration::from_secs(60);

/// Re-checks unverified domains until `stop`, so a practice that published its records sees
/// `verified` without pressing anything. Spawned by `Application::spawn_background`.
pub async fn recheck_unverified_domains(ctx: SettingsContext, mut stop: watch::Receiver<bool>) {
    loop {
        match recheck_due_domains(&ctx).await {
            Ok(0) => {}
            Ok(checked) => tracing::info!(checked, "re-checked unverified SendGrid domains"),
            Err(e) => tracing::warn!(error = %e, "could not look for SendGrid domains to re-check"),
        }
        if wait_or_stop(&mut stop, RECHECK_TICK).await {
            return;
        }
    }
}

/// One pass: validates every unverified domain whose turn has come and returns how many were
/// checked. The schedule follows how DNS changes land: every 15 minutes in the 48 hours after
/// set-up, then hourly for a week, then no more (Verify still works).
///
/// Each due domain is claimed ([`settings::claim_domain_checks`]) by moving its last check on
/// before it is checked, so however many instances run this loop, each domain is checked once per
/// turn. Counting the attempt up front also means a revoked key or an outage is retried on the
/// schedule, not every tick.
pub async fn recheck_due_domains(ctx: &SettingsContext) -> Result<usize, sqlx::Error> {
    let candidates: Vec<DueDomainCheck> = sqlx::query_as(
        "select p.id as practice_id, p.email_domain_last_checked_at as last_checked_at
         from practices p
         join practice_accounts a on a.practice_id = p.id and a.vendor = $1
         cross join lateral (select (a.settings ->> 'domainCreatedAt')::timestamptz as created_at) domain
         where a.settings ->> 'domainId' is not null and not p.email_domain_verified
           and domain.created_at > now() - interval '9 days'
           and (p.email_domain_last_checked_at is null
                or p.email_domain_last_checked_at <= now() - case
                    when domain.created_at > now() - interval '48 hours' then interval '15 minutes'
                    else interval '1 hour' end)
         order by p.email_domain_last_checked_at nulls first
         limit 100",
    )
    .bind(Vendor::Sendgrid)
    .fetch_all(&ctx.pool)
    .await?;
    let due = settings::claim_domain_checks(&ctx.pool, &candidates).await?;
    for &practice_id in &due {
        let checked = match load(ctx, practice_id).await {
            Ok(config) => verify(ctx, &config, None).await,
            Err(e) => Err(e),
        };
        if let Err(e) = checked {
            tracing::warn!(%practice_id, error = %e, "background re-check of a SendGrid domain failed");
        }
    }
    Ok(due.len())
}

impl SendingDomain for super::SendGrid {
    fn view<'a>(
        &'a self,
        _ctx: &'a SettingsContext,
        config: &'a PracticeMessagingConfig,
    ) -> BoxFuture<'a, Result<DomainView, DomainError>> {
        Box::pin(async move { DomainView::from_config(config) })
    }

    fn verify<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        config: &'a PracticeMessagingConfig,
        user_id: Option<Uuid>,
    ) -> BoxFuture<'a, Result<DomainView, DomainError>> {
        Box::pin(verify(ctx, config, user_id))
    }

    fn set_up<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        caller: &'a PracticeCaller,
        config: &'a PracticeMessagingConfig,
        request: DomainSetupRequest,
    ) -> BoxFuture<'a, Result<(DomainView, SetUpOutcome), DomainError>> {
        Box::pin(set_up(ctx, caller, config, request))
    }

    fn delete<'a>(
        &'a self,
        ctx: &'a SettingsContext,
        caller: &'a PracticeCaller,
        config: &'a PracticeMessagingConfig,
    ) -> BoxFuture<'a, Result<DomainDeletion, DomainError>> {
        Box::pin(delete(ctx, caller, config))
    }
}
