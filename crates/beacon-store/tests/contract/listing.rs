//! Reading: execution filters, pagination and order; counts; leases; URLs.

use std::time::Duration;

use beacon_core::status::{ExecutionStatus, JobStatus};
use beacon_store::testing::TempPath;
use beacon_store::{ExecutionFilter, StoreError, contract_test};

use crate::fixtures::*;

fn filter(job: Option<&str>) -> ExecutionFilter {
    ExecutionFilter {
        job_id: job.map(str::to_string),
        limit: 1000,
        ..Default::default()
    }
}

contract_test!(list_executions_filters_and_pages, |store| {
    insert_at(&store, "job-a", 0).await;
    insert_at(&store, "job-b", 10).await;
    claim(&store, "owner").await; // job-a
    run_one(&store, "owner", completed(&exec_id("job-a", 4), 0, t0())).await;

    let all = store.list_executions(&filter(None)).await.unwrap();
    assert_eq!((all.total, all.items.len()), (54, 54));
    assert_eq!(
        (all.items[0].job_id.as_str(), all.items[0].seq),
        ("job-a", 0),
        "oldest job first"
    );

    let f = ExecutionFilter {
        region: Some("eu-west".into()),
        ..filter(Some("job-a"))
    };
    let page = store.list_executions(&f).await.unwrap();
    assert_eq!(page.total, 9);
    assert!(
        page.items
            .iter()
            .all(|e| e.region == "eu-west" && e.job_id == "job-a")
    );

    let f = ExecutionFilter {
        model_id: Some("m1".into()),
        question_id: Some("q2".into()),
        region: Some("asia-pacific".into()),
        ..filter(None)
    };
    let page = store.list_executions(&f).await.unwrap();
    assert_eq!(page.total, 2, "one cell per job");

    let f = ExecutionFilter {
        status: Some(ExecutionStatus::Completed),
        ..filter(None)
    };
    let page = store.list_executions(&f).await.unwrap();
    assert_eq!(
        (page.total, page.items[0].id.clone()),
        (1, exec_id("job-a", 4))
    );

    // Pages: total counts every match, items only the page.
    let f = ExecutionFilter {
        limit: 10,
        offset: 20,
        ..filter(Some("job-a"))
    };
    let page = store.list_executions(&f).await.unwrap();
    assert_eq!(page.total, 27);
    assert_eq!(
        page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (20..27).collect::<Vec<_>>()
    );
    let f = ExecutionFilter {
        limit: 10,
        offset: 100,
        ..filter(Some("job-a"))
    };
    let page = store.list_executions(&f).await.unwrap();
    assert_eq!((page.total, page.items.len()), (27, 0));

    // Newest first: the newer job's last cell, then backwards.
    let f = ExecutionFilter {
        newest_first: true,
        limit: 3,
        ..filter(None)
    };
    let page = store.list_executions(&f).await.unwrap();
    let got: Vec<(String, u32)> = page
        .items
        .iter()
        .map(|e| (e.job_id.clone(), e.seq))
        .collect();
    assert_eq!(
        got,
        [
            ("job-b".into(), 26),
            ("job-b".into(), 25),
            ("job-b".into(), 24)
        ]
    );
    let f = ExecutionFilter {
        newest_first: true,
        limit: 2,
        offset: 27,
        ..filter(None)
    };
    let page = store.list_executions(&f).await.unwrap();
    assert_eq!(
        page.items
            .iter()
            .map(|e| (e.job_id.as_str(), e.seq))
            .collect::<Vec<_>>(),
        [("job-a", 26), ("job-a", 25)]
    );
    let f = ExecutionFilter {
        newest_first: true,
        limit: 2,
        ..filter(Some("job-a"))
    };
    let page = store.list_executions(&f).await.unwrap();
    assert_eq!(
        page.items.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [26, 25]
    );

    // limit 0: no items, but the total (a cheap "how many?").
    let f = ExecutionFilter {
        limit: 0,
        ..filter(Some("job-a"))
    };
    let counted = store.list_executions(&f).await.unwrap();
    assert_eq!((counted.total, counted.items.len()), (27, 0));

    let none = store.list_executions(&filter(Some("nope"))).await.unwrap();
    assert_eq!((none.total, none.items.len()), (0, 0));
    assert_eq!(store.get_execution("nope").await.unwrap(), None);
});

contract_test!(counts_many_and_leases, |store| {
    insert_at(&store, "job-a", 0).await;
    insert_at(&store, "job-b", 1).await;
    insert_at(&store, "job-c", 2).await;
    store
        .claim_job("owner-1", Duration::from_secs(30), t0(), &[])
        .await
        .unwrap()
        .unwrap(); // job-a
    run_one(&store, "owner-1", completed(&exec_id("job-a", 0), 0, t0())).await;
    run_one(
        &store,
        "owner-1",
        failed(&exec_id("job-a", 1), 0, ExecutionStatus::Failed, t0()),
    )
    .await;
    store
        .request_cancel("job-c", &cancel_failure(), t0())
        .await
        .unwrap();

    let ids = vec!["job-b".to_string(), "nope".to_string(), "job-a".to_string()];
    let many = store.counts_many(&ids).await.unwrap();
    assert_eq!(
        many.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["job-b", "nope", "job-a"]
    );
    assert_eq!(many[0].1.pending, 27);
    assert_eq!(many[1].1.total(), 0);
    assert_eq!(
        (many[2].1.completed, many[2].1.failed, many[2].1.pending),
        (1, 1, 25)
    );
    assert_eq!(many[2].1, store.counts("job-a").await.unwrap());
    assert!(store.counts_many(&[]).await.unwrap().is_empty());

    // Non-terminal jobs only, oldest first, with their lease and counts.
    let leases = store.leases().await.unwrap();
    assert_eq!(leases.len(), 2);
    assert_eq!(
        (leases[0].job_id.as_str(), leases[0].status),
        ("job-a", JobStatus::Running)
    );
    assert_eq!(leases[0].lease_owner.as_deref(), Some("owner-1"));
    assert_eq!(leases[0].lease_expires_at, Some(t0() + secs(30)));
    assert_eq!(leases[0].counts.completed, 1);
    assert_eq!(
        (
            leases[1].job_id.as_str(),
            leases[1].status,
            leases[1].lease_owner.clone()
        ),
        ("job-b", JobStatus::Queued, None)
    );
    assert_eq!(leases[1].counts.pending, 27);
});

#[tokio::test]
async fn connect_dispatches_on_the_url_scheme() {
    for url in [
        "mysql://localhost/db",
        "",
        "postgre://x",
        "file:///tmp/x.db",
    ] {
        match beacon_store::connect(url).await {
            Err(StoreError::UnsupportedUrl(u)) => assert_eq!(u, url),
            Err(e) => panic!("{url}: expected UnsupportedUrl, got {e}"),
            Ok(_) => panic!("{url}: expected UnsupportedUrl, got a store"),
        }
    }
    // An unreachable server fails fast with its cause, not a pool timeout.
    let started = std::time::Instant::now();
    match beacon_store::connect("postgres://postgres@127.0.0.1:1/nope").await {
        Err(StoreError::Database(e)) => assert!(!e.to_string().contains("timed out"), "{e}"),
        Err(e) => panic!("expected a database error, got {e}"),
        Ok(_) => panic!("connected to port 1?"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // sqlite:PATH (no slashes) and a missing directory: created.
    let tmp = TempPath::new();
    let path = tmp.dir().join("nested/dir/store.db");
    let store = beacon_store::connect(&format!("sqlite:{}", path.display()))
        .await
        .unwrap();
    assert_eq!(store.backend(), "sqlite");
    store.ping().await.unwrap();
    assert!(path.exists());
    // Reopening runs the migrations again harmlessly and keeps the data.
    insert(&store, "job-a").await;
    drop(store);
    let store = beacon_store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    assert_eq!(store.totals().await.unwrap().executions, 27);
}

#[tokio::test]
async fn postgres_backend_reports_its_name() {
    if let Some((store, db)) = beacon_store::testing::postgres_store().await {
        assert_eq!(store.backend(), "postgres");
        assert!(db.url().contains(db.name()));
        // A second connect to the same database: migrations already applied.
        let again = beacon_store::connect(db.url()).await.unwrap();
        again.ping().await.unwrap();
        db.cleanup().await;
    }
}

contract_test!(job_executions_after_walks_one_job_by_keyset, |store| {
    insert_at(&store, "job-a", 0).await;
    insert_at(&store, "job-b", 10).await;
    claim(&store, "owner").await; // job-a
    run_one(&store, "owner", completed(&exec_id("job-a", 4), 0, t0())).await;

    // Pages of 10: 10 + 10 + 7, then an empty page; only job-a's rows, in seq order.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .job_executions_after("job-a", after, 10)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        assert!(page.iter().all(|e| e.job_id == "job-a"));
        after = page.last().map(|e| e.seq);
        seen.extend(page);
    }
    assert_eq!(
        seen.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (0..27).collect::<Vec<_>>()
    );
    // Full records: the answer of the completed one is there.
    assert!(seen[4].response.is_some());
    assert_eq!(seen[4].status, ExecutionStatus::Completed);
    // After the last seq, nothing; an unknown job, nothing.
    assert!(
        store
            .job_executions_after("job-a", Some(26), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .job_executions_after("nope", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .job_executions_after("job-b", Some(20), 100)
            .await
            .unwrap()
            .len(),
        6
    );
});
