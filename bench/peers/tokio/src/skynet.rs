// SPDX-License-Identifier: MIT
//! skynet: a 10-ary tree of tasks; leaves send their number to the parent's
//! channel, inner nodes sum their 10 children and send the sum up.
use tokio::sync::mpsc;

fn node(parent: mpsc::UnboundedSender<u64>, num: u64, size: u64) {
    tokio::spawn(async move {
        if size == 1 {
            let _ = parent.send(num);
            return;
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let size = size / 10;
        for i in 0..10 {
            node(tx.clone(), num + i * size, size);
        }
        let mut sum = 0;
        for _ in 0..10 {
            sum += rx.recv().await.unwrap();
        }
        let _ = parent.send(sum);
    });
}

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    node(tx, 0, p.n);
    let sum = rx.recv().await.unwrap();
    (sum, (p.n * 10 - 1) / 9, String::new())
}
