//! The gateway's tables, created and upgraded at start-up by versioned
//! migrations compiled into the binary. One transaction under an advisory
//! lock applies them, so gateways starting at once on an empty database
//! take turns and all come up; a schema newer than the binary stops it.

use tokio_postgres::Client;

use super::super::StoreError;
use super::db_error;

/// `(version, SQL)`, in order; a released migration is never edited.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_users_sessions.sql")),
    (2, include_str!("migrations/0002_sessions_times_resets.sql")),
    (
        3,
        include_str!("migrations/0003_reuse_interval_reset_mail.sql"),
    ),
];

/// The advisory lock migrations hold (an arbitrary constant: "gateway!").
const LOCK: i64 = 0x6761_7465_7761_7921;

pub async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(db_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK])
        .await
        .map_err(db_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS gateway_schema (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db_error)?;
    let current: i32 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM gateway_schema", &[])
        .await
        .map_err(db_error)?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::Schema(format!(
            "the database's gateway schema is version {current}, newer than this gateway knows (version {known}); run a newer gateway"
        )));
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.batch_execute(sql).await.map_err(db_error)?;
        tx.execute(
            "INSERT INTO gateway_schema (version) VALUES ($1)",
            &[version],
        )
        .await
        .map_err(db_error)?;
        tracing::info!(version, "applied a store schema migration");
    }
    tx.commit().await.map_err(db_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one_without_gaps() {
        for (i, (v, _)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*v, i as i32 + 1);
        }
    }
}
