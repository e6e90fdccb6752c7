//! The send pipeline through each vendor's fake, and through a failover hop: the platform's
//! first email vendor down, the second sending.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use axum::{Json, Router, http::StatusCode, routing::post};
use serde_json::json;
use tokio::net::TcpListener;
use uuid::Uuid;

use super::{Row, Service, send_pipeline};

/// What each fake vendor took.
#[derive(Default)]
struct Taken {
    sendgrid: AtomicU64,
    postmark: AtomicU64,
    mailgun: AtomicU64,
    twilio: AtomicU64,
    telnyx: AtomicU64,
    /// Answers from a SendGrid that is down.
    sendgrid_refused: AtomicU64,
}

const MAILGUN_DOMAIN: &str = "mg.bench.test";
const TWILIO_SID: &str = "AC00000000000000000000000000000000";

/// One loopback server answering as every vendor does when it accepts, except SendGrid when
/// `sendgrid_down`: then it answers 503.
async fn fake_vendors(sendgrid_down: bool) -> (String, Arc<Taken>) {
    let taken = Arc::new(Taken::default());
    let counter = |pick: fn(&Taken) -> &AtomicU64| {
        let taken = taken.clone();
        move || pick(&taken).fetch_add(1, Ordering::Relaxed)
    };
    let sendgrid = counter(if sendgrid_down {
        |t| &t.sendgrid_refused
    } else {
        |t| &t.sendgrid
    });
    let (postmark, mailgun, twilio, telnyx) = (
        counter(|t| &t.postmark),
        counter(|t| &t.mailgun),
        counter(|t| &t.twilio),
        counter(|t| &t.telnyx),
    );
    let app = Router::new()
        .route(
            "/v3/mail/send",
            post(move || {
                let n = sendgrid();
                async move {
                    if sendgrid_down {
                        (StatusCode::SERVICE_UNAVAILABLE, [("x-message-id", String::new())])
                    } else {
                        (StatusCode::ACCEPTED, [("x-message-id", format!("sg{n}"))])
                    }
                }
            }),
        )
        .route(
            "/email",
            post(move || {
                let n = postmark();
                async move { Json(json!({"MessageID": format!("pm{n}"), "ErrorCode": 0, "Message": "OK"})) }
            }),
        )
        .route(
            &format!("/v3/{MAILGUN_DOMAIN}/messages"),
            post(move || {
                let n = mailgun();
                async move { Json(json!({"id": format!("<mg{n}@{MAILGUN_DOMAIN}>"), "message": "Queued. Thank you."})) }
            }),
        )
        .route(
            &format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"),
            post(move || {
                let n = twilio();
                async move { (StatusCode::CREATED, Json(json!({"sid": format!("SM{n:032}")}))) }
            }),
        )
        .route(
            "/v2/messages",
            post(move || {
                let n = telnyx();
                async move { Json(json!({"data": {"id": format!("tx{n}"), "to": [{"status": "queued"}]}})) }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (uri, taken)
}

/// Every vendor's platform account pointing at `fake`, tried in the given orders.
fn vendor_env<'a>(fake: &'a str, email: &'a str, sms: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("POSTMARK_SERVER_TOKEN", "bench-postmark-token"),
        ("POSTMARK_API_BASE_URL", fake),
        ("MAILGUN_API_KEY", "key-bench"),
        ("MAILGUN_DOMAIN", MAILGUN_DOMAIN),
        ("MAILGUN_API_BASE_URL", fake),
        ("TWILIO_ACCOUNT_SID", TWILIO_SID),
        ("TWILIO_AUTH_TOKEN", "00000000000000000000000000000000"),
        ("TWILIO_PHONE_NUMBER", "+15550000000"),
        ("TWILIO_API_BASE_URL", fake),
        ("TELNYX_API_KEY", "KEYbench"),
        ("TELNYX_PHONE_NUMBER", "+15550001111"),
        ("TELNYX_API_BASE_URL", fake),
        ("EMAIL_SYSTEM_PROVIDERS", email),
        ("SMS_SYSTEM_PROVIDERS", sms),
    ]
}

/// One measured configuration: the channel sent, the failover orders, and which fake's count
/// proves every message arrived.
struct Run {
    name: &'static str,
    channel: &'static str,
    email: &'static str,
    sms: &'static str,
    taken_by: fn(&Taken) -> &AtomicU64,
}

/// One service per configuration, each measured on a fresh database.
pub async fn send_pipelines(webhook_key: &str, rows: &mut Vec<Row>) {
    let (fake, taken) = fake_vendors(false).await;
    let runs = [
        Run {
            name: "send pipeline, SendGrid fake",
            channel: "email",
            email: "sendgrid",
            sms: "twilio",
            taken_by: |t| &t.sendgrid,
        },
        Run {
            name: "send pipeline, Postmark fake",
            channel: "email",
            email: "postmark",
            sms: "twilio",
            taken_by: |t| &t.postmark,
        },
        Run {
            name: "send pipeline, Mailgun fake",
            channel: "email",
            email: "mailgun",
            sms: "twilio",
            taken_by: |t| &t.mailgun,
        },
        Run {
            name: "send pipeline, Twilio fake (SMS)",
            channel: "sms",
            email: "sendgrid",
            sms: "twilio",
            taken_by: |t| &t.twilio,
        },
        Run {
            name: "send pipeline, Telnyx fake (SMS)",
            channel: "sms",
            email: "sendgrid",
            sms: "telnyx",
            taken_by: |t| &t.telnyx,
        },
    ];
    let mut sendgrid_rate = 0.0;
    for run in runs {
        let service = start(&fake, webhook_key, run.email, run.sms).await;
        let rate = send_pipeline(&service, run.channel, (run.taken_by)(&taken)).await;
        if run.email == "sendgrid" && run.channel == "email" {
            sendgrid_rate = rate;
        }
        rows.push(Row {
            name: run.name,
            value: rate,
            unit: "msg/s",
            baseline_name: "SendGrid fake, same run",
            baseline: sendgrid_rate,
        });
        service.stop().await;
    }

    // SendGrid down: its circuit opens after three failures and Postmark sends the rest.
    let (down, taken) = fake_vendors(true).await;
    let service = start(&down, webhook_key, "sendgrid,postmark", "twilio").await;
    let rate = send_pipeline(&service, "email", &taken.postmark).await;
    let hops: i64 = sqlx::query_scalar(
        "select count(*) from outreach_logs where fallback_reason like 'system SendGrid%'",
    )
    .fetch_one(&service.pool)
    .await
    .unwrap();
    assert_eq!(hops, super::MESSAGES, "every message records its hop");
    assert!(taken.sendgrid_refused.load(Ordering::Relaxed) >= 3);
    rows.push(Row {
        name: "send pipeline, SendGrid down -> Postmark",
        value: rate,
        unit: "msg/s",
        baseline_name: "SendGrid fake, same run",
        baseline: sendgrid_rate,
    });
    service.stop().await;
}

async fn start(fake: &str, webhook_key: &str, email: &str, sms: &str) -> Service {
    let database = format!("dentite_bench_{}", Uuid::new_v4().simple());
    Service::start_on(database, fake, webhook_key, &vendor_env(fake, email, sms)).await
}
