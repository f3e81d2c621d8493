//! The harness's private PostgreSQL cluster does what drills rely on: it serves on its
//! own port, refuses connections while stopped or crashed, comes back on the same port
//! with the same data (after a clean stop and after crash recovery), and leaves nothing
//! behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use beacon_drills::PrivateCluster;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

async fn rows(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.unwrap();
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM drill_rows")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stops_crashes_and_restarts_with_its_data() {
    let Some(mut pg) = PrivateCluster::start().await.unwrap() else {
        return;
    };
    assert_ne!(pg.port(), 5432, "never the shared server's port");
    let url = pg.url();
    assert!(url.ends_with("/beacon"), "{url}");
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE drill_rows (n INT)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO drill_rows SELECT generate_series(1, 3)")
        .execute(&mut conn)
        .await
        .unwrap();

    // A clean stop closes the open connection and refuses new ones.
    pg.stop().unwrap();
    assert!(!pg.is_running());
    assert!(
        sqlx::query("SELECT 1").execute(&mut conn).await.is_err(),
        "the open connection died with the server"
    );
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "no server while stopped"
    );

    pg.start_again().await.unwrap();
    assert_eq!(pg.url(), url, "same port after a restart");
    assert_eq!(rows(&url).await, 3, "data survived the stop");

    // A committed row survives a crash (recovery replays the WAL).
    let mut conn = PgConnection::connect(&url).await.unwrap();
    sqlx::query("INSERT INTO drill_rows VALUES (4)")
        .execute(&mut conn)
        .await
        .unwrap();
    pg.crash().unwrap();
    assert!(
        PgConnection::connect(&url).await.is_err(),
        "down after the crash"
    );
    assert!(
        pg.restart().await.is_err(),
        "restart refuses a cluster that is not running"
    );
    pg.start_again().await.unwrap();
    assert_eq!(rows(&url).await, 4, "data survived the crash");

    pg.restart().await.unwrap();
    assert_eq!(rows(&url).await, 4, "data survived a restart");

    let log = pg.log_path().to_path_buf();
    let data_dir = log.parent().unwrap().to_path_buf();
    assert!(data_dir.is_dir());
    drop(pg);
    assert!(
        !data_dir.exists(),
        "dropping removes the cluster's directory"
    );
    assert!(PgConnection::connect(&url).await.is_err(), "and stops it");
}
