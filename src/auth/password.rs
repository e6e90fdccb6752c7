//! Argon2id password hashes.
//!
//! A hash takes tens of milliseconds of CPU and 19 MiB of memory (the default Argon2id cost), so
//! it runs on the blocking pool (on the async runtime it would stall every request on that worker
//! thread), and no more than one hash per core runs at once: unbounded, a storm of logins costs
//! 19 MiB each and gigabytes in all. A few more logins may wait their turn; beyond that, logins are
//! refused at once with [`HashError::Busy`] rather than queued without bound.

use std::sync::{Arc, LazyLock};

use anyhow::Context;
use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every hashing slot and every waiting place is taken: try again in a moment.
    #[error("too many logins are being checked right now")]
    Busy,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The process's hashing capacity: it is CPU and memory, which the whole process shares.
struct Limits {
    running: Arc<Semaphore>,
    admitted: Arc<Semaphore>,
}

/// Hashes waiting for a slot, per slot: enough to absorb a burst of real logins, few enough that
/// the wait stays well under a second.
const WAITING_PER_SLOT: usize = 8;

static LIMITS: LazyLock<Limits> = LazyLock::new(|| {
    let slots = std::thread::available_parallelism().map_or(1, usize::from);
    Limits {
        running: Arc::new(Semaphore::new(slots)),
        admitted: Arc::new(Semaphore::new(slots * (1 + WAITING_PER_SLOT))),
    }
});

/// Admission (refused at once when full), then a running slot (waited for).
async fn slot(shed: bool) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), HashError> {
    let admitted = if shed {
        LIMITS
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| HashError::Busy)?
    } else {
        LIMITS
            .admitted
            .clone()
            .acquire_owned()
            .await
            .context("hashing limiter closed")?
    };
    let running = LIMITS
        .running
        .clone()
        .acquire_owned()
        .await
        .context("hashing limiter closed")?;
    Ok((admitted, running))
}

/// Hashes a new password; waits for capacity rather than refusing (operators and account set-up
/// call it, not anonymous logins).
pub async fn hash_password(password: String) -> anyhow::Result<String> {
    let permits = slot(false).await.map_err(|e| anyhow::anyhow!(e))?;
    tokio::task::spawn_blocking(move || {
        let _permits = permits;
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
    })
    .await
    .context("password hashing task panicked")?
}

/// Verifies `password` against `stored`; with no stored hash it verifies against a dummy hash of
/// the same cost, so that the time taken does not tell whether the account exists.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, HashError> {
    let permits = slot(true).await?;
    tokio::task::spawn_blocking(move || {
        let _permits = permits;
        matches(password.as_bytes(), stored.as_deref(), |pw, hash| {
            Argon2::default().verify_password(pw, hash).is_ok()
        })
    })
    .await
    .context("password verification task panicked")?
    .map_err(HashError::Internal)
}

/// Runs `verify` exactly once whether or not there is a stored hash, and only then looks at
/// which case it was: deciding first would skip the work for unknown accounts.
fn matches(
    password: &[u8],
    stored: Option<&str>,
    verify: impl Fn(&[u8], &PasswordHash) -> bool,
) -> anyhow::Result<bool> {
    let hash = stored.unwrap_or(&DUMMY_HASH);
    let parsed = PasswordHash::new(hash)
        .map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
    let verified = verify(password, &parsed);
    Ok(stored.is_some() && verified)
}

/// A hash, with the same parameters as real ones, of a random password nobody knows.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| {
    let unknowable = hex::encode(rand::random::<[u8; 16]>());
    Argon2::default()
        .hash_password(unknowable.as_bytes())
        .expect("argon2 hashes any password with default parameters")
        .to_string()
});

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }

    #[test]
    fn an_unknown_account_pays_for_one_full_verification_like_a_known_one() {
        let calls = AtomicUsize::new(0);
        let counting = |_: &[u8], _: &PasswordHash| {
            calls.fetch_add(1, Ordering::SeqCst);
            true
        };
        assert!(!matches(b"guess", None, counting).unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches(b"guess", Some(&DUMMY_HASH), counting).unwrap());
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_dummy_hash_costs_what_a_real_hash_costs() {
        let real = Argon2::default().hash_password(b"pw").unwrap().to_string();
        let params = |h: &str| {
            let parsed = PasswordHash::new(h).unwrap();
            (parsed.algorithm.to_string(), parsed.params.to_string())
        };
        assert_eq!(params(&DUMMY_HASH), params(&real));
    }
}
