// SPDX-License-Identifier: MIT
//! spawn: n short-lived tasks; each receives its number (1..n) on its own
//! oneshot channel, sends it back on the spawner's channel and ends. The
//! spawner keeps WINDOW children in flight, spawning the next one for each
//! answer it takes (as the CAF peer does; troupe's spawner likewise handles
//! answers between chunks of 1,000), so the answers queue stays short and
//! spawning and collecting share one task on the worker threads rather than
//! racing through an unbounded queue to the main thread.
//! Checksum: the sum of the answers, n*(n+1)/2.
use tokio::sync::{mpsc, oneshot};

const WINDOW: u64 = 1000;

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let n = p.n;
    // Unbounded, but never holds more than WINDOW answers.
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<u64>();
    let child = |i: u64| {
        let (tx, rx) = oneshot::channel::<u64>();
        let answer = answers_tx.clone();
        tokio::spawn(async move {
            if let Ok(v) = rx.await {
                let _ = answer.send(v);
            }
        });
        let _ = tx.send(i);
    };
    let mut spawned = 0u64;
    while spawned < WINDOW.min(n) {
        spawned += 1;
        child(spawned);
    }
    let (mut count, mut sum) = (0u64, 0u64);
    while count < n {
        sum += answers.recv().await.expect("answers");
        count += 1;
        if spawned < n {
            spawned += 1;
            child(spawned);
        }
    }
    (sum, count, String::new())
}
