//! The trainers' loop through the admin API, on a copy of the demo hotline with the real MiniLM
//! router: calls the bot did not understand (records made here by running the real engine)
//! show up in the review queue with their nearest intents; a trainer's example goes live
//! through the test gate; a harmful one is refused with the phrasing it broke; a file edited
//! on disk is never overwritten; two trainers at once both land; a revert puts the file back.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use voxnav::dialplan::engine::{CallEngine, Event};
use voxnav::dialplan::registry::HotlineRegistry;
use voxnav::dialplan::sim;
use voxnav::ops::admin::AdminConfig;
use voxnav::ops::db::{Database, Records};
use voxnav::ops::records::{self, RecordEvent};

const TOKEN: &str = "trainer-token";

/// The demo hotline's files in a folder of their own (the test edits them).
fn copy_demo(dir: &Path) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans");
    for f in ["hotline.yaml", "hotline.tests.yaml", "hotline.heldout.tsv"] {
        std::fs::copy(root.join(f), dir.join(f)).unwrap();
    }
    dir.join("hotline.yaml")
}

/// One call on the real engine, recorded as the server records it: each caller line a turn.
fn record_call(
    db: &mut Records,
    registry: &HotlineRegistry,
    vars: &BTreeMap<String, String>,
    id: &str,
    lines: &[&str],
) {
    let hotline = registry.current();
    let http: sim::HttpFn = &voxnav::net::http::fetch;
    let mut engine = CallEngine::new(hotline.clone(), vars.clone());
    let mut write = |e: RecordEvent| records::write(db, &e).unwrap();
    write(RecordEvent::CallStarted {
        call_id: id.into(),
        caller: "+15550142".into(),
        hotline: hotline.plan.name.clone(),
        dialplan_version: registry.version(),
        started_ms: voxnav::ops::live::now_ms(),
        server: None,
    });
    sim::step(&mut engine, Event::Start, http);
    let mut transferred = false;
    for line in lines {
        let turn = sim::step(
            &mut engine,
            Event::Speech {
                text: (*line).into(),
                confidence: 0.9,
            },
            http,
        )
        .expect("a turn");
        transferred |= turn.decision.decision.name() == "transfer";
        write(RecordEvent::Turn {
            call_id: id.into(),
            at_ms: voxnav::ops::live::now_ms(),
            record: sim::to_json(&turn),
        });
    }
    write(RecordEvent::CallEnded {
        call_id: id.into(),
        ended_ms: voxnav::ops::live::now_ms(),
        outcome: if transferred {
            "transferred"
        } else {
            "abandoned"
        }
        .into(),
        transfer_reason: None,
    });
}

fn api(base: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let body = body.map(|b| b.to_string());
    let (status, text) = voxnav::net::http::fetch_with_headers(
        method,
        &format!("{base}{path}"),
        &[
            ("Authorization", &format!("Bearer {TOKEN}")),
            ("Content-Type", "application/json"),
        ],
        body.as_deref(),
        Duration::from_secs(120),
    )
    .unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text })),
    )
}

const HOTLINE: &str = "/api/hotlines/Online%20store%20customer%20service";

fn review(base: &str, text: &str, assign: &str, trainer: &str) -> (u16, Value) {
    api(
        base,
        "POST",
        &format!("{HOTLINE}/review"),
        Some(json!({ "text": text, "assign": assign, "trainer": trainer })),
    )
}

/// A copy of the demo hotline served by the admin API, with two recorded calls the bot did not
/// understand: the first caller then says it the way the examples do; the second is put
/// through to a person.
fn setup(
    name: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    Arc<HotlineRegistry>,
    String,
) {
    let dir = std::env::temp_dir().join(format!("voxnav-training-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = copy_demo(&dir);
    let models = voxnav::testkit::installed_models();
    let embedder = voxnav::dialplan::cli::embedder(&models).unwrap();
    let registry = Arc::new(HotlineRegistry::load(&file, embedder).unwrap());
    let mut vars = BTreeMap::new();
    voxnav::dialplan::cli::start_demo_orders(&mut vars).unwrap();
    let db_path = dir.join("records.db");
    let database = Database::Sqlite(db_path);
    let mut db = database.open().unwrap();
    record_call(
        &mut db,
        &registry,
        &vars,
        "call-1",
        &["the thingy I got hasn't turned up", "where is my order"],
    );
    record_call(
        &mut db,
        &registry,
        &vars,
        "call-2",
        &["The thingy I got hasn't turned up", "my stuff", "my stuff"],
    );
    let base = voxnav::testkit::admin_on_loopback(AdminConfig {
        token: Some(TOKEN.into()),
        records: Some(database),
        hotlines: voxnav::ops::admin::AdminHotline::only(registry.clone()),
        vars,
        ..Default::default()
    });
    (dir, file, registry, base)
}

#[test]
fn trainers_review_what_the_bot_missed_and_the_gate_keeps_the_hotline_from_getting_worse() {
    let (dir, file, registry, base) = setup("api");

    // The queue: grouped, with the repeat that was understood, the transfer, the neighbours.
    let (status, queue) = api(&base, "GET", &format!("{HOTLINE}/review"), None);
    assert_eq!(status, 200, "{queue}");
    let items = queue["items"].as_array().unwrap();
    let thingy = items
        .iter()
        .find(|i| i["text"] == "the thingy I got hasn't turned up")
        .unwrap_or_else(|| panic!("{queue:#}"));
    assert_eq!(thingy["count"], 2, "{thingy}");
    assert_eq!(thingy["transferred"], true, "{thingy}");
    assert_eq!(thingy["repeated_as"], "where is my order", "{thingy}");
    assert_eq!(thingy["suggestion"], "intent:order_status", "{thingy}");
    assert_eq!(thingy["intents"].as_array().unwrap().len(), 3);
    assert!(thingy["intents"][0]["score"].as_f64().unwrap() > 0.0);
    assert!(
        thingy["knowledge"][0]["target"]
            .as_str()
            .unwrap()
            .starts_with("kb:")
    );
    assert!(items.iter().any(|i| i["text"] == "my stuff"), "{queue:#}");
    assert!(queue["intents"].as_array().unwrap().len() >= 5);
    let version = queue["version"].as_u64().unwrap();

    // A harmful change: a held-out way of asking about an order, taught as a cancellation.
    // Refused with the phrasing it broke; the file and the serving version untouched.
    let on_disk = std::fs::read_to_string(&file).unwrap();
    let (status, refused) = review(
        &base,
        "I'm wondering when my delivery will show up",
        "intent:cancel_order",
        "ana",
    );
    assert_eq!(status, 422, "{refused:#}");
    let reasons = refused["reasons"].to_string();
    assert!(
        reasons.contains("I'm wondering when my delivery will show up")
            && reasons.contains("was order_status"),
        "{refused:#}"
    );
    // And one that breaks a scripted conversation: the refusal names it and its line.
    let (status, refused) = review(
        &base,
        "can you check on my order for me",
        "intent:return_refund",
        "ana",
    );
    assert_eq!(status, 422, "{refused:#}");
    let reasons = refused["reasons"].to_string();
    assert!(
        reasons.contains("conversation broke")
            && reasons.contains("hotline.tests.yaml:")
            && reasons.contains("can you check on my order for me"),
        "{refused:#}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), on_disk);
    assert_eq!(registry.version(), version);

    // The queue's suggestion (what the caller's repeat was understood as) goes live: the file
    // has the new example, the live hotline understands it, the queue no longer lists it.
    let (status, live) = review(
        &base,
        "the thingy I got hasn't turned up",
        "intent:order_status",
        "ana",
    );
    assert_eq!(status, 200, "{live:#}");
    assert_eq!(live["change"]["version"], version + 1);
    assert_eq!(
        live["gate"]["now_understood_as"], "order_status",
        "{live:#}"
    );
    assert!(
        live["gate"]["tests_total"].as_u64().unwrap() >= 20,
        "{live:#}"
    );
    assert!(
        live["gate"]["heldout_after"].as_u64() >= live["gate"]["heldout_before"].as_u64(),
        "{live:#}"
    );
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("      - the thingy I got hasn't turned up\n")
    );
    assert_eq!(
        voxnav::dialplan::testing::first_turn_decision(
            &registry.current(),
            "the thingy I got hasn't turned up"
        ),
        "order_status"
    );
    let (_, queue) = api(&base, "GET", &format!("{HOTLINE}/review"), None);
    assert!(
        queue["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["text"] != "the thingy I got hasn't turned up"),
        "{queue:#}"
    );
    let (status, again) = review(
        &base,
        "THE thingy I got hasn't turned up",
        "intent:order_status",
        "bo",
    );
    assert_eq!(status, 409, "already an example: {again:#}");

    // Out of scope: no file change, out of the queue.
    let before = std::fs::read_to_string(&file).unwrap();
    let (status, oos) = review(&base, "my stuff", "out_of_scope", "bo");
    assert_eq!(status, 200, "{oos:#}");
    assert_eq!(oos["change"]["version"], Value::Null);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // The file edited on disk (an admin's editor) since it was loaded: refused, nothing lost.
    let edited = format!("{before}# an admin's note\n");
    std::fs::write(&file, &edited).unwrap();
    let (status, conflict) = review(
        &base,
        "where has my parcel got to",
        "intent:order_status",
        "ana",
    );
    assert_eq!(status, 409, "{conflict:#}");
    assert!(
        conflict["error"]
            .as_str()
            .unwrap()
            .contains("changed on disk"),
        "{conflict:#}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), edited);
    registry.reload().unwrap();

    // Two trainers at once: both changes land, one after the other, each in the log.
    let versions: Vec<u64> = std::thread::scope(|s| {
        let a = s.spawn(|| {
            review(
                &base,
                "where has my parcel got to",
                "intent:order_status",
                "ana",
            )
        });
        let b = s.spawn(|| review(&base, "when do you guys open", "kb:service_hours", "bo"));
        [a.join().unwrap(), b.join().unwrap()]
            .into_iter()
            .map(|(status, body)| {
                assert_eq!(status, 200, "{body:#}");
                body["change"]["version"].as_u64().unwrap()
            })
            .collect()
    });
    assert_ne!(versions[0], versions[1]);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("- where has my parcel got to\n"), "{text}");
    assert!(text.contains("- when do you guys open\n"), "{text}");
    assert!(
        text.contains("# an admin's note"),
        "the admin's edit is kept"
    );

    // Revert: an older change cannot be reverted over later ones; the latest can, in one step.
    let (_, log) = api(&base, "GET", &format!("{HOTLINE}/changes"), None);
    let changes = log["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 4, "{log:#}");
    let latest = changes[0]["id"].as_u64().unwrap();
    let first = changes[3]["id"].as_u64().unwrap();
    assert_eq!(changes[3]["trainer"], "ana");
    let revert = |id: u64, who: &str| {
        api(
            &base,
            "POST",
            &format!("{HOTLINE}/changes/{id}/revert"),
            Some(json!({ "trainer": who })),
        )
    };
    let (status, body) = revert(first, "bo");
    assert_eq!(status, 409, "{body:#}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("revert them first"),
        "{body:#}"
    );
    let before_latest = std::fs::read_to_string(&file).unwrap();
    let (status, body) = revert(latest, "bo");
    assert_eq!(status, 200, "{body:#}");
    let after = std::fs::read_to_string(&file).unwrap();
    assert_ne!(after, before_latest);
    assert_eq!(after.lines().count() + 1, before_latest.lines().count());
    let (status, _) = revert(latest, "bo");
    assert_eq!(status, 409, "already reverted");

    // Bad input: who is unknown, a target that does not exist.
    assert_eq!(review(&base, "hello", "intent:order_status", " ").0, 400);
    assert_eq!(review(&base, "hello", "intent:no_such", "ana").0, 400);
    assert_eq!(review(&base, "hello", "somewhere", "ana").0, 400);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same loop in the dashboard, in headless Chromium: the trainer clicks the suggested
/// intent, sees it go live, reverts it, and marks another phrasing out of scope.
#[test]
fn the_dashboard_review_page_teaches_reverts_and_dismisses_in_a_browser() {
    let (dir, file, _registry, base) = setup("browser");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut page = voxnav::testkit::Browser::open(
        &format!("{base}/dashboard#token={TOKEN}&review"),
        &dir.join("browser"),
    );
    let wait = Duration::from_secs(30);
    page.eval("$('trainer').value = 'chen'; $('trainer').dispatchEvent(new Event('change')); true");
    let row = r#"document.querySelector('tr.review-item[data-text="the thingy I got hasn\'t turned up"]')"#;
    let suggested = page.wait_for(
        &format!("{row}.querySelector('button.suggested').dataset.target"),
        wait,
    );
    assert_eq!(suggested, "intent:order_status");
    let shown = page.eval(&format!("{row}.innerText")).to_string();
    assert!(shown.contains("then said: where is my order"), "{shown}");
    assert!(shown.contains("went to a person"), "{shown}");
    assert!(
        shown.contains("order_status 0."),
        "the nearest intents with scores: {shown}"
    );

    // Teach it: one click on the suggestion.
    page.eval(&format!(
        "{row}.querySelector('button.suggested').click(); true"
    ));
    let result = page.wait_for("$('review-result').className === 'ok' && /live as version/.test($('review-result').innerText) && $('review-result').innerText", Duration::from_secs(60));
    assert!(
        result
            .to_string()
            .contains("now understood as order_status"),
        "{result}"
    );
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("- the thingy I got hasn't turned up\n")
    );
    page.wait_for(&format!("!{row}"), wait);
    let change = page.wait_for(
        "document.querySelector('tr.change') && document.querySelector('tr.change').innerText",
        wait,
    );
    assert!(change.to_string().contains("chen"), "{change}");

    // Revert it: the file is as it was, and the phrasing is back in the queue.
    page.eval("document.querySelector('tr.change button').click(); true");
    page.wait_for(
        "/Revert #1: live/.test($('review-result').innerText)",
        Duration::from_secs(60),
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    page.wait_for(&format!("!!{row}"), wait);

    // Out of scope: no file change, the row leaves the queue.
    let stuff = r#"document.querySelector('tr.review-item[data-text="my stuff"]')"#;
    page.wait_for(stuff, wait);
    page.eval(&format!("[...{stuff}.querySelectorAll('button')].find(b => b.textContent === 'Out of scope').click(); true"));
    page.wait_for(
        &format!("$('review-result').className === 'ok' && !{stuff}"),
        wait,
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), original);
    drop(page);
    let _ = std::fs::remove_dir_all(&dir);
}
