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
