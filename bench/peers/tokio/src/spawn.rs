// SPDX-License-Identifier: MIT
//! spawn: n short-lived tasks, each receives one value on its own channel,
//! sends it back on a shared channel and ends.
use tokio::sync::mpsc;

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let (answers_tx, mut answers) = mpsc::unbounded_channel::<u64>();
    let n = p.n;
    tokio::spawn(async move {
        for i in 0..n {
            let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
            let answer = answers_tx.clone();
            tokio::spawn(async move {
                if let Some(v) = rx.recv().await {
                    let _ = answer.send(v);
                }
            });
            tx.send(i).unwrap();
        }
    });
    let mut count = 0u64;
    while count < n && answers.recv().await.is_some() {
        count += 1;
    }
    (count, count, String::new())
}
