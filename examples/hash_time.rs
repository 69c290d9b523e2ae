//! `cargo run --release --example hash_time -- COST N`: hashes N passwords
//! with bcrypt at COST, back to back, using the gateway's own bcrypt build,
//! and prints the mean and the median time per hash in milliseconds. The
//! sign-in benchmark divides the hashing threads by the mean to get the
//! sign-in bound (the mean, not the median: this VM's host stretches some
//! hashes several-fold, and a throughput bound must count them).

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let cost: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let mut times: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            bcrypt::hash(format!("benchmark-password-{i}"), cost).expect("bcrypt");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let mean = times.iter().sum::<f64>() / n as f64;
    times.sort_by(f64::total_cmp);
    println!("{mean:.3} {:.3}", times[n / 2]);
}
