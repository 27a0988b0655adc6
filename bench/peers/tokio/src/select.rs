// SPDX-License-Identifier: MIT
//! select: 8 producer tasks each send p.n values into their own bounded
//! tokio::sync::mpsc channel (capacity 1024); one task selects over the 8
//! receivers until all are closed. The select is a hand-written poll over
//! the receivers with a rotating start (what tokio::select! does, without
//! needing the "macros" feature). Checksum: values received (8*n).
use std::future::poll_fn;
use std::task::Poll;
use tokio::sync::mpsc;

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    const C: usize = 8;
    let mut rxs = Vec::with_capacity(C);
    for _ in 0..C {
        let (tx, rx) = mpsc::channel::<u64>(1024);
        let n = p.n;
        tokio::spawn(async move {
            for i in 0..n {
                tx.send(i).await.unwrap();
            }
        });
        rxs.push(Some(rx));
    }
    let mut count = 0u64;
    let mut open = C;
    let mut start = 0usize;
    while open > 0 {
        let got = poll_fn(|cx| {
            for k in 0..C {
                let i = (start + k) % C;
                if let Some(rx) = rxs[i].as_mut() {
                    match rx.poll_recv(cx) {
                        Poll::Ready(v) => return Poll::Ready((i, v)),
                        Poll::Pending => {}
                    }
                }
            }
            Poll::Pending
        })
        .await;
        start = got.0 + 1;
        match got.1 {
            Some(_) => count += 1,
            None => {
                rxs[got.0] = None;
                open -= 1;
            }
        }
    }
    (count, count, String::new())
}
