// SPDX-License-Identifier: MIT
//! fanin: s sender tasks each send n values into one bounded channel; one
//! receiver counts them.
use tokio::sync::mpsc;

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let (tx, mut rx) = mpsc::channel::<u64>(1000);
    for _ in 0..p.senders {
        let tx = tx.clone();
        let n = p.n;
        tokio::spawn(async move {
            for i in 0..n {
                tx.send(i).await.unwrap();
            }
        });
    }
    drop(tx);
    let mut count = 0u64;
    while rx.recv().await.is_some() {
        count += 1;
    }
    (count, count, String::new())
}
