// SPDX-License-Identifier: MIT
//! broadcast: one publisher, p.actors subscriber tasks on a
//! tokio::sync::broadcast channel of capacity p.n (like troupe's default,
//! so nobody can lag), p.n messages; every subscriber must see every one.
//! Values are Arc-shared, stored once. Checksum: messages seen, summed over
//! subscribers (R*M); lagged messages are reported and not counted.
use std::sync::Arc;
use tokio::sync::broadcast;

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let (tx, _) = broadcast::channel::<Arc<u64>>(p.n as usize);
    let mut tasks = Vec::with_capacity(p.actors as usize);
    for _ in 0..p.actors {
        let mut rx = tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let (mut n, mut lagged) = (0u64, 0u64);
            loop {
                match rx.recv().await {
                    Ok(_) => n += 1,
                    Err(broadcast::error::RecvError::Lagged(k)) => lagged += k,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            (n, lagged)
        }));
    }
    for i in 0..p.n {
        tx.send(Arc::new(i)).expect("subscribers");
    }
    drop(tx);
    let (mut sum, mut lagged) = (0u64, 0u64);
    for t in tasks {
        let (n, l) = t.await.expect("subscriber task");
        sum += n;
        lagged += l;
    }
    (sum, sum, format!(" lagged={}", lagged))
}
