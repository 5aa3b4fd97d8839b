//! PgNotifier against a real PostgreSQL (`VOXGUARD_TEST_POSTGRES_URL`), one schema per test.

use std::time::Duration;

use super::*;
use crate::postgres::testing;

/// A generous bound for anything that should happen "soon" on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The next notice (skipping `Resync` when asked), within [`PATIENCE`].
async fn next_notice(receiver: &mut broadcast::Receiver<Notice>, skip_resync: bool) -> Notice {
    loop {
        let notice = tokio::time::timeout(PATIENCE, receiver.recv())
            .await
            .expect("a notice arrives")
            .expect("the channel stays open");
        if !(skip_resync && notice == Notice::Resync) {
            return notice;
        }
    }
}

#[test]
fn channels_are_identifiers_named_after_the_schema() {
    assert_eq!(channel_for_schema("public"), "voxguard_public");
    let long = "s".repeat(63);
    let channel = channel_for_schema(&long);
    assert_eq!(channel.len(), 63);
    assert!(channel.starts_with("voxguard_sss"));
    assert_ne!(channel, channel_for_schema(&format!("{}t", "s".repeat(62))));
    assert_eq!(channel, channel_for_schema(&long));
}

#[tokio::test]
async fn postgres_notices_reach_every_replica_and_survive_a_lost_connection() {
    let Some(database) = testing::database("notify").await else {
        return;
    };
    let one = PgNotifier::connect(&database).await.unwrap();
    let two = PgNotifier::connect(&database).await.unwrap();
    let mut on_one = one.subscribe();
    let mut on_two = two.subscribe();
    one.publish(Notice::Emergency).await.unwrap();
    assert_eq!(next_notice(&mut on_one, true).await, Notice::Emergency);
    assert_eq!(next_notice(&mut on_two, true).await, Notice::Emergency);

    // Both listening connections are terminated: both listen again and say so.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE pid <> pg_backend_pid() AND position($1 in query) > 0",
    )
    .bind(one.channel())
    .fetch_all(database.pool())
    .await
    .unwrap();
    assert_eq!(terminated, vec![true, true]);
    // First the loss (local: caches stop trusting themselves), then the new subscription.
    for on in [&mut on_one, &mut on_two] {
        assert_eq!(next_notice(on, false).await, Notice::Lost);
        assert_eq!(next_notice(on, false).await, Notice::Resync);
    }
    two.publish(Notice::Emergency).await.unwrap();
    assert_eq!(next_notice(&mut on_one, true).await, Notice::Emergency);
    assert_eq!(next_notice(&mut on_two, true).await, Notice::Emergency);
    // Session notices carry a digest; the local-only notice is never sent.
    let digest = "0123456789abcdef0123456789abcdef".to_string();
    one.publish(Notice::Session(digest.clone())).await.unwrap();
    assert_eq!(
        next_notice(&mut on_two, true).await,
        Notice::Session(digest)
    );
    one.publish(Notice::Sessions).await.unwrap();
    assert_eq!(next_notice(&mut on_two, true).await, Notice::Sessions);
    assert!(one.publish(Notice::Lost).await.is_err());
    assert_eq!(Notifier::backend(&one), "postgres");
    Notifier::ping(&one).await.unwrap();
    drop((one, two));
    database.drop_schema().await.unwrap();
}

/// A TCP forwarder to the test server whose existing connections can be frozen: they stay
/// open but carry nothing more either way (a half-open connection, as a dead NAT entry or a
/// partition leaves it); connections made after the freeze work.
struct Freezer {
    port: u16,
    cutoff: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Freezer {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cutoff = std::sync::Arc::new(AtomicU64::new(0));
        let shared = cutoff.clone();
        let task = tokio::spawn(async move {
            let mut next = 0u64;
            while let Ok((client, _)) = listener.accept().await {
                next += 1;
                let (id, cutoff) = (next, shared.clone());
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(client_read) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                        Box::new(server_write) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    ),
                    (Box::new(server_read), Box::new(client_write)),
                ] {
                    let cutoff = cutoff.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            if id <= cutoff.load(Ordering::SeqCst) {
                                // Frozen: hold both ends open, move nothing.
                                tokio::time::sleep(Duration::from_millis(50)).await;
                                continue;
                            }
                            let read = tokio::select! {
                                read = from.read(&mut buf) => read,
                                _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                            };
                            match read {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    });
                }
            }
        });
        Self { port, cutoff, task }
    }

    /// Freeze every connection made so far.
    fn freeze(&self, made_so_far: u64) {
        self.cutoff
            .store(made_so_far, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn a_silent_listening_connection_is_given_up_and_replaced() {
    let Some(database) = testing::database("notify_silent").await else {
        return;
    };
    let url = std::env::var(testing::URL_VAR).expect("the test database URL");
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let upstream: std::net::SocketAddr = format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], options.get_port())));
    let freezer = Freezer::start(upstream).await;
    let proxied = url.replacen(
        &format!(":{}/", options.get_port()),
        &format!(":{}/", freezer.port),
        1,
    );
    let through = PgDatabase::connect(&proxied, database.schema(), 2)
        .await
        .unwrap();
    let notifier = PgNotifier::connect(&through).await.unwrap();
    let mut notices = notifier.subscribe();
    // Everything made so far (the pool's connections and the listener's) goes silent.
    freezer.freeze(u64::MAX / 2);
    let started = std::time::Instant::now();
    assert_eq!(next_notice(&mut notices, false).await, Notice::Lost);
    let silent_for = started.elapsed();
    assert!(
        silent_for >= SILENCE - Duration::from_secs(1),
        "{silent_for:?}"
    );
    // Connections made from now on work again: the listener comes back and says so.
    freezer.freeze(0);
    assert_eq!(next_notice(&mut notices, false).await, Notice::Resync);
    freezer.task.abort();
    drop(notifier);
    database.drop_schema().await.unwrap();
}
