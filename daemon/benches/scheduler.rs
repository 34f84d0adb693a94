//! Next-fire computation for 10,000 jobs: how long the scheduler needs to
//! work out when every job of a large billing company fires next.
//!
//! Run: `cargo bench -p billd --bench scheduler`. Prints the time per job
//! (median of several passes) for the next fire and the next three.

use billd::scheduler::Schedule;
use chrono::{DateTime, Utc};
use std::time::Instant;

const JOBS: usize = 10_000;
const PASSES: usize = 7;

fn schedules() -> Vec<Schedule> {
    let exprs = [
        "30 2 * * *",
        "0 7 * * 1-5",
        "*/15 * * * *",
        "0 */4 * * *",
        "0 9 1 * *",
        "30 1 * * 0",
        "0 0 L * *",
        "*/10 * * * * *",
        "5 4 * * 6",
        "0 12 15 */3 *",
    ];
    let zones = [
        "America/New_York",
        "America/Chicago",
        "America/Denver",
        "America/Los_Angeles",
        "America/Phoenix",
        "Pacific/Honolulu",
        "America/Anchorage",
        "Europe/London",
        "Australia/Lord_Howe",
        "UTC",
    ];
    (0..JOBS)
        .map(|i| {
            Schedule::parse_in(
                exprs[i % exprs.len()],
                zones[(i / exprs.len()) % zones.len()],
            )
            .expect("valid")
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let start = Instant::now();
    let jobs = schedules();
    let parse = start.elapsed();
    // The week of a spring-forward change, where the rules do the most work.
    let after: DateTime<Utc> = "2027-03-13T12:00:00Z".parse().expect("instant");
    let mut next1 = Vec::new();
    let mut next3 = Vec::new();
    let mut checksum = 0i64;
    for _ in 0..PASSES {
        let t = Instant::now();
        for s in &jobs {
            checksum =
                checksum.wrapping_add(s.next_after(after).map(|t| t.timestamp()).unwrap_or(0));
        }
        next1.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for s in &jobs {
            for n in s.iter_after(after).take(3) {
                checksum = checksum.wrapping_add(n.timestamp());
            }
        }
        next3.push(t.elapsed().as_secs_f64());
    }
    let n1 = median(next1);
    let n3 = median(next3);
    println!("scheduler bench: {JOBS} jobs, 10 expressions x 10 timezones, after {after}");
    println!(
        "  parse all:            {:>9.2} ms",
        parse.as_secs_f64() * 1e3
    );
    println!(
        "  next fire, all jobs:  {:>9.2} ms  ({:.2} us per job)",
        n1 * 1e3,
        n1 * 1e6 / JOBS as f64
    );
    println!(
        "  next three, all jobs: {:>9.2} ms  ({:.2} us per job)",
        n3 * 1e3,
        n3 * 1e6 / JOBS as f64
    );
    std::hint::black_box(checksum);
}
