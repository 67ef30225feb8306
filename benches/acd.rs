//! The ACD's cost (issue 15): routing decisions with 200 agents and 1,000 waiting callers,
//! against a reference of 10 waiting callers in the same process. Every waiting caller's
//! driver asks the ACD every 250 ms (`call::driver`), so 1,000 waiting callers make 4,000
//! decisions a second on one node; this measures what each costs.
//!
//! - refused: a caller behind others asks (the common case: the answer is "not yet");
//! - head, nobody free: the first caller asks while all 200 agents are busy (the agents are
//!   scanned);
//! - picked: the first caller asks and an agent is free (set ringing, then released);
//! - through `Acd`: the shared handle calls use (its locks and the registered phones).
//!
//! `cargo bench --bench acd` (a few seconds).

use std::time::{Duration, Instant};

use voxnav::agents::AgentBook;
use voxnav::report::{Observer, Report};
use voxnav::routing::{Acd, Requested, Router};

const QUEUES: usize = 5;

/// `agents` agents, each in one of the queues (level 1 to 5 in its skill).
fn book(agents: usize) -> AgentBook {
    let mut source = String::from("agents:\n");
    for i in 0..agents {
        let queue = format!("q{}", i % QUEUES);
        source += &format!(
            "  a{i}:\n    queues: [{queue}]\n    skills: {{ {queue}: {} }}\n    sip:\n      ha1_md5: \"{:032x}\"\n",
            1 + i % 5,
            i
        );
    }
    voxnav::agents::load_str("bench.yaml", &source).expect("the bench's agents file")
}

/// Nanoseconds per call of `f`, the median of 7 rounds of `n` calls.
fn per_call(n: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut rounds: Vec<f64> = (0..7)
        .map(|_| {
            let started = Instant::now();
            for i in 0..n {
                f(i);
            }
            started.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    rounds.sort_by(f64::total_cmp);
    rounds[3]
}

struct Figures {
    refused: f64,
    head_busy: f64,
    picked: f64,
    acd_refused: f64,
}

fn measure(waiting: usize) -> Figures {
    let t0 = Instant::now();
    let agents = book(200);
    let mut r = Router::new(Duration::from_secs(10));
    r.set_agents(&agents, t0);
    for c in 0..waiting {
        r.wait(&format!("q{}", c % QUEUES), &format!("call-{c}"), 0, t0);
    }
    let all = |_: &str| true;
    // Callers behind others (the last of q1's line: the longest scan).
    let last = format!("call-{}", (waiting - 1) / QUEUES * QUEUES + 1);
    let refused = per_call(20_000, |_| {
        assert!(r.pick("q1", &last, 0, all, t0).is_none());
    });
    // The head of q0's line, every agent logged out (busy).
    let head_busy = per_call(20_000, |_| {
        assert!(r.pick("q0", "call-0", 0, all, t0).is_none());
    });
    // One agent of q0 free: picked, set ringing; released again for the next round.
    r.request("a0", Requested::Available, t0).unwrap();
    let picked = per_call(20_000, |_| {
        let (agent, _) = r.pick("q0", "call-0", 0, all, t0).expect("a0 is free");
        r.released(&agent, "call-0", t0);
    });
    // The same refusal through the shared handle, with 200 registered phones.
    let acd = Acd::new(&agents, Duration::from_secs(10));
    for a in agents.agents.keys() {
        acd.observe(&Report::AgentContacts {
            agent: a.clone(),
            contacts: vec![format!("sip:{a}@192.0.2.1:5060")],
        });
    }
    for c in 0..waiting {
        acd.wait(&format!("q{}", c % QUEUES), &format!("call-{c}"), 0);
    }
    let acd_refused = per_call(20_000, |_| {
        assert!(acd.pick("q1", &last, 0).is_none());
    });
    Figures {
        refused,
        head_busy,
        picked,
        acd_refused,
    }
}

fn main() {
    let reference = measure(10);
    let loaded = measure(1_000);
    println!("ACD routing decisions, 200 agents in {QUEUES} queues (median of 7 rounds)");
    println!(
        "{:<32} {:>14} {:>14} {:>8} {:>16}",
        "decision", "10 waiting", "1,000 waiting", "ratio", "decisions/s (1k)"
    );
    for (name, a, b) in [
        ("refused (behind others)", reference.refused, loaded.refused),
        ("head, nobody free", reference.head_busy, loaded.head_busy),
        ("picked (then released)", reference.picked, loaded.picked),
        (
            "refused, through Acd",
            reference.acd_refused,
            loaded.acd_refused,
        ),
    ] {
        println!(
            "{name:<32} {:>11.0} ns {:>11.0} ns {:>7.2}x {:>16.0}",
            a,
            b,
            b / a,
            1e9 / b
        );
    }
    // What 1,000 waiting callers asking every 250 ms cost one core.
    let share = 4_000.0 * loaded.acd_refused / 1e9;
    println!(
        "1,000 waiting callers asking every 250 ms: {:.1}% of one core",
        100.0 * share
    );
}
