// SPDX-License-Identifier: MIT
//! pingpong: two tasks bounce one value back and forth n times.
use tokio::sync::mpsc;

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let n = p.n;
    let (ping_tx, mut ping_rx) = mpsc::unbounded_channel::<u64>();
    let (pong_tx, mut pong_rx) = mpsc::unbounded_channel::<u64>();
    tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v).is_err() {
                break;
            }
        }
    });
    let pinger = tokio::spawn(async move {
        ping_tx.send(0).unwrap();
        while let Some(trips) = pong_rx.recv().await {
            if trips + 1 == n {
                return n;
            }
            ping_tx.send(trips + 1).unwrap();
        }
        0
    });
    let trips = pinger.await.unwrap();
    (trips, trips, String::new())
}
