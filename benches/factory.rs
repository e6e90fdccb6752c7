//! Factory lookups (cache hit; miss with the database read and decryption) and credential
//! encryption. Needs the local Postgres (or DATABASE_URL's server); makes and drops its own
//! database. Run: `cargo bench --bench factory`.

use std::{collections::HashMap, hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use dentite::{
    config::Settings,
    crypto::{CredentialField, Keyring},
    db,
    messaging::{Channel, MessagingServiceFactory},
};
use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

struct Fixture {
    factory: Arc<MessagingServiceFactory>,
    keyring: Arc<Keyring>,
    practice: Uuid,
    server_url: String,
    database: String,
}

fn server_url() -> String {
    let mut url = url::Url::parse(
        &std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@localhost:5432/postgres".into()),
    )
    .expect("DATABASE_URL parses");
    url.set_path("/postgres");
    url.to_string()
}

async fn fixture() -> Fixture {
    dentite::install_crypto_provider();
    let database = format!("dentite_bench_{}", Uuid::new_v4().simple());
    let mut url = url::Url::parse(&server_url()).unwrap();
    url.set_path(&format!("/{database}"));
    let vars: HashMap<String, String> = [
        ("DATABASE_URL", url.to_string()),
        ("ENCRYPTION_KEY", "11".repeat(32)),
        ("AUTH_SIGNING_KEY", "22".repeat(32)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let settings = Settings::load(&vars, std::path::Path::new("/nonexistent")).unwrap();
    let options = db::connect_options(&settings.database_url).unwrap();
    db::create_database_if_missing(&options).await.unwrap();
    let pool = db::pool(options, 4).await.unwrap();
    db::migrate(&pool).await.unwrap();
    let keyring = Arc::new(Keyring::new(&settings.keys));
    let practice = dentite::messaging::settings::create(&pool, "Bench Dental")
        .await
        .unwrap();
    let key = keyring.encrypt(
        "SG.bench-key.secret",
        practice,
        CredentialField::SendGridApiKey,
    );
    sqlx::query(
        "update practices set email_provider = 'custom_sendgrid', email_domain_verified = true where id = $1",
    )
    .bind(practice)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "insert into practice_accounts (practice_id, vendor, settings, secrets)
         values ($1, 'sendgrid', '{\"fromEmail\": \"desk@bench.test\"}', jsonb_build_object('sendgrid_api_key', $2::text))",
    )
    .bind(practice)
    .bind(key)
    .execute(&pool)
    .await
    .unwrap();
    let factory = Arc::new(
        MessagingServiceFactory::new(
            &settings,
            pool,
            keyring.clone(),
            dentite::providers::registry(),
        )
        .unwrap(),
    );
    Fixture {
        factory,
        keyring,
        practice,
        server_url: server_url(),
        database,
    }
}

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let fixture = runtime.block_on(fixture());

    let mut group = c.benchmark_group("factory");
    runtime
        .block_on(fixture.factory.route(fixture.practice, Channel::Email))
        .unwrap();
    group.bench_function("lookup_hit", |b| {
        b.to_async(&runtime).iter(|| async {
            black_box(
                fixture
                    .factory
                    .route(fixture.practice, Channel::Email)
                    .await
                    .unwrap(),
            )
        })
    });
    group.bench_function("lookup_miss_with_read_and_decrypt", |b| {
        b.to_async(&runtime).iter(|| async {
            fixture.factory.invalidate(fixture.practice).await;
            black_box(
                fixture
                    .factory
                    .route(fixture.practice, Channel::Email)
                    .await
                    .unwrap(),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("credentials");
    let envelope = fixture.keyring.encrypt(
        "SG.bench-key.secret",
        fixture.practice,
        CredentialField::SendGridApiKey,
    );
    group.bench_function("encrypt", |b| {
        b.iter(|| {
            black_box(fixture.keyring.encrypt(
                "SG.bench-key.secret",
                fixture.practice,
                CredentialField::SendGridApiKey,
            ))
        })
    });
    group.bench_function("decrypt", |b| {
        b.iter(|| {
            black_box(
                fixture
                    .keyring
                    .decrypt(&envelope, fixture.practice, CredentialField::SendGridApiKey)
                    .unwrap(),
            )
        })
    });
    group.finish();

    runtime.block_on(async {
        let mut admin = PgConnection::connect(&fixture.server_url).await.unwrap();
        let statement = format!(
            "drop database if exists \"{}\" with (force)",
            fixture.database
        );
        admin.execute(sqlx::AssertSqlSafe(statement)).await.unwrap();
    });
}

criterion_group!(factory, benches);
criterion_main!(factory);
