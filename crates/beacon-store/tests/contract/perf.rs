//! The size limit: a 100,000-execution job is accepted in one transaction in < 5 s.

use std::time::Instant;

use beacon_store::{Inserted, contract_test};

use crate::fixtures::*;

contract_test!(insert_100k_executions_under_5s, |store| {
    // 500 questions × 50 models × 4 regions × 1 run: the spec's limits.
    let cells = grid("big", 500, 50, 4, 1);
    assert_eq!(cells.len(), 100_000);
    let mut j = job("big");
    j.total = 100_000;
    let started = Instant::now();
    let inserted = store.insert_job(&j, &cells).await.unwrap();
    let took = started.elapsed();
    eprintln!(
        "{}: inserted 100,000 executions in {:.3} s",
        store.backend(),
        took.as_secs_f64()
    );
    assert!(matches!(inserted, Inserted::Created(_)));
    assert!(
        took.as_secs_f64() < 5.0,
        "{}: 100k insert took {took:?}",
        store.backend()
    );
    assert_eq!(store.counts("big").await.unwrap().pending, 100_000);
    let first = store.pending_executions("big", 3, &[]).await.unwrap();
    assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [0, 1, 2]);
});
