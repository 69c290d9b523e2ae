//! The revocation feed: one connection of its own (a pooled one would drop
//! notifications between uses) LISTENs on `gateway_revocations`, and each
//! NOTIFY's sids go straight into the local revoked set. Notifications sent
//! while it was disconnected are lost, so on every (re)connect, and every
//! few seconds as a backstop, it reads the `gateway_revocations` table past
//! what it has read: by increasing id, plus the last seconds again (ids of
//! transactions that committed out of order).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{db_error, Health, DB_NOW_MS};
use crate::auth::Revoked;
use crate::identity::store::StoreError;

/// Between reconnection attempts: a gateway catches up within about this
/// long of the database coming back.
const RECONNECT_EVERY: Duration = Duration::from_millis(250);
/// The backstop read, while connected.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// Re-read this much of the table's recent past on every read.
const LOOKBACK_MS: i64 = 10_000;

#[derive(Clone)]
pub struct Feed {
    config: tokio_postgres::Config,
    connector: MakeRustlsConnect,
}

/// How far the feed has read.
#[derive(Default)]
struct Position {
    last_id: i64,
    read_at_ms: i64,
    /// The full set was loaded once (at the first connection).
    loaded: bool,
}

impl Feed {
    /// Over the pool's own settings and TLS connector.
    pub(super) fn new(mut config: tokio_postgres::Config, connector: MakeRustlsConnect) -> Feed {
        config.application_name("gateway-revocations");
        Feed { config, connector }
    }

    /// Keeps `revoked` current until `stop` turns true. The first connection
    /// loads every revoked session still kept (start-up, or a gateway that
    /// started while the database was down).
    pub(super) async fn run(
        &self,
        health: &Health,
        revoked: Arc<Revoked>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut pos = Position::default();
        let mut warned = false;
        loop {
            let out = self.listen(health, &revoked, &mut pos, &mut stop).await;
            if out.is_err() {
                health.up.store(false, Ordering::Relaxed);
            }
            match out {
                Ok(()) => return,
                Err(e) if !warned => {
                    tracing::warn!(error = %e, "revocation feed disconnected; reconnecting");
                    warned = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT_EVERY) => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
        }
    }

    /// One connection's life: `Ok` when told to stop, `Err` when it broke.
    async fn listen(
        &self,
        health: &Health,
        revoked: &Revoked,
        pos: &mut Position,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), StoreError> {
        let (client, mut conn) = self
            .config
            .connect(self.connector.clone())
            .await
            .map_err(db_error)?;
        let (tx, mut notified) = mpsc::unbounded_channel::<String>();
        // The connection object delivers notifications; polling it also
        // drives the client's queries. It ends when the connection does.
        let driver = tokio::spawn(async move {
            while let Some(message) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        let _abort = AbortOnDrop(driver);
        client
            .batch_execute("LISTEN gateway_revocations")
            .await
            .map_err(db_error)?;
        catch_up(&client, revoked, pos).await?;
        health.up.store(true, Ordering::Relaxed);
        tracing::info!("revocation feed listening");
        let mut poll = tokio::time::interval(POLL_EVERY);
        poll.tick().await;
        loop {
            tokio::select! {
                payload = notified.recv() => match payload {
                    Some(payload) => {
                        for sid in payload.split(',').filter(|s| !s.is_empty()) {
                            revoked.insert(sid);
                        }
                    }
                    None => return Err(StoreError::Unavailable("the feed's connection closed".into())),
                },
                _ = poll.tick() => catch_up(&client, revoked, pos).await?,
                _ = stop.changed() => return Ok(()),
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads what the feed may have missed into `revoked`: the first time every
/// revoked session, later the events past `pos` (and the last seconds again).
async fn catch_up(
    client: &tokio_postgres::Client,
    revoked: &Revoked,
    pos: &mut Position,
) -> Result<(), StoreError> {
    let row = client
        .query_one(
            &format!("SELECT {DB_NOW_MS}, coalesce(max(id), 0) FROM gateway_revocations"),
            &[],
        )
        .await
        .map_err(db_error)?;
    let (now, max_id): (i64, i64) = (row.get(0), row.get(1));
    if !pos.loaded {
        for sid in super::revoked_sessions(client).await? {
            revoked.insert(&sid);
        }
        pos.loaded = true;
        // Events committed from here on are read by id; those whose ids
        // came earlier but committed later, by the look-back.
        *pos = Position {
            last_id: max_id,
            read_at_ms: now,
            loaded: true,
        };
        return Ok(());
    }
    let rows = client
        .query(
            "SELECT id, sid FROM gateway_revocations WHERE id > $1 OR at_ms >= $2 ORDER BY id",
            &[&pos.last_id, &(pos.read_at_ms - LOOKBACK_MS)],
        )
        .await
        .map_err(db_error)?;
    for row in &rows {
        let sid: &str = row.get(1);
        revoked.insert(sid);
        pos.last_id = pos.last_id.max(row.get(0));
    }
    pos.read_at_ms = now;
    Ok(())
}
