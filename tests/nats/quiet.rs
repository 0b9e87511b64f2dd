//! What the hub says about NATS: credentials in a NATS URL never reach its output.

use crate::support::binary::output_until;
use crate::support::nats::NatsServer;

/// The binary, given a NATS URL with a user and password, logs every line up to consuming
/// (debug level, NATS client events included) without the password or the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_credentials_never_reach_the_log() {
    let nats = NatsServer::start().await;
    let url = nats.url().replace("nats://", "nats://alice:s3cret-pw@");
    let lines = output_until(&["--nats-url", &url], |line| {
        line.contains("consuming from NATS JetStream")
    })
    .await;
    assert!(
        lines.iter().any(|l| l.contains("***@127.0.0.1")),
        "{lines:#?}"
    );
    for line in &lines {
        assert!(
            !line.contains("s3cret-pw") && !line.contains("alice"),
            "{line}"
        );
    }
}
