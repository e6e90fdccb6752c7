//! A TCP proxy in front of Postgres that a test can cut and restore, to stand in for a database
//! outage without stopping the shared server.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::helpers::{TestApp, TestEnv, server_url};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

pub struct PgProxy {
    pub addr: SocketAddr,
    down: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
}

impl PgProxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let (cut, _) = watch::channel(0u64);
        let (accept_down, accept_cut) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if accept_down.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let mut cut = accept_cut.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self { addr, down, cut }
    }

    /// Drops every open connection and refuses new ones.
    pub fn go_down(&self) {
        self.down.store(true, Ordering::SeqCst);
        self.cut.send_modify(|generation| *generation += 1);
    }

    pub fn come_back(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

/// An app whose database connection runs through a proxy the test can cut.
pub async fn app_behind_proxy(env: TestEnv) -> (TestApp, PgProxy) {
    let server = url::Url::parse(&server_url()).unwrap();
    let host = server.host_str().unwrap().replace("localhost", "127.0.0.1");
    let proxy = PgProxy::start(
        format!("{host}:{}", server.port().unwrap_or(5432))
            .parse()
            .unwrap(),
    )
    .await;
    let mut url = server.clone();
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.addr.port())).unwrap();
    url.set_path(&format!("/dentite_test_{}", uuid::Uuid::new_v4().simple()));
    (
        env.var("DATABASE_URL", url.to_string()).spawn().await,
        proxy,
    )
}
