// SPDX-License-Identifier: MIT
//! The Tokio peer of troupe's actor-core and channel benchmarks: tasks on
//! the multi-thread runtime (worker_threads = workers) talking over
//! tokio::sync::mpsc (and tokio::sync::broadcast). The whole workload runs
//! in a task spawned on the runtime: the main thread only waits for its
//! result, so that no receiver runs on a thread of its own outside the W
//! workers (a receiver there pays a cross-thread wake-up per message batch).
//! Usage: tokio-bench <workload> [-n N] [-w W] [-a A] [-s S]; broadcast takes
//! [-r subscribers] [-m messages] and select [-c 8] [-k per_channel], the
//! flags of troupe's bench/broadcast and bench/select, so that bench/run
//! passes one argument string to every system (-a, -n stay accepted there).
//! It prints the parameters, then the same RESULT line as the troupe programs.

use std::time::Instant;

mod broadcast;
mod fanin;
mod idle_memory;
mod pingpong;
mod ring;
mod select;
mod skynet;
mod spawn;

#[derive(Clone)]
pub struct Params {
    pub n: u64,
    pub workers: usize,
    pub actors: u64,
    pub senders: u64,
}

/// Resident set size of this process in bytes (VmRSS of /proc/self/status).
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

fn usage() -> ! {
    eprintln!("usage: tokio-bench pingpong|ring|skynet|fanin|spawn|idle_memory|broadcast|select [-n N] [-w W] [-a A] [-s S]");
    eprintln!("       tokio-bench broadcast [-r subscribers] [-m messages]; tokio-bench select [-c 8] [-k per_channel]");
    std::process::exit(64)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().cloned().unwrap_or_else(|| usage());
    let default_n = match name.as_str() {
        "pingpong" => 2_000_000,
        "ring" => 10_000_000,
        "skynet" | "spawn" | "idle_memory" => 1_000_000,
        "fanin" => 5_000_000,
        "broadcast" => 10_000,
        "select" => 1_000_000,
        _ => usage(),
    };
    let mut p = Params { n: default_n, workers: 2, actors: 1000, senders: 0 };
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let v: u64 = it.next().and_then(|v| v.parse().ok()).unwrap_or_else(|| usage());
        // The letters of troupe's programs for the channel workloads.
        match (name.as_str(), flag.as_str()) {
            ("broadcast", "-r") => p.actors = v,
            ("broadcast", "-m") | ("select", "-k") => p.n = v,
            // select.rs has C = 8 channels built in
            ("select", "-c") if v == 8 => {}
            (_, "-n") => p.n = v,
            (_, "-w") => p.workers = v as usize,
            (_, "-a") => p.actors = v,
            (_, "-s") => p.senders = v,
            (_, "-t") => {} // timeout: enforced by the driver
            _ => usage(),
        }
    }
    if p.senders == 0 {
        p.senders = p.workers as u64;
    }
    // fanin and spawn: their checksum is the sum of the values received.
    let formula = match name.as_str() {
        "fanin" => " checksum=s*n*(n+1)/2",
        "spawn" => " checksum=n*(n+1)/2",
        _ => "",
    };
    println!(
        "{} tokio: n={} workers={} actors={} senders={}{}",
        name, p.n, p.workers, p.actors, p.senders, formula
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(p.workers)
        .build()
        .expect("tokio runtime");

    let start = Instant::now();
    let task = {
        let (name, p) = (name.clone(), p.clone());
        async move {
            match name.as_str() {
                "pingpong" => pingpong::run(&p).await,
                "ring" => ring::run(&p).await,
                "skynet" => skynet::run(&p).await,
                "fanin" => fanin::run(&p).await,
                "spawn" => spawn::run(&p).await,
                "broadcast" => broadcast::run(&p).await,
                "select" => select::run(&p).await,
                _ => idle_memory::run(&p).await,
            }
        }
    };
    let (checksum, items, extra) =
        rt.block_on(async { tokio::spawn(task).await.expect("workload task") });
    let secs = start.elapsed().as_secs_f64();
    println!(
        "RESULT {} tokio {:.6} {} rate={:.0}{}",
        name, secs, checksum, items as f64 / secs, extra
    );
    // Idle tasks would otherwise be dropped one by one; the process ends.
    std::process::exit(0);
}
