//! Dialplans end to end: the demo hotline checks clean, its scripted conversations pass with
//! the real MiniLM router and the demo order service, `simulate --json` prints one record per
//! bot turn, and broken dialplans are refused with file:line:col and a hint.

use std::io::Write;
use std::process::{Command, Stdio};

use voxnav::dialplan::load_str;

fn voxnav() -> Command {
    Command::new(env!("CARGO_BIN_EXE_voxnav"))
}

fn hotline_source() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dialplans/hotline.yaml"
    ))
    .unwrap()
}

#[test]
fn the_demo_hotline_checks_clean() {
    let out = voxnav()
        .args(["check", "dialplans"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok: dialplans/hotline.yaml"), "{stdout}");
}

#[test]
fn the_demo_hotline_scripted_conversations_pass() {
    let out = voxnav()
        .args(["test", "dialplans", "--demo-orders"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    assert!(!stdout.contains("nodes no test reaches"), "{stdout}");
}

#[test]
fn simulate_json_prints_one_record_per_bot_turn() {
    let mut child = voxnav()
        .args([
            "simulate",
            "dialplans/hotline.yaml",
            "--json",
            "--demo-orders",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"where is my order\n#dtmf 555123#\nwhat payment methods do you take\n#hangup\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert_eq!(records.len(), 5, "greeting + 4 caller turns: {records:#?}");
    for r in &records {
        for key in [
            "turn",
            "input",
            "intent",
            "confidence",
            "decision",
            "reason",
            "kb",
            "node",
            "say",
            "action",
        ] {
            assert!(r.get(key).is_some(), "missing {key}: {r}");
        }
    }
    assert_eq!(records[1]["intent"], "order_status");
    assert_eq!(records[2]["decision"], "answer");
    assert!(
        records[2]["say"].as_str().unwrap().contains("delivered"),
        "{}",
        records[2]
    );
    assert_eq!(records[3]["kb"], "payment_methods");
    assert_eq!(records[4]["decision"], "end");
}

/// (mutation of the demo hotline, expected message, expected line:col).
fn refused(source: &str) -> String {
    match load_str("hotline.yaml", source) {
        Ok(_) => panic!("accepted a broken dialplan"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn broken_dialplans_are_refused_with_positions_and_hints() {
    let good = hotline_source();
    let line_of = |needle: &str| good.lines().position(|l| l.contains(needle)).unwrap() + 1;

    // A typo in a node reference: file:line:col and "did you mean".
    let e = refused(&good.replacen(
        "    none: menu\n    next: more\n",
        "    none: menu\n    next: mroe\n",
        1,
    ));
    let line = line_of("    none: menu") + 1;
    assert!(
        e.contains(&format!("hotline.yaml:{line}:11: unknown node `mroe`")),
        "{e}"
    );
    assert!(e.contains("did you mean `more`?"), "{e}");

    // Unknown intent in a route, unknown knowledge entry, unknown slot, unknown prompt.
    let e = refused(&good.replace(
        "      payment_issue: to_payments",
        "      payment_issues: to_payments",
    ));
    assert!(
        e.contains("unknown intent `payment_issues`")
            && e.contains("did you mean `payment_issue`?"),
        "{e}"
    );
    let e = refused(&good.replace("    answer: kb\n", "    answer: shiping_fee\n"));
    assert!(
        e.contains("unknown knowledge entry `shiping_fee`") && e.contains("`shipping_fee`"),
        "{e}"
    );
    let e = refused(&good.replace(
        "          slot: order_number",
        "          slot: order_numbr",
    ));
    assert!(e.contains("unknown slot `order_numbr`"), "{e}");
    let e = refused(&good.replace("    say: refund_policy", "    say: refund_polcy"));
    assert!(e.contains("unknown prompt `refund_polcy`"), "{e}");

    // An unreachable node.
    let e = refused(&good.replace(
        "  bye_now:\n    hangup: goodbye\n",
        "  bye_now:\n    hangup: goodbye\n\n  orphan:\n    say: goodbye\n    next: menu\n",
    ));
    assert!(e.contains("node `orphan` is unreachable"), "{e}");

    // An ask with no way out on silence or when not understood (no handlers either).
    let no_handlers = good.replace("  no_input: to_agent\n  no_match: to_agent\n", "");
    let e = refused(&no_handlers.replace(
        "      no_input: [anything_else]\n      no_match: [menu_no_match]\n",
        "",
    ));
    assert!(
        e.contains("ask `more` has no no-input handling")
            && e.contains("ask `more` has no no-match handling"),
        "{e}"
    );

    // A loop that never waits for the caller.
    let e = refused(&good.replace(
        "    say: cancel_text\n    next: more",
        "    say: cancel_text\n    next: loop_a\n\n  loop_a:\n    goto: cancel_info",
    ));
    assert!(
        e.contains("on a loop that never waits for the caller"),
        "{e}"
    );

    // A variable never set, a malformed URL, a duplicate id, a YAML syntax error.
    let e = refused(&good.replace(
        "Order {{order_number}} is {{status}}.",
        "Order {{order_nummer}} is {{status}}.",
    ));
    assert!(
        e.contains("variable `order_nummer` is never set") && e.contains("`order_number`"),
        "{e}"
    );
    let e = refused(&good.replace(
        "url: \"{{orders_api}}/orders/{{order_number}}\"",
        "url: \"htp://orders/{{order_number}}\"",
    ));
    assert!(
        e.contains("malformed URL `htp://orders/{{order_number}}`"),
        "{e}"
    );
    let e = refused(&good.replace(
        "  refund_info:\n",
        "  bye:\n    hangup: goodbye\n  refund_info:\n",
    ));
    assert!(e.contains("duplicate key `bye`"), "{e}");
    let e = refused(&good.replace("  greeting: \"Thanks", "  greeting: [\"Thanks"));
    assert!(
        e.contains(&format!("hotline.yaml:{}:", line_of("greeting: \"Thanks")))
            || e.contains("YAML:"),
        "{e}"
    );

    // `other` (a request instead of a slot's value) at an ask that takes intents anyway, and
    // an unknown target for it.
    let e = refused(&good.replace(
        "      prompt: anything_else\n",
        "      prompt: anything_else\n      other: route_menu\n",
    ));
    assert!(
        e.contains("`other` takes requests at an ask for a slot"),
        "{e}"
    );
    let e = refused(&good.replace("      other: route_known\n", "      other: route_knwon\n"));
    assert!(
        e.contains("unknown node `route_knwon`") && e.contains("`route_known`"),
        "{e}"
    );

    // Unknown keys get the closest known one.
    let e = refused(&good.replace("      dtmf: 10\n", "      dtfm: 10\n"));
    assert!(
        e.contains("unknown key `dtfm` in ask") && e.contains("did you mean `dtmf`?"),
        "{e}"
    );

    // A voice that is not installed; a Mandarin hotline with the English voice.
    let e = refused(&good.replace("voice: en_US-joe-medium", "voice: en_GB-alan"));
    assert!(
        e.contains(&format!(
            "hotline.yaml:{}:8: voice `en_GB-alan`",
            line_of("voice:")
        )) && e.contains("espeak:NAME"),
        "{e}"
    );
    let zh = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/dialplans/hotline-zh.yaml"
    ))
    .unwrap();
    let e = refused(&zh.replacen(
        "voice: espeak:cmn-latn-pinyin",
        "voice: en_US-joe-medium",
        1,
    ));
    assert!(
        e.contains("a Mandarin hotline needs a Mandarin voice"),
        "{e}"
    );
}

/// The held-out phrasings (written apart from the examples) are routed as expected at least
/// 85% of the time (measured: 40 of 42; `cargo bench --bench hotline` lists the misses).
#[test]
fn held_out_phrasings_are_understood() {
    let root = env!("CARGO_MANIFEST_DIR");
    let hotline = voxnav::testkit::demo_hotline();
    let cases = voxnav::dialplan::testing::read_heldout(std::path::Path::new(&format!(
        "{root}/dialplans/hotline.heldout.tsv"
    )))
    .unwrap();
    assert!(cases.len() >= 40);
    let mut misses = Vec::new();
    for (phrase, want) in &cases {
        let got = voxnav::dialplan::testing::first_turn_decision(&hotline, phrase);
        if &got != want {
            misses.push(format!("{phrase}: expected {want}, got {got}"));
        }
    }
    let accuracy = 1.0 - misses.len() as f64 / cases.len() as f64;
    assert!(accuracy >= 0.85, "{:.1}%: {misses:#?}", accuracy * 100.0);
}

/// Knowledge questions worded unlike any listed variant (`dialplans/hotline.kb-paraphrases.tsv`,
/// written apart from the dialplan) find their entry, and out-of-scope questions get no
/// knowledge answer (a wrong answer is worse than "let me get someone"). Measured: 20 of 31
/// answered right, 0 of 10 out-of-scope answered (`cargo bench --bench hotline` lists them).
#[test]
fn knowledge_paraphrases_are_answered_and_out_of_scope_is_not() {
    let root = env!("CARGO_MANIFEST_DIR");
    let hotline = voxnav::testkit::demo_hotline();
    let cases = voxnav::dialplan::testing::read_heldout(std::path::Path::new(&format!(
        "{root}/dialplans/hotline.kb-paraphrases.tsv"
    )))
    .unwrap();
    let mut answered = 0;
    let mut questions = 0;
    let mut wrong_answers = Vec::new();
    for (phrase, want) in &cases {
        let got = voxnav::dialplan::testing::first_turn_decision(&hotline, phrase);
        if want.starts_with("kb:") {
            questions += 1;
            answered += usize::from(&got == want);
        }
        if got.starts_with("kb:") && &got != want {
            wrong_answers.push(format!("{phrase}: expected {want}, got {got}"));
        }
    }
    assert!(questions >= 30, "at least five per entry");
    assert!(wrong_answers.is_empty(), "{wrong_answers:#?}");
    assert!(answered >= 19, "{answered} of {questions} answered");
}
