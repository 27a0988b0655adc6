// SPDX-License-Identifier: MIT
//! ring: a tasks, one inbox each, pass a token n times; each hop decrements it.
use tokio::sync::mpsc;

#[derive(Debug)]
struct Token {
    left: u64,
    hops: u64,
}

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<u64>();
    let (first_tx, mut inbox) = mpsc::unbounded_channel::<Token>();
    for i in 0..p.actors {
        // Task i forwards to task i+1; the last one back to the first.
        let (next_tx, next_rx) = if i + 1 == p.actors {
            (first_tx.clone(), None)
        } else {
            let (tx, rx) = mpsc::unbounded_channel();
            (tx, Some(rx))
        };
        let done = done_tx.clone();
        let mut rx = inbox;
        tokio::spawn(async move {
            while let Some(t) = rx.recv().await {
                if t.left == 0 {
                    let _ = done.send(t.hops);
                    return;
                }
                if next_tx.send(Token { left: t.left - 1, hops: t.hops + 1 }).is_err() {
                    return;
                }
            }
        });
        match next_rx {
            Some(next) => inbox = next,
            None => break,
        }
    }
    first_tx.send(Token { left: p.n, hops: 0 }).unwrap();
    let hops = done_rx.recv().await.unwrap();
    (hops, hops, String::new())
}
