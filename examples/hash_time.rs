//! `cargo run --release --example hash_time -- COST N`: the median time of N
//! bcrypt hashes at COST with the gateway's own bcrypt build, printed in
//! milliseconds. The sign-in benchmark divides the hashing threads by it to
//! get the sign-in bound.

use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let cost: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(15);
    let mut times: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            bcrypt::hash(format!("benchmark-password-{i}"), cost).expect("bcrypt");
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("{:.3}", times[n / 2]);
}
