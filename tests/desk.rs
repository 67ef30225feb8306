//! The agent desktop (issue 15) in headless Chromium: Alice logs in at `/agent` (a wrong
//! password first) with her browser as her phone (WebRTC; Chromium's fake microphone plays
//! a WAV of her words), goes available, and a caller of the demo hotline who asks for a
//! person is transferred to her. The desk pops the call with the caller's number, the
//! queue, the bot's reason and transcript; she answers on the desk and audio flows both
//! ways: the caller's recording holds her words (Whisper), the browser receives the caller.
//! While they talk, the caller asks a policy question and agent assist shows the knowledge
//! entry that answers it (Whisper on the caller's words, as they are said); when the call
//! ends, Alice saves a wrap-up code and notes, which reach the call record. Garbage on the
//! desk's API gets clear 4xx answers.

use std::time::{Duration, Instant};

use voxnav::testkit::{
    Browser, admin_request, bot_words, espeak_wav_voice, free_udp_port, md5_agent_lines,
    scripted_call_to, serve_desk, temp_dir, wait_for_line,
};

const TOKEN: &str = "desk-token";

#[test]
fn an_agent_takes_a_call_on_the_desk_with_assist_and_wraps_it_up() {
    let dir = temp_dir("desk");
    let agents = format!(
        "agents:\n  alice:\n    name: Alice Chen\n    queues: [general]\n{}",
        md5_agent_lines("alice", "alice-pw")
    );
    std::fs::write(dir.join("agents.yaml"), agents).unwrap();
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/dialplans/hotline.yaml");
    std::fs::copy(demo, dir.join("desk.yaml")).unwrap();
    let config = "transfer:\n  queue_wait_s: 60\n  announce_every_s: 0\n  ring_timeout_s: 10\n";
    std::fs::write(dir.join("voxnav.yaml"), config).unwrap();
    let admin = format!("127.0.0.1:{}", free_udp_port());
    let records = dir.join("records.db");
    let (_server, lines, voxnav) = serve_desk(
        env!("CARGO_BIN_EXE_voxnav"),
        &dir,
        &[
            "--admin-listen",
            &admin,
            "--admin-token",
            TOKEN,
            "--records",
            records.to_str().unwrap(),
        ],
    );
    // Alice's microphone (Chromium loops the file): her words, then a second of quiet, so
    // each time round is an utterance of its own.
    let words = espeak_wav_voice(
        "Hello, this is Alice from customer care. How can I help you today?",
        "en-us",
        48_000,
        &dir,
        "alice-words",
    );
    let voice = dir.join("alice.wav");
    let padded = std::process::Command::new("sox")
        .arg(&words)
        .arg(&voice)
        .args(["pad", "0", "1"])
        .status()
        .expect("sox is installed by the test setup");
    assert!(padded.success());

    // Log in: a wrong password is refused, the right one opens Alice's desk and her
    // browser phone.
    let mut page = Browser::open_with_microphone(
        &format!("http://{admin}/agent"),
        &dir.join("browser"),
        &voice,
    );
    let log_in = |page: &mut Browser, password: &str| {
        page.eval(&format!(
            "document.getElementById('agent').value = 'alice'; \
             document.getElementById('password').value = '{password}'; \
             document.getElementById('login-form').requestSubmit(); true"
        ));
    };
    log_in(&mut page, "guess");
    page.wait_for(
        "document.getElementById('login-error').textContent.includes('wrong agent or password')",
        Duration::from_secs(10),
    );
    log_in(&mut page, "alice-pw");
    page.wait_for(
        "document.getElementById('state').textContent === 'logged out' \
         && document.getElementById('who').textContent.includes('Alice Chen')",
        Duration::from_secs(10),
    );
    wait_for_line(
        &lines,
        "voxnav: agent alice's browser phone is connected",
        Duration::from_secs(20),
    )
    .expect("the browser phone connects (ICE, DTLS)");
    page.wait_for(
        "document.getElementById('phone-status').textContent.includes('connected. Calls ring here')",
        Duration::from_secs(10),
    );
    page.eval("document.querySelector('button[data-state=available]').click(); true");
    page.wait_for(
        "document.getElementById('state').textContent === 'available'",
        Duration::from_secs(10),
    );

    // The caller asks for a person, then, talking to Alice, asks about the warranty.
    let script = dir.join("caller.yaml");
    std::fs::write(
        &script,
        "turns:\n  - say: \"just put me through to a real person\"\n  \
         - say: \"how long is the guarantee on a laptop\"\n    after_ms: 9000\n  \
         - hangup: true\n    after_ms: 9000\n",
    )
    .unwrap();
    let caller = std::thread::spawn({
        let (uri, script) = (format!("sip:ivr@{voxnav}"), script.clone());
        move || scripted_call_to(env!("CARGO_BIN_EXE_voxnav"), &uri, &script, &[])
    });
    let text = |page: &mut Browser, id: &str| -> String {
        let value = page.eval(&format!("document.getElementById('{id}').textContent"));
        value.as_str().unwrap_or_default().to_string()
    };
    // The call rings on the desk: Alice answers there.
    page.wait_for(
        "document.getElementById('call-title').textContent === 'Incoming call' \
         && !document.getElementById('answer').hidden",
        Duration::from_secs(30),
    );
    page.eval("document.getElementById('answer').click(); true");
    page.wait_for(
        "document.getElementById('call-title').textContent === 'On a call'",
        Duration::from_secs(10),
    );
    assert_eq!(text(&mut page, "queue"), "general");
    assert!(!text(&mut page, "reason").is_empty(), "the bot's reason");
    assert!(
        text(&mut page, "transcript").contains("real person"),
        "the bot's transcript: {}",
        text(&mut page, "transcript")
    );
    assert_eq!(text(&mut page, "intent"), "agent");
    // Agent assist: the caller's question, and the entry that answers it.
    let suggested = page.wait_for(
        "document.querySelector('#assist .suggestion .topic')?.textContent",
        Duration::from_secs(40),
    );
    assert_eq!(suggested, "the warranty", "{}", text(&mut page, "assist"));
    assert!(text(&mut page, "assist").contains("one year"), "the answer");
    // Both sides are transcribed: Alice's words are on her desk too. (Either half of her
    // greeting: on a loaded machine Whisper once heard "Costumer Care" every time round.)
    page.wait_for(
        "[...document.querySelectorAll('#assist .said.agent')].some((e) => \
           /customer care|help you today/.test(e.textContent.toLowerCase()))",
        Duration::from_secs(20),
    );
    let assisted =
        wait_for_line(&lines, "voxnav: assist ", Duration::from_secs(5)).expect("the assist line");
    assert!(assisted.contains("\"id\":\"warranty\""), "{assisted}");
    // The figure for the notes (`--nocapture`): the caller's voice end to the suggestion.
    let latency = &voxnav::testkit::records(&[assisted], "assist")[0]["latency_ms"];
    println!("assist latency: {latency} ms (the desk's held request answers with it)");

    // The caller's audio reached the browser (its WebRTC statistics)...
    let received = page.wait_for(
        "(async () => { let n = 0; (await pc.getStats()).forEach((s) => { \
           if (s.type === 'inbound-rtp' && s.kind === 'audio' && s.totalAudioEnergy > 0) \
             n = s.packetsReceived; }); \
           return n > 50 ? n : null; })()",
        Duration::from_secs(10),
    );
    println!("the browser received {received} packets of the caller's audio");

    // The caller hangs up: their recording holds Alice's words. Alice wraps up with a code
    // and notes.
    let report = caller.join().unwrap();
    let heard = bot_words(&report);
    // (espeak's "Alice" comes out of Whisper as other words: the rest of her greeting is the
    // test.)
    assert!(
        heard.contains("customer care") || heard.contains("help you today"),
        "the caller hears Alice: {heard}"
    );
    let call_id = page.wait_for(
        "!document.getElementById('wrap-up-section').hidden && view.wrap_up.call_id",
        Duration::from_secs(15),
    );
    let call_id = call_id.as_str().unwrap().to_string();
    assert!(report["ended"].as_str().is_some(), "{report}");
    page.eval(
        "document.getElementById('code').value = 'resolved'; \
         document.getElementById('notes').value = 'explained the laptop warranty'; \
         document.getElementById('wrap-up-form').requestSubmit(); true",
    );
    page.wait_for(
        "document.getElementById('wrap-up-section').hidden \
         && document.getElementById('state').textContent === 'available'",
        Duration::from_secs(10),
    );
    wait_for_line(&lines, "wrapped up", Duration::from_secs(5)).expect("printed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let record = loop {
        let (status, body) =
            admin_request(&admin, TOKEN, "GET", &format!("/api/calls/{call_id}"), None);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status == 200 && json["call"]["wrap_up_code"] == "resolved" {
            break json["call"].clone();
        }
        assert!(Instant::now() < deadline, "the record: {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(record["agent"], "alice");
    assert_eq!(record["wrap_up_notes"], "explained the laptop warranty");

    // Garbage on the desk's API: clear refusals, nothing changes.
    let desk_token = page.eval("sessionStorage.getItem('voxnav-desk')");
    let bearer = format!("Bearer {}", desk_token.as_str().unwrap());
    let desk = |method: &str, path: &str, auth: &str, body: Option<&str>| {
        let headers = [
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ];
        voxnav::net::http::fetch_with_headers(
            method,
            &format!("http://{admin}{path}"),
            &headers,
            body,
            Duration::from_secs(5),
        )
        .expect("the desk answers")
    };
    let garbage = "\u{1}{\"state\": availa";
    assert_eq!(
        desk("POST", "/api/desk/state", &bearer, Some(garbage)).0,
        400
    );
    assert_eq!(desk("POST", "/api/desk/state", &bearer, Some("[1]")).0, 400);
    let offer = Some("{\"sdp\":\"v=0\\r\\nnot an offer\"}");
    let (status, body) = desk("POST", "/api/desk/phone", &bearer, offer);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("offer"), "{body}");
    assert_eq!(desk("POST", "/api/desk/phone", &bearer, Some("{}")).0, 400);
    let state = Some("{\"state\":\"asleep\"}");
    assert_eq!(desk("POST", "/api/desk/state", &bearer, state).0, 400);
    assert_eq!(desk("GET", "/api/desk", "Bearer forged", None).0, 401);
    assert_eq!(
        desk("GET", "/api/desk", TOKEN, None).0,
        401,
        "not the admin's"
    );
    let again = format!("{{\"call_id\":\"{call_id}\",\"code\":\"resolved\"}}");
    assert_eq!(
        desk("POST", "/api/desk/wrap-up", &bearer, Some(&again)).0,
        409,
        "wrapped up once"
    );
    let (status, body) = desk("GET", "/api/desk", &bearer, None);
    assert_eq!(status, 200);
    assert!(body.contains("\"state\":\"available\""), "{body}");
    // A refused offer leaves the connected phone alone.
    assert!(body.contains("\"phone\":\"connected\""), "{body}");
    // The long poll: a request holding Alice's view answers with her change of state.
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fingerprint = view["fingerprint"]
        .as_str()
        .expect("a fingerprint")
        .to_string();
    let held = std::thread::spawn({
        let (admin, bearer) = (admin.clone(), bearer.clone());
        move || {
            voxnav::net::http::fetch_with_headers(
                "GET",
                &format!("http://{admin}/api/desk?wait={fingerprint}"),
                &[("Authorization", bearer.as_str())],
                None,
                Duration::from_secs(60),
            )
        }
    });
    let on_break = Some("{\"state\":\"break\"}");
    assert_eq!(desk("POST", "/api/desk/state", &bearer, on_break).0, 200);
    let (status, held) = held.join().unwrap().expect("the held view answers");
    assert_eq!(status, 200);
    assert!(held.contains("\"state\":\"break\""), "{held}");
    // The page shows it too (it long-polls the same way).
    page.wait_for(
        "document.getElementById('state').textContent === 'break'",
        Duration::from_secs(30),
    );
    // Leaving the desk closes the browser phone.
    page.eval("document.getElementById('logout').click(); true");
    wait_for_line(
        &lines,
        "voxnav: agent alice's browser phone is gone",
        Duration::from_secs(10),
    )
    .expect("closed with the desk");
    let _ = std::fs::remove_dir_all(&dir);
}
