// SPDX-License-Identifier: MIT
//! fanin: s sender tasks each send the values 1..n into one bounded channel
//! (capacity 1000, like the Go peer's); one receiver task counts them and
//! sums the values. Checksum: the sum, s*n*(n+1)/2.
use tokio::sync::mpsc;

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let (tx, mut rx) = mpsc::channel::<u64>(1000);
    for _ in 0..p.senders {
        let tx = tx.clone();
        let n = p.n;
        tokio::spawn(async move {
            for i in 1..=n {
                tx.send(i).await.unwrap();
            }
        });
    }
    drop(tx);
    let (mut count, mut sum) = (0u64, 0u64);
    while let Some(v) = rx.recv().await {
        sum += v;
        count += 1;
    }
    (sum, count, String::new())
}
