// SPDX-License-Identifier: MIT
//! idle_memory: n tasks each wait on their own channel for a value that
//! never comes; reports resident memory growth per task.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, Notify};

pub async fn run(p: &crate::Params) -> (u64, u64, String) {
    let n = p.n;
    let alive = Arc::new(AtomicU64::new(0));
    let all_started = Arc::new(Notify::new());
    let base = crate::rss_bytes();
    let mut inboxes = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
        inboxes.push(tx);
        let (alive, all_started) = (alive.clone(), all_started.clone());
        tokio::spawn(async move {
            if alive.fetch_add(1, Ordering::Relaxed) + 1 == n {
                all_started.notify_one();
            }
            let _ = rx.recv().await;
        });
    }
    all_started.notified().await;
    let rss = crate::rss_bytes();
    let grown = rss.saturating_sub(base);
    let extra = format!(
        " bytes_per_actor={:.0} rss_mib={:.1}",
        grown as f64 / n as f64,
        rss as f64 / 1048576.0
    );
    (alive.load(Ordering::Relaxed), n, extra)
}
