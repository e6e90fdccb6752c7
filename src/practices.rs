//! Practices: the tenants.

use sqlx::PgPool;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum PracticeError {
    #[error("a practice name must be 1 to 200 characters")]
    InvalidName,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

pub async fn create(pool: &PgPool, name: &str) -> Result<Uuid, PracticeError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(PracticeError::InvalidName);
    }
    let id = Uuid::new_v4();
    sqlx::query("insert into practices (id, name) values ($1, $2)")
        .bind(id)
        .bind(name)
        .execute(pool)
        .await?;
    Ok(id)
}
