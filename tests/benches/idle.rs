//! The idle daemon's cost: CPU time and resident memory of a release-built
//! `billd run` with ten scheduled jobs, none due, over a minute.
//!
//! Run: `cargo bench -p billd-e2e --bench idle` (IDLE_SECS=N to change the
//! minute). Prints CPU as a percentage of one core and RSS in MiB.

use billd_e2e::{Scratch, base_config, billd_bin_profile, wait_until};
use std::time::{Duration, Instant};

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may hold spaces) start past ')'.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line (11, 12 here).
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let secs: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let bin = billd_bin_profile(true);
    let s = Scratch::new();
    let mut cfg = base_config("outbox_dir = \"outbox\"");
    cfg.push_str(
        "\n[[billers]]\nname = \"dana\"\nemail = \"dana@example.org\"\nreceives = [\"digest\"]\n",
    );
    for i in 0..10 {
        cfg.push_str(&format!(
            "\n[[job]]\nname = \"j{i}\"\nkind = \"digest\"\nschedule = \"0 3 1 1 *\"\n"
        ));
    }
    s.write_config(&cfg);
    let init = std::process::Command::new(bin)
        .args(["--config"])
        .arg(s.config())
        .arg("init")
        .output()
        .expect("init");
    assert!(init.status.success());
    let log = std::fs::File::create(s.path("idle.log")).expect("log");
    let mut child = std::process::Command::new(bin)
        .arg("--config")
        .arg(s.config())
        .arg("run")
        .stderr(log)
        .spawn()
        .expect("daemon");
    let pid = child.id();
    wait_until(Duration::from_secs(20), "start-up", || {
        std::fs::read_to_string(s.path("idle.log"))
            .unwrap_or_default()
            .contains("billd started")
    });
    std::thread::sleep(Duration::from_secs(2));
    let hz = 100.0; // USER_HZ on Linux
    let t0 = Instant::now();
    let c0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(secs));
    let c1 = cpu_ticks(pid);
    let wall = t0.elapsed().as_secs_f64();
    let rss = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let st = child.wait().expect("wait");
    let cpu_s = (c1 - c0) as f64 / hz;
    println!("idle daemon bench: 10 jobs, none due, {wall:.0} s");
    println!(
        "  CPU:  {:.3} s over {wall:.0} s = {:.3}% of one core",
        cpu_s,
        cpu_s / wall * 100.0
    );
    println!(
        "  RSS:  {:.1} MiB now, {:.1} MiB peak",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    println!("  exit: {st}");
}
