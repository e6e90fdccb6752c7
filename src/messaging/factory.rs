//! MessagingServiceFactory: for a practice and a channel, the accounts that may send, built once
//! and cached together with the practice's stored configuration.
//!
//! A cached entry holds decrypted clients and serves the settings page, so a change must reach
//! every instance at once: a trigger on `practices` notifies `SETTINGS_CHANNEL` when any change
//! commits and each instance's listener invalidates its cache; the TTL bounds staleness should a
//! notification be missed. Invalidations are stamped, so a read of the row that began before an
//! invalidation never lands in the cache after it.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use moka::future::Cache;
use secrecy::SecretString;
use sqlx::{PgPool, postgres::PgListener};
use tokio::sync::watch;
use uuid::Uuid;

use super::{
    Accepted, Channel, OutgoingMessage, ProviderError, ProviderKind,
    circuit::CircuitBreakers,
    provider::{
        Account, MessageSender, PracticeAccounts, ProviderContext, Secrets, Vendor,
        registry::Registry, urls::OurUrls,
    },
    settings::{PracticeMessagingConfig, SETTINGS_CHANNEL},
};
use crate::{
    config::Settings,
    crypto::{CredentialField, CryptoError, Keyring},
};

/// One account able to send one channel, knowing which provider it is.
pub struct Sender {
    kind: ProviderKind,
    /// The provider account whose rate limit this sender draws on; `None` for the outbox.
    account_key: Option<String>,
    transport: Box<dyn MessageSender>,
}

impl From<Account> for Sender {
    fn from(account: Account) -> Self {
        Self {
            kind: account.kind,
            account_key: account.account_key,
            transport: account.sender,
        }
    }
}

impl Sender {
    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn account_key(&self) -> Option<&str> {
        self.account_key.as_deref()
    }

    pub async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, ProviderError> {
        self.transport.send(message).await
    }
}

/// The accounts for one practice and channel.
pub struct Route {
    pub practice_id: Uuid,
    pub channel: Channel,
    /// The practice's own account, when chosen and complete.
    pub custom: Option<Arc<Sender>>,
    /// The platform's accounts, in failover order; never empty (the outbox when the platform
    /// has no vendor for the channel).
    pub system: Arc<[Arc<Sender>]>,
    pub fallback_enabled: bool,
    /// Why a chosen custom account is not used (incomplete, unverified).
    pub custom_blocker: Option<&'static str>,
    /// The chosen custom account when only a successful test send is missing: test sends go
    /// through it, nothing else does.
    pub awaiting_test: Option<Arc<Sender>>,
}

impl Route {
    /// The sender that will be tried first (ignoring the health circuits).
    pub fn primary(&self) -> &Arc<Sender> {
        self.custom.as_ref().unwrap_or(&self.system[0])
    }

    /// The platform's first account: the one a practice on the system accounts sends through
    /// while it is healthy.
    pub fn first_system(&self) -> &Arc<Sender> {
        &self.system[0]
    }
}

/// What one instance knows about a practice: its stored row and each channel's accounts.
struct PracticeEntry {
    /// The invalidation clock when the row was read.
    read_at: u64,
    config: Arc<PracticeMessagingConfig>,
    /// Per channel, so that an undecryptable credential of one channel does not stop the other.
    email: Result<Arc<Route>, FactoryError>,
    sms: Result<Arc<Route>, FactoryError>,
}

impl PracticeEntry {
    fn route(&self, channel: Channel) -> Result<Arc<Route>, FactoryError> {
        match channel {
            Channel::Email => self.email.clone(),
            Channel::Sms => self.sms.clone(),
        }
    }
}

/// Stamps every invalidation with a clock value, so an entry whose row was read before its
/// practice's latest invalidation is recognised as stale even when it reached the cache after
/// the invalidation ran (a read in flight while the change committed).
struct Invalidations {
    clock: AtomicU64,
    /// The clock at each practice's latest invalidation. Kept for twice the cache's TTL: longer
    /// than any entry read before it can live.
    latest: moka::sync::Cache<Uuid, u64>,
    /// The clock at the latest invalidation of every practice.
    all: AtomicU64,
}

impl Invalidations {
    fn new(ttl: Duration) -> Self {
        Self {
            clock: AtomicU64::new(0),
            latest: moka::sync::Cache::builder()
                .time_to_live(ttl.saturating_mul(2))
                .build(),
            all: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.clock.load(Ordering::SeqCst)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn record(&self, practice_id: Uuid) {
        self.latest.insert(practice_id, self.tick());
    }

    fn record_all(&self) {
        self.all.fetch_max(self.tick(), Ordering::SeqCst);
    }

    fn is_stale(&self, practice_id: Uuid, read_at: u64) -> bool {
        self.all.load(Ordering::SeqCst) > read_at
            || self.latest.get(&practice_id).is_some_and(|at| at > read_at)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FactoryError {
    #[error("practice {0} does not exist")]
    UnknownPractice(Uuid),
    #[error("could not read the practice's settings: {0}")]
    Database(Arc<sqlx::Error>),
    #[error("stored credential {} of practice {practice_id} cannot be decrypted: {source}", field.stored_name())]
    Decrypt {
        practice_id: Uuid,
        field: CredentialField,
        source: CryptoError,
    },
}

pub struct MessagingServiceFactory {
    pool: PgPool,
    keyring: Arc<Keyring>,
    providers: ProviderContext,
    /// The vendors, which build the practices' own accounts.
    registry: Registry,
    system_email: Arc<[Arc<Sender>]>,
    system_sms: Arc<[Arc<Sender>]>,
    cache: Cache<Uuid, Arc<PracticeEntry>>,
    invalidations: Invalidations,
    builds: AtomicU64,
    pub circuits: CircuitBreakers,
}

/// Enough for every active practice on one instance; beyond it the least used go.
const CACHE_CAPACITY: u64 = 50_000;

impl MessagingServiceFactory {
    pub fn new(
        settings: &Settings,
        pool: PgPool,
        keyring: Arc<Keyring>,
        registry: Registry,
    ) -> anyhow::Result<Self> {
        let providers = ProviderContext {
            http: super::provider::error::http_client(settings.provider_timeout)?,
            settings: Arc::new(settings.clone()),
            pool: pool.clone(),
            urls: OurUrls::new(settings.webhook_base_url.clone()),
        };
        let system = |channel| -> Arc<[Arc<Sender>]> {
            registry
                .system_accounts(&providers, channel)
                .into_iter()
                .map(|account| Arc::new(account.into()))
                .collect()
        };
        let (system_email, system_sms) = (system(Channel::Email), system(Channel::Sms));
        Ok(Self {
            cache: Cache::builder()
                .max_capacity(CACHE_CAPACITY)
                .time_to_live(settings.client_cache_ttl)
                .build(),
            invalidations: Invalidations::new(settings.client_cache_ttl),
            pool,
            keyring,
            providers,
            registry,
            system_email,
            system_sms,
            builds: AtomicU64::new(0),
            circuits: CircuitBreakers::new(settings.circuit_cool_down),
        })
    }

    /// The accounts for this practice and channel, from the cache or built once however many
    /// callers ask at the same moment.
    pub async fn route(
        &self,
        practice_id: Uuid,
        channel: Channel,
    ) -> Result<Arc<Route>, FactoryError> {
        self.entry(practice_id).await?.route(channel)
    }

    /// The practice's stored configuration (secrets still encrypted), from the same cache.
    pub async fn config(
        &self,
        practice_id: Uuid,
    ) -> Result<Arc<PracticeMessagingConfig>, FactoryError> {
        Ok(self.entry(practice_id).await?.config.clone())
    }

    /// Drops what this instance cached about a practice.
    pub async fn invalidate(&self, practice_id: Uuid) {
        self.invalidations.record(practice_id);
        self.cache.invalidate(&practice_id).await;
    }

    fn invalidate_all(&self) {
        self.invalidations.record_all();
        self.cache.invalidate_all();
    }

    async fn entry(&self, practice_id: Uuid) -> Result<Arc<PracticeEntry>, FactoryError> {
        loop {
            let entry = self
                .cache
                .try_get_with(practice_id, self.build(practice_id))
                .await
                .map_err(|e| (*e).clone())?;
            if !self.invalidations.is_stale(practice_id, entry.read_at) {
                return Ok(entry);
            }
            self.cache.invalidate(&practice_id).await;
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// How many times this instance has read a practice and built its routes (cache misses that
    /// did the work).
    pub fn builds(&self) -> u64 {
        self.builds.load(Ordering::Relaxed)
    }

    /// The platform's accounts of a channel, in failover order.
    pub fn system_senders(&self, channel: Channel) -> &Arc<[Arc<Sender>]> {
        match channel {
            Channel::Email => &self.system_email,
            Channel::Sms => &self.system_sms,
        }
    }

    /// The webhook route of `vendor` for a practice's own account of it.
    pub fn practice_webhook_url(&self, vendor: Vendor, practice_id: Uuid) -> String {
        self.providers
            .urls
            .webhook(vendor.as_str(), Some(practice_id))
    }

    /// What the vendors build their clients from: the shared HTTP client, configuration, the
    /// database and our URLs.
    pub fn providers(&self) -> &ProviderContext {
        &self.providers
    }

    /// Why the practice's chosen own account of a channel cannot send yet, if it cannot; `None`
    /// when the platform's accounts are chosen.
    pub fn custom_blocker(
        &self,
        config: &PracticeMessagingConfig,
        channel: Channel,
    ) -> Option<&'static str> {
        let kind = config.chosen(channel);
        if !kind.is_custom() {
            return None;
        }
        self.registry
            .practice_accounts(kind.vendor())
            .and_then(|provider| provider.custom_blocker(config))
    }

    /// Our public URLs, as handed to providers.
    pub fn urls(&self) -> &OurUrls {
        &self.providers.urls
    }

    async fn build(&self, practice_id: Uuid) -> Result<Arc<PracticeEntry>, FactoryError> {
        self.builds.fetch_add(1, Ordering::Relaxed);
        let read_at = self.invalidations.now();
        let config = PracticeMessagingConfig::load(&self.pool, practice_id)
            .await
            .map_err(|e| FactoryError::Database(Arc::new(e)))?
            .ok_or(FactoryError::UnknownPractice(practice_id))?;
        Ok(Arc::new(PracticeEntry {
            read_at,
            email: self.build_route(&config, Channel::Email),
            sms: self.build_route(&config, Channel::Sms),
            config: Arc::new(config),
        }))
    }

    fn build_route(
        &self,
        config: &PracticeMessagingConfig,
        channel: Channel,
    ) -> Result<Arc<Route>, FactoryError> {
        let fallback_enabled = match channel {
            Channel::Email => config.email_fallback_enabled,
            Channel::Sms => config.sms_fallback_enabled,
        };
        let custom_blocker = self.custom_blocker(config, channel);
        let chosen = config.chosen(channel);
        let provider = self
            .registry
            .practice_accounts(chosen.vendor())
            .filter(|_| chosen.is_custom());
        let build = |provider: &dyn PracticeAccounts| {
            provider
                .custom_account(&self.providers, config, self)
                .map(|account| account.map(|account| Arc::new(Sender::from(account))))
        };
        let (custom, awaiting_test) = match provider {
            Some(provider) if custom_blocker.is_none() => (build(provider)?, None),
            Some(provider) if provider.awaits_test_send(config) => (None, build(provider)?),
            _ => (None, None),
        };
        Ok(Arc::new(Route {
            practice_id: config.id,
            channel,
            custom,
            system: self.system_senders(channel).clone(),
            fallback_enabled,
            custom_blocker,
            awaiting_test,
        }))
    }

    /// Invalidates this instance's cache whenever any instance changes a practice, reading from
    /// `listener`, which must already be listening on `SETTINGS_CHANNEL`. After a lost
    /// connection it listens again and then clears everything, since notifications sent while
    /// disconnected are lost. `listen_pool` gives the direct connection it listens on again.
    pub async fn listen_for_changes(
        self: Arc<Self>,
        listen_pool: PgPool,
        mut listener: PgListener,
        mut stop: watch::Receiver<bool>,
    ) {
        loop {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    notification = listener.try_recv() => match notification {
                        Ok(Some(n)) => match n.payload().parse::<Uuid>() {
                            Ok(practice_id) => self.invalidate(practice_id).await,
                            Err(_) => tracing::warn!(payload = n.payload(), "ignoring malformed settings notification"),
                        },
                        Ok(None) => {
                            tracing::warn!("the settings listener lost its connection; listening again");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "settings listener failed; listening again");
                            break;
                        }
                    }
                }
            }
            // Its pooled connection must go back first: `PgPool::close` waits for it.
            drop(listener);
            listener = loop {
                match crate::db::listen(&listen_pool, SETTINGS_CHANNEL).await {
                    Ok(listener) => break listener,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not listen for settings changes; retrying");
                        if wait_or_stop(&mut stop, Duration::from_secs(2)).await {
                            return;
                        }
                    }
                }
            };
            // Only now that it listens again: a row read before this point may have missed a change.
            self.invalidate_all();
        }
    }
}

impl Secrets for MessagingServiceFactory {
    fn decrypt(
        &self,
        config: &PracticeMessagingConfig,
        field: CredentialField,
    ) -> Result<Option<SecretString>, FactoryError> {
        self.keyring
            .decrypt_if_present(config.envelope(field), config.id, field)
            .map_err(|source| FactoryError::Decrypt {
                practice_id: config.id,
                field,
                source,
            })
    }
}

/// Sleeps, or returns true at once if the service is stopping.
pub async fn wait_or_stop(stop: &mut watch::Receiver<bool>, duration: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        () = tokio::time::sleep(duration) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_read_before_its_practice_was_invalidated_is_stale_even_when_cached_after() {
        let invalidations = Invalidations::new(Duration::from_secs(3600));
        let (practice, other) = (Uuid::new_v4(), Uuid::new_v4());
        let read_at = invalidations.now();
        invalidations.record(practice);
        assert!(invalidations.is_stale(practice, read_at));
        assert!(!invalidations.is_stale(other, read_at));
        assert!(!invalidations.is_stale(practice, invalidations.now()));
    }

    #[test]
    fn invalidating_every_practice_makes_every_earlier_read_stale() {
        let invalidations = Invalidations::new(Duration::from_secs(3600));
        let practice = Uuid::new_v4();
        let read_at = invalidations.now();
        invalidations.record_all();
        assert!(invalidations.is_stale(practice, read_at));
        assert!(!invalidations.is_stale(practice, invalidations.now()));
    }
}
