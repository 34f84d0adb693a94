//! `billd jobs next` across daylight-saving changes (America/New_York).

use billd_e2e::{Scratch, base_config, stdout};

fn next(schedule: &str, after: &str) -> Vec<String> {
    let s = Scratch::new();
    s.write_config(&format!(
        "{}\n[[job]]\nname = \"j\"\nkind = \"digest\"\nschedule = \"{schedule}\"\n",
        base_config("outbox_dir = \"outbox\"")
    ));
    let out = s.run(&["jobs", "next", "j", "--after", after, "--count", "3"]);
    assert!(out.status.success(), "{}", billd_e2e::stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn spring_forward_gap_fires_at_first_instant_after_it() {
    assert_eq!(
        next("30 2 * * *", "2027-03-13T00:00:00-05:00"),
        [
            "2027-03-13T02:30:00-05:00",
            "2027-03-14T03:00:00-04:00",
            "2027-03-15T02:30:00-04:00"
        ]
    );
}

#[test]
fn fall_back_repeated_hour_fires_once() {
    assert_eq!(
        next("30 1 * * *", "2027-11-06T00:00:00-04:00"),
        [
            "2027-11-06T01:30:00-04:00",
            "2027-11-07T01:30:00-04:00",
            "2027-11-08T01:30:00-05:00"
        ]
    );
}
