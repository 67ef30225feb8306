//! Support for tests and benchmarks: word error rate, the telephone channel, and test speech
//! from espeak-ng (a different voice from the product's, so tests do not only hear Piper).
//! Not used by the server.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::media::g711::Law;
use crate::models::ModelPaths;
use crate::speech::text;

/// The installed models; tests fail (not skip) without them: the README's test command installs them.
pub fn installed_models() -> ModelPaths {
    let paths = ModelPaths::default();
    assert!(
        paths
            .whisper_ggml(crate::models::paths::WhisperModel::Base)
            .exists(),
        "models are not installed in {}; run `make test` (or `voxnav models install`)",
        paths.root.display()
    );
    paths
}

/// Words for WER: numbers normalised to words the same way on both sides, lower case, no
/// punctuation, so "47219", "4 7 2 1 9" and "four seven two one nine" compare equal.
pub fn words(s: &str) -> Vec<String> {
    text::normalize(s)
        .to_lowercase()
        .replace(['-', ','], " ")
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '\'')
        .collect::<String>()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// Levenshtein distance between two sequences: (errors, reference length).
fn edit_distance<T: PartialEq>(r: &[T], h: &[T]) -> (usize, usize) {
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut cur = vec![i + 1; h.len() + 1];
        for (j, hw) in h.iter().enumerate() {
            let sub = prev[j] + usize::from(rw != hw);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

/// Word-level Levenshtein distance: (errors, reference length).
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    edit_distance(&words(reference), &words(hypothesis))
}

/// Character-level Levenshtein distance for Chinese: (errors, reference length), over letters
/// and digits only (punctuation and spaces dropped: Whisper punctuates as it likes).
pub fn char_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let chars = |s: &str| -> Vec<char> { s.chars().filter(|c| c.is_alphanumeric()).collect() };
    edit_distance(&chars(reference), &chars(hypothesis))
}

/// 8 kHz PCM through G.711 mu-law and back: what the recognizer hears on a call.
pub fn telephone(pcm: &[i16]) -> Vec<f32> {
    let law = Law::Ulaw;
    law.decode(&law.encode(pcm))
        .iter()
        .map(|&s| s as f32 / 32_768.0)
        .collect()
}

/// Speaks `text` with espeak-ng (not the product's voice) into an 8 kHz mono 16-bit WAV.
pub fn espeak_wav(text: &str, dir: &Path, name: &str) -> PathBuf {
    espeak_wav_voice(text, "en-us", 8_000, dir, name)
}

/// Like `espeak_wav` with an espeak-ng voice such as "en-us+m3" and an output rate.
pub fn espeak_wav_voice(text: &str, voice: &str, rate: u32, dir: &Path, name: &str) -> PathBuf {
    let raw = dir.join(format!("{name}.22k.wav"));
    let out = dir.join(format!("{name}.wav"));
    let status = Command::new("espeak-ng")
        .args(["-v", voice, "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("espeak-ng is installed by the test setup");
    assert!(status.success(), "espeak-ng failed");
    let status = Command::new("sox")
        .arg(&raw)
        // -D: no dither, so the same text always gives the same audio (sox dithers by default).
        .args(["-D", "-r", &rate.to_string(), "-c", "1", "-b", "16"])
        .arg(&out)
        .status()
        .expect("sox is installed by the test setup");
    assert!(status.success());
    out
}

/// The demo hotline (`dialplans/hotline.yaml`) built with the real MiniLM embedder.
pub fn demo_hotline() -> std::sync::Arc<crate::dialplan::engine::Hotline> {
    let plan = crate::dialplan::load_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("dialplans/hotline.yaml"),
    )
    .expect("the demo hotline loads");
    let (weights, vocab) = ModelPaths::default().minilm();
    let embedder = std::sync::Arc::new(
        crate::nlu::minilm::MiniLm::load(&weights, &vocab).expect("models installed"),
    );
    std::sync::Arc::new(crate::dialplan::engine::Hotline::build(plan, embedder))
}

/// `text` spoken by an espeak-ng `voice`, through G.711 (what a call would carry).
pub fn espeak_telephone(text: &str, voice: &str, dir: &Path, name: &str) -> Vec<f32> {
    let audio = crate::media::wav::read(&espeak_wav_voice(text, voice, 8_000, dir, name))
        .expect("espeak-ng wrote a WAV");
    let pcm: Vec<i16> = audio
        .samples
        .iter()
        .map(|s| (s * 32_767.0) as i16)
        .collect();
    telephone(&pcm)
}

/// Resident memory of this process in MiB (VmRSS), for benchmarks.
pub fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Peak resident memory of this process in MiB (VmHWM).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Runs this benchmark binary again with `VOXNAV_BENCH_ENGINE=engine`, in which mode it loads
/// only that engine, uses it once and prints its peak RSS as the last line: memory figures from
/// fresh processes, not polluted by pages an earlier engine freed.
pub fn peak_rss_of_engine_in_fresh_process(engine: &str) -> Option<f64> {
    let exe = std::env::current_exe().ok()?;
    let out = std::process::Command::new(exe)
        .env("VOXNAV_BENCH_ENGINE", engine)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
}

/// The median of `values` (NaN when there are none: a figure that was not measured).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// UDP payloads of a classic little-endian pcap file with Ethernet framing and IPv4 (what SIPp
/// ships in /usr/share/sip-tester). Other records are skipped.
pub fn pcap_udp_payloads(path: &Path) -> Vec<Vec<u8>> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&data[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
    let mut payloads = Vec::new();
    let mut pos = 24;
    while pos + 16 <= data.len() {
        let incl = u32::from_le_bytes(data[pos + 8..pos + 12].try_into().unwrap()) as usize;
        let frame = &data[(pos + 16).min(data.len())..(pos + 16 + incl).min(data.len())];
        pos += 16 + incl;
        // Ethernet (14) with IPv4 ethertype, then IPv4 with protocol 17 (UDP).
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] || frame[14 + 9] != 17 {
            continue;
        }
        let ihl = (frame[14] & 0x0F) as usize * 4;
        let udp = 14 + ihl;
        if let Some(payload) = frame.get(udp + 8..) {
            payloads.push(payload.to_vec());
        }
    }
    payloads
}

/// A UDP port free on loopback right now (for peers a test starts on their own ports).
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// Waits (up to `limit`) until some process has bound loopback UDP `port`: a peer a test
/// started is listening. True when it is.
pub fn wait_for_udp_listener(port: u16, limit: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    false
}

/// A child process killed and reaped however the test ends (a failed assert included).
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `voxnav serve` started by a test, and its stdout lines as they come.
pub struct Server {
    pub process: KillOnDrop,
    pub lines: std::sync::mpsc::Receiver<String>,
    /// Where it listens for SIP (loopback).
    pub port: u16,
    /// Its stderr: the `tracing` log.
    pub log: PathBuf,
}

/// The lines a child process prints, as they come (a thread reads them).
pub fn lines_of(read: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(read).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

/// The first line containing `text` within `limit`; the lines before it are consumed.
pub fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    text: &str,
    limit: std::time::Duration,
) -> Option<String> {
    let deadline = std::time::Instant::now() + limit;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return Some(line),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
    None
}

/// How `child` exited, once it has; None if it still runs after `limit`.
pub fn wait_exit(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

impl Server {
    /// Starts `voxnav` (the binary at `exe`) serving the demo hotline with its order service,
    /// plus `extra` arguments and environment, and waits (up to 90 s) until it listens.
    pub fn start(exe: &str, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_hotline(exe, "dialplans/hotline.yaml", extra, env)
    }

    /// `start` with another dialplan (a path relative to the repository).
    pub fn start_hotline(
        exe: &str,
        dialplan: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut args = vec!["--dialplan", dialplan, "--demo-orders"];
        args.extend_from_slice(extra);
        Self::start_serving(exe, &args, env)
    }

    /// `voxnav serve` on a free loopback port with `args` (the hotlines are up to them).
    pub fn start_serving(exe: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_udp_port();
        let log = temp_dir(&format!("server-{port}")).join("stderr.log");
        let mut child = std::process::Command::new(exe)
            .args(["serve", "--sip-listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().copied())
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("voxnav serve starts");
        let lines = lines_of(child.stdout.take().expect("piped stdout"));
        let first = lines
            .recv_timeout(std::time::Duration::from_secs(90))
            .expect("the listening line");
        assert!(first.contains("SIP listening"), "{first}");
        // Calls wait for readiness (the prompt warm-up done): a call answered during the
        // warm-up competes with it for the synthesiser.
        while lines
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("the ready line")
            != "voxnav: ready"
        {}
        Server {
            process: KillOnDrop(child),
            lines,
            port,
            log,
        }
    }

    /// The lines printed from now until none came for `quiet`.
    pub fn lines_until_quiet(&self, quiet: std::time::Duration) -> Vec<String> {
        std::iter::from_fn(|| self.lines.recv_timeout(quiet).ok()).collect()
    }
}

/// Runs `voxnav call` (the binary at `exe`) against a server on loopback `port` with a
/// script; returns its JSON report.
pub fn scripted_call(exe: &str, port: u16, script: &Path) -> serde_json::Value {
    scripted_call_from(exe, port, script, "voxnav-caller")
}

/// `scripted_call` from the caller number `from`.
pub fn scripted_call_from(exe: &str, port: u16, script: &Path, from: &str) -> serde_json::Value {
    scripted_call_with(exe, port, script, &["--from", from])
}

/// `scripted_call` with more `voxnav call` arguments (`--voice`, `--language`, `--from`).
pub fn scripted_call_with(
    exe: &str,
    port: u16,
    script: &Path,
    extra: &[&str],
) -> serde_json::Value {
    scripted_call_to(exe, &format!("sip:ivr@127.0.0.1:{port}"), script, extra)
}

/// `scripted_call_with` to any SIP URI (a hotline's number: `sip:4001@127.0.0.1:PORT`).
pub fn scripted_call_to(exe: &str, uri: &str, script: &Path, extra: &[&str]) -> serde_json::Value {
    scripted_call_as(exe, uri, script, extra, None)
}

/// `scripted_call_to` from an agent's phone: `(user, password)` answers voxnav's digest
/// challenge (`--auth-user`, `VOXNAV_CALL_PASSWORD`), as for a feature code.
pub fn scripted_call_as(
    exe: &str,
    uri: &str,
    script: &Path,
    extra: &[&str],
    account: Option<(&str, &str)>,
) -> serde_json::Value {
    let mut command = Command::new(exe);
    command.args(["call", uri]);
    if let Some((user, password)) = account {
        command
            .args(["--auth-user", user, "--from", user])
            .env("VOXNAV_CALL_PASSWORD", password);
    }
    let out = command
        .arg("--script")
        .arg(script)
        .arg("--json")
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("voxnav call runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "voxnav call: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("voxnav call "))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    serde_json::from_str(json).unwrap()
}

/// Everything the bot said in a `voxnav call` report, as Whisper heard it on the caller's
/// side: lower-case words (apostrophes kept) separated by single spaces, each prompt after a
/// " / ". Punctuation goes: Whisper writes the same reply as "no colleague" or "no, colleague"
/// from one run of the voice to the next.
pub fn bot_words(report: &serde_json::Value) -> String {
    report["bot"]
        .as_array()
        .map(|b| {
            b.iter()
                .map(|b| {
                    let text = b["text"].as_str().unwrap_or_default().to_lowercase();
                    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
                        .filter(|w| !w.is_empty())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_default()
}

/// The JSON of every `voxnav: KIND {...}` line among `lines`.
pub fn records(lines: &[String], kind: &str) -> Vec<serde_json::Value> {
    let prefix = format!("voxnav: {kind} ");
    lines
        .iter()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|json| serde_json::from_str(json).ok())
        .collect()
}

/// CPU time (utime + stime) of a process in milliseconds, and its resident memory in KB.
pub fn cpu_ms_and_rss_kb(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // After the ")": state is field 0, utime 11, stime 12 (proc(5) fields 14 and 15).
    let cpu = (ticks(11) + ticks(12)) * 10; // 100 ticks per second on Linux
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (cpu, rss)
}

/// A fresh temporary directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxnav-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// How tests run Chromium: headless, off the network (this machine's is closed), no first-run
/// work or background traffic.
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The DOM of `url` after its scripts ran, from headless Chromium (Debian's `chromium`,
/// installed by the test setup). `--virtual-time-budget` lets the page's timers and fetches
/// run before the dump. The flags keep Chromium off the network (this machine's is closed)
/// and out of the user's profile.
pub fn chromium_dom(url: &str, profile: &Path) -> String {
    let out = Command::new("chromium")
        .args(CHROMIUM_FLAGS)
        .args(["--virtual-time-budget=5000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stderr(std::process::Stdio::null())
        .output()
        .expect("chromium is installed by the test setup (make test-deps)");
    assert!(out.status.success(), "chromium failed on {url}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text inside the element with `id` in an HTML dump (up to its closing tag of the same
/// name; enough for the dashboard's leaf elements and table bodies).
pub fn element_text(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let open = dom[..at].rfind('<')?;
    let tag: String = dom[open + 1..]
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect();
    let start = at + dom[at..].find('>')? + 1;
    let end = start + dom[start..].find(&format!("</{tag}>"))?;
    // Tags become spaces; the entities the dump uses become their characters.
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom[start..end].chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    let text = text
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Starts a SIPp caller (`sip-test/SCENARIO`, one call) against a server on loopback `port`;
/// its words, spoken by espeak-ng, go as raw 8 kHz mu-law to `dir/caller.ulaw`, where the
/// scenario streams them from. Wait for it with `wait_with_output`.
pub fn sipp_speaking_caller(
    dir: &Path,
    scenario: &str,
    words: &str,
    port: u16,
) -> std::process::Child {
    let speech = crate::media::wav::read(&espeak_wav(words, dir, "caller")).unwrap();
    let pcm: Vec<i16> = speech
        .samples
        .iter()
        .map(|&s| crate::media::wav::f32_to_i16(s))
        .collect();
    std::fs::write(dir.join("caller.ulaw"), Law::Ulaw.encode(&pcm)).unwrap();
    Command::new("sipp")
        .args(["-i", "127.0.0.1", "-p", &free_udp_port().to_string()])
        .args(["-mp", &(free_udp_port() & !1).to_string()])
        .args([
            "-m",
            "1",
            "-l",
            "1",
            "-timeout",
            "60",
            "-timeout_error",
            "-nostdin",
        ])
        .arg("-sf")
        .arg(format!(
            "{}/sip-test/{scenario}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(format!("127.0.0.1:{port}"))
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sipp")
}

/// A `voxnav serve` for benchmarks, on the demo hotline, returned once it is ready (its
/// prompt cache warm, so every measurement sees the same server); stderr goes to `log`, its
/// stdout lines (decision and latency records) are kept.
pub struct BenchServer {
    pub process: KillOnDrop,
    pub pid: u32,
    pub port: u16,
    pub log: PathBuf,
    pub lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl BenchServer {
    pub fn start(exe: &str, extra: &[&str], log: &Path) -> BenchServer {
        use std::io::BufRead;
        let port = free_udp_port();
        let mut child = Command::new(exe)
            .args(["serve", "--sip-listen", &format!("127.0.0.1:{port}")])
            .args(["--dialplan", "dialplans/hotline.yaml", "--demo-orders"])
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).expect("a log file"))
            .spawn()
            .expect("voxnav serve");
        let pid = child.id();
        let stdout = child.stdout.take().expect("piped stdout");
        let process = KillOnDrop(child);
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().and_then(Result::ok).unwrap_or_default();
        assert!(first.contains("SIP listening"), "{first}");
        for line in lines.by_ref() {
            if line.ok().as_deref() == Some("voxnav: ready") {
                break;
            }
        }
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = kept.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        BenchServer {
            process,
            pid,
            port,
            log: log.to_path_buf(),
            lines: kept,
        }
    }

    /// The stdout lines so far, and forgets them.
    pub fn take_lines(&self) -> Vec<String> {
        std::mem::take(&mut *self.lines.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// How many times the server offered the keypad because recognition was unavailable.
    pub fn keypad_offers(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .matches("ASR unavailable")
            .count()
    }
}

/// Starts `n` scripted callers (`voxnav call --json --no-transcribe`) 400 ms apart against a
/// server on `port`, waits for them, and returns their reports.
pub fn scripted_call_reports(
    exe: &str,
    port: u16,
    script: &Path,
    n: usize,
) -> Vec<serde_json::Value> {
    let callers: Vec<_> = (0..n)
        .map(|i| {
            if i > 0 {
                std::thread::sleep(std::time::Duration::from_millis(400));
            }
            Command::new(exe)
                .args(["call", &format!("sip:ivr@127.0.0.1:{port}")])
                .arg("--script")
                .arg(script)
                .args(["--json", "--no-transcribe"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("voxnav call")
        })
        .collect();
    callers
        .into_iter()
        .filter_map(|c| {
            let out = c.wait_with_output().expect("caller ends");
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            text.lines()
                .find_map(|l| l.strip_prefix("voxnav call "))
                .and_then(|json| serde_json::from_str(json).ok())
        })
        .collect()
}

/// Starts `n` scripted callers and returns every turn's voice-to-voice latency (ms, measured
/// on the caller's side).
pub fn scripted_callers(exe: &str, port: u16, script: &Path, n: usize) -> Vec<u64> {
    scripted_call_reports(exe, port, script, n)
        .iter()
        .flat_map(|v| {
            v["voice_to_voice_ms"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|x| x.as_u64())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The nearest-rank value at fraction `p` of sorted values (0 when empty).
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A caller script for benchmarks (espeak-ng speech, not the product's voice): barges into
/// the greeting with a knowledge question, then asks two more (knowledge, intent).
pub fn bench_caller_script(dir: &Path) -> PathBuf {
    espeak_wav("what are your opening hours", dir, "hours");
    espeak_wav("how much is shipping", dir, "shipping");
    espeak_wav("I want to return an item", dir, "refund");
    let script = dir.join("caller.yaml");
    std::fs::write(
        &script,
        "turns:\n  - wav: hours.wav\n    at_ms: 1500\n  - wav: shipping.wav\n  - wav: refund.wav\n",
    )
    .unwrap();
    script
}

/// The admin API serving `config` on a loopback port, on a thread of its own; its base URL.
pub fn admin_on_loopback(config: crate::ops::admin::AdminConfig) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            let _ = tx.send(listener.local_addr().expect("bound"));
            let _ = crate::ops::admin::serve(listener, config).await;
        });
    });
    format!("http://{}", rx.recv().expect("the admin API started"))
}

/// Headless Chromium driven over the DevTools protocol (`--remote-debugging-pipe`: JSON
/// messages ending in NUL on file descriptors 3 and 4, here two FIFOs the shell opens), for
/// tests that click: evaluate script in the page and wait for what it shows.
pub struct Browser {
    child: std::process::Child,
    to: std::fs::File,
    from: std::io::BufReader<std::fs::File>,
    next_id: u64,
    session: String,
    dir: PathBuf,
}

impl Browser {
    /// Opens `url` in a new headless Chromium with its own profile under `dir`.
    pub fn open(url: &str, dir: &Path) -> Self {
        Self::open_with(url, dir, &[])
    }

    /// Opens `url` with a microphone that plays `wav` (16-bit PCM, looped) and grants the
    /// page's request for it; WebRTC may use loopback (the test's server is on it).
    pub fn open_with_microphone(url: &str, dir: &Path, wav: &Path) -> Self {
        let capture = format!("--use-file-for-fake-audio-capture={}", wav.display());
        let flags = [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            capture.as_str(),
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
        ];
        Self::open_with(url, dir, &flags)
    }

    /// Opens `url` with Chromium flags added to the usual ones (no shell quoting: plain
    /// flags and paths without spaces).
    pub fn open_with(url: &str, dir: &Path, extra: &[&str]) -> Self {
        std::fs::create_dir_all(dir).expect("browser folder");
        let (to_browser, from_browser) = (dir.join("cdp-in"), dir.join("cdp-out"));
        for fifo in [&to_browser, &from_browser] {
            let _ = std::fs::remove_file(fifo);
            let made = Command::new("mkfifo").arg(fifo).status().expect("mkfifo");
            assert!(made.success(), "mkfifo {}", fifo.display());
        }
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec chromium {} {} --remote-debugging-pipe --user-data-dir=\"$1/profile\" 3<\"$1/cdp-in\" 4>\"$1/cdp-out\"",
                CHROMIUM_FLAGS.join(" "),
                extra.join(" ")
            ))
            .arg("sh")
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("chromium is installed by the test setup (make test-deps)");
        // The shell opens fd 3 (blocking until this end opens), then fd 4: the same order here.
        let to = std::fs::OpenOptions::new()
            .write(true)
            .open(&to_browser)
            .expect("the DevTools pipe");
        let from =
            std::io::BufReader::new(std::fs::File::open(&from_browser).expect("the DevTools pipe"));
        let mut browser = Self {
            child,
            to,
            from,
            next_id: 0,
            session: String::new(),
            dir: dir.to_path_buf(),
        };
        let target = browser.command(
            "Target.createTarget",
            serde_json::json!({ "url": "about:blank" }),
        );
        let attached = browser.command(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": target["targetId"], "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        browser.command("Page.navigate", serde_json::json!({ "url": url }));
        // Navigation answers when it starts; the page is ready when its document has loaded.
        browser.wait_for(
            &format!(
                "document.readyState === 'complete' && location.href.startsWith({})",
                serde_json::json!(url.split('#').next().unwrap_or(url))
            ),
            std::time::Duration::from_secs(30),
        );
        browser
    }

    /// Sends one command (to the page once attached) and returns its result.
    fn command(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use std::io::{BufRead, Write};
        self.next_id += 1;
        let mut message =
            serde_json::json!({ "id": self.next_id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = self.session.clone().into();
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to Chromium");
        loop {
            let mut reply = Vec::new();
            let n = self
                .from
                .read_until(0, &mut reply)
                .expect("read from Chromium");
            assert!(n > 0, "Chromium closed the DevTools pipe during {method}");
            reply.pop();
            let reply: serde_json::Value = serde_json::from_slice(&reply).expect("DevTools JSON");
            if reply["id"] == self.next_id {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The value of a script expression in the page (promises awaited).
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.command(
            "Runtime.evaluate",
            serde_json::json!({ "expression": expression, "awaitPromise": true, "returnByValue": true }),
        );
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {result}"
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy in the page (it is re-evaluated every 100 ms, up to
    /// `timeout`); returns its value.
    pub fn wait_for(
        &mut self,
        expression: &str,
        timeout: std::time::Duration,
    ) -> serde_json::Value {
        let started = std::time::Instant::now();
        loop {
            let value = self.eval(&format!(
                "(() => {{ try {{ return {expression}; }} catch (_) {{ return null; }} }})()"
            ));
            let truthy = !matches!(
                &value,
                serde_json::Value::Null | serde_json::Value::Bool(false)
            ) && value != serde_json::json!("")
                && value != serde_json::json!(0);
            if truthy {
                return value;
            }
            assert!(
                started.elapsed() < timeout,
                "the page never showed `{expression}`; it shows: {}",
                self.eval("document.body.innerText")
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PostgreSQL server of a test's own, in a temporary directory, on a free loopback port
/// (Debian's `postgresql`, installed by the test setup; its system service is not used).
/// PostgreSQL refuses to run as root: as root, the server runs as the `postgres` user the
/// package creates. Stopped (immediately) when dropped.
pub struct Postgres {
    pub data: PathBuf,
    pub port: u16,
    bin: PathBuf,
    run_as: Option<String>,
}

impl Postgres {
    /// The newest installed server's programs: Debian keeps them in
    /// /usr/lib/postgresql/VERSION/bin, off the PATH.
    fn bin_dir() -> PathBuf {
        let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let v = e.file_name().to_str()?.parse().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").exists().then_some((v, bin))
            })
            .collect();
        versions.sort();
        versions.pop().map(|(_, bin)| bin).expect(
            "PostgreSQL is installed (apt install postgresql: scripts/install-deps.sh --test)",
        )
    }

    /// Makes a database cluster in `dir`/pgdata with a `voxnav` superuser (trust on
    /// loopback) and a `voxnav` database, and starts it.
    pub fn start(dir: &Path) -> Postgres {
        let data = dir.join("pgdata");
        std::fs::create_dir_all(&data).unwrap();
        let run_as = (effective_uid() == 0).then(|| "postgres".to_string());
        if run_as.is_some() {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&data)
                .status()
                .expect("chown");
            assert!(status.success(), "chown {}", data.display());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            data,
            port,
            bin: Self::bin_dir(),
            run_as,
        };
        let data = pg.data.to_str().unwrap().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "voxnav",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        pg.start_again();
        let status = std::process::Command::new(pg.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "voxnav",
                "voxnav",
            ])
            .status()
            .expect("createdb");
        assert!(status.success(), "createdb");
        pg
    }

    /// One of the server's programs, to run as the server's user.
    fn command(&self, program: &str) -> std::process::Command {
        let exe = self.bin.join(program);
        match &self.run_as {
            Some(user) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", user, "--"]).arg(exe);
                c
            }
            None => std::process::Command::new(exe),
        }
    }

    /// Runs one of the server's programs, asserting it succeeds.
    fn run(&self, program: &str, args: &[&str]) {
        let out = self
            .command(program)
            .args(args)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again) and waits until it accepts connections (`pg_ctl -w`).
    pub fn start_again(&self) {
        let data = self.data.to_str().unwrap();
        let log = self.data.join("server.log");
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {data} -c max_connections=200",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "-o",
                &options,
                "start",
            ],
        );
    }

    /// Stops the server: `fast` ends every session at once (what an outage looks like to
    /// clients) and waits until it is down.
    pub fn stop(&self) {
        self.run(
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    /// The URL of the test database.
    pub fn url(&self) -> String {
        format!("postgres://voxnav@127.0.0.1:{}/voxnav", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data.to_str().unwrap_or_default().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// `voxnav serve` on loopback with `args` (after `--sip-listen 127.0.0.1:0`, and `--no-records`
/// unless `args` give `--records`):
/// the process, its stdout lines, and the SIP address it listens on, once it is ready.
pub fn serve_ready<S: AsRef<std::ffi::OsStr>>(
    exe: &str,
    args: &[S],
) -> (KillOnDrop, std::sync::mpsc::Receiver<String>, String) {
    use std::time::Duration;
    let mut server = KillOnDrop(
        Command::new(exe)
            .args(["serve", "--sip-listen", "127.0.0.1:0"])
            // No records unless the test asks for them.
            .args((!args.iter().any(|a| a.as_ref() == "--records")).then_some("--no-records"))
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("voxnav serve starts"),
    );
    let lines = lines_of(server.0.stdout.take().unwrap());
    let listening =
        wait_for_line(&lines, "SIP listening", Duration::from_secs(30)).expect("voxnav listens");
    let address = listening.rsplit(' ').next().unwrap().to_string();
    wait_for_line(&lines, "voxnav: ready", Duration::from_secs(60)).expect("voxnav is ready");
    (server, lines, address)
}

/// SIPp (Debian's sip-tester) with one of the repository's `sip-test/` scenarios on
/// loopback, giving up after 60 s.
pub fn sipp_scenario(scenario: &str) -> Command {
    let mut c = Command::new("sipp");
    c.arg("-sf")
        .arg(format!(
            "{}/sip-test/{scenario}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args([
            "-i",
            "127.0.0.1",
            "-nostdin",
            "-timeout",
            "60",
            "-timeout_error",
        ]);
    c
}

/// A SIPp phone playing `scenario` (`sip-test/`) for `calls` calls on loopback `port`, its
/// media on a free even port, its peer voxnav at `voxnav`; killed on drop. The agents'
/// scenarios send `dir/agent.ulaw` (written here: a second of quiet room noise) as their RTP.
pub fn sipp_phone(scenario: &str, calls: u32, port: u16, voxnav: &str, dir: &Path) -> KillOnDrop {
    let noise: Vec<i16> = (0..8000u32)
        .map(|i| ((i.wrapping_mul(2_654_435_761) >> 24) as i16 - 128) / 4)
        .collect();
    std::fs::write(dir.join("agent.ulaw"), Law::Ulaw.encode(&noise)).unwrap();
    KillOnDrop(
        sipp_scenario(scenario)
            .args(["-m", &calls.to_string(), "-p", &port.to_string()])
            .args(["-mp", &(free_udp_port() & !1).to_string()])
            .arg(voxnav)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("sipp (sip-tester)"),
    )
}

/// `serve_ready` with the desk of the ACD tests: `desk.yaml` (dialplan), `agents.yaml` and
/// `voxnav.yaml` (config) from `dir`, one recognition job, then `extra` arguments.
pub fn serve_desk(
    exe: &str,
    dir: &Path,
    extra: &[&str],
) -> (KillOnDrop, std::sync::mpsc::Receiver<String>, String) {
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    for (flag, file) in [
        ("--dialplan", "desk.yaml"),
        ("--agents", "agents.yaml"),
        ("--config", "voxnav.yaml"),
    ] {
        args.extend([flag.into(), dir.join(file).into()]);
    }
    args.extend(["--asr-jobs", "1"].iter().chain(extra).map(Into::into));
    serve_ready(exe, &args)
}

/// An admin API request on `admin` (host:port) with the bearer `token`: status and body.
pub fn admin_request(
    admin: &str,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    crate::net::http::fetch_with_headers(
        method,
        &format!("http://{admin}{path}"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/json"),
        ],
        body,
        std::time::Duration::from_secs(5),
    )
    .expect("the admin API answers")
}

/// `agent`'s state as `GET /api/agents` shows it ("" for an agent it does not list).
pub fn agent_state(admin: &str, token: &str, agent: &str) -> String {
    let (_, body) = admin_request(admin, token, "GET", "/api/agents", None);
    let agents: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    (agents["agents"].as_array().into_iter().flatten())
        .find(|a| a["id"] == agent)
        .map(|a| a["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Registers `agent`'s phone listening on loopback `phone_port` with voxnav at `voxnav`
/// (`sip-test/agent_register.xml`, digest with `password`); true when it succeeded.
pub fn register_agent_phone(
    voxnav: &str,
    dir: &Path,
    agent: &str,
    password: &str,
    phone_port: u16,
) -> bool {
    sipp_scenario("agent_register.xml")
        .args(["-m", "1", "-p", &free_udp_port().to_string(), "-s", agent])
        .args(["-au", agent, "-ap", password])
        .args(["-key", "phone", &format!("127.0.0.1:{phone_port}")])
        .arg(voxnav)
        .current_dir(dir)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// An agent's `sip:` lines with the MD5 hash only: what Debian 12's baresip and SIPp answer
/// (a file without SHA-256 hashes offers MD5 alone, docs/agents.md).
pub fn md5_agent_lines(id: &str, password: &str) -> String {
    crate::agents::hash_lines(id, "voxnav", password)
        .lines()
        .filter(|l| !l.contains("ha1_sha256"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Debian's Kamailio running the repository's `deploy/kamailio/kamailio.cfg` in the foreground
/// on `listen`, spreading calls over `nodes` (dispatcher set 1, OPTIONS probes every second),
/// for the multi-node test and benchmark. Its log lines (stderr) are in `lines`.
///
/// Stopped on drop with SIGTERM, on which its main process stops the worker processes it
/// forked (a SIGKILL would leave them running, orphaned), then SIGKILL if it has not exited
/// within 5 s.
pub struct Kamailio {
    child: std::process::Child,
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Kamailio {
    /// Starts it with its files in `dir` and `shared_mb` of shared memory, and waits until it
    /// answers an OPTIONS (`None` if it did not within 10 s).
    pub fn start(
        dir: &Path,
        listen: std::net::SocketAddr,
        nodes: &[std::net::SocketAddr],
        shared_mb: u32,
    ) -> Option<Kamailio> {
        let list = dir.join("dispatcher.list");
        let entries: String = nodes.iter().map(|n| format!("1 sip:{n}\n")).collect();
        std::fs::write(&list, entries).ok()?;
        let mut child = Command::new("kamailio")
            .arg("-f")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/deploy/kamailio/kamailio.cfg"
            ))
            .args(["-DD", "-E", "-m", &shared_mb.to_string(), "-M", "8"])
            .arg("-Y")
            .arg(dir)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .args(["-A", &format!("LISTEN=udp:{listen}")])
            .args(["-A", &format!("DISPATCHER_LIST=\"{}\"", list.display())])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kamailio is installed");
        let lines = lines_of(child.stderr.take().unwrap());
        let kamailio = Kamailio { child, lines };
        answers_options(listen).then_some(kamailio)
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if wait_exit(&mut self.child, std::time::Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Whether the SIP server at `server` answers an OPTIONS to itself with 200 within 10 s.
pub fn answers_options(server: std::net::SocketAddr) -> bool {
    use std::time::{Duration, Instant};
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let local = sock.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    for attempt in 0.. {
        if Instant::now() > deadline {
            return false;
        }
        let probe = format!(
            "OPTIONS sip:{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKup{attempt};rport\r\n\
             From: <sip:test@{local}>;tag=1\r\nTo: <sip:{server}>\r\nCall-ID: up-{attempt}\r\n\
             CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(probe.as_bytes(), server);
        if let Ok((n, _)) = sock.recv_from(&mut buf)
            && buf[..n].starts_with(b"SIP/2.0 200")
        {
            return true;
        }
    }
    false
}

/// SIPp's totals from the last row of its statistics file (`-trace_stat -stf FILE`).
#[derive(Debug, Default, Clone, Copy)]
pub struct SippTotals {
    pub successful: u64,
    pub failed: u64,
    pub retransmissions: u64,
}

impl SippTotals {
    pub fn read(stat: &Path) -> SippTotals {
        let text = std::fs::read_to_string(stat).unwrap_or_default();
        let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(';').collect()).collect();
        let (Some(head), Some(last)) = (rows.first(), rows.last()) else {
            return SippTotals::default();
        };
        let get = |k: &str| {
            head.iter()
                .position(|h| *h == k)
                .and_then(|i| last.get(i))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        SippTotals {
            successful: get("SuccessfulCall(C)"),
            failed: get("FailedCall(C)"),
            retransmissions: get("Retransmissions(C)"),
        }
    }
}

/// The effective user id (root runs PostgreSQL as `postgres`).
fn effective_uid() -> u32 {
    // /proc/self/status's "Uid:" line: real, effective, saved, filesystem.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_counts_substitutions_insertions_and_deletions() {
        assert_eq!(word_errors("order 47219", "Order 4 7 2 1 9."), (0, 6));
        assert_eq!(word_errors("a b c d", "a x c"), (2, 4));
        assert_eq!(word_errors("a b", "a b c"), (1, 2));
    }

    #[test]
    fn bot_words_are_words_whatever_the_punctuation() {
        let report = serde_json::json!({"bot": [
            {"text": "Sorry, no, colleague is free. I couldn't catch that!"},
            {"text": ""}
        ]});
        let words = bot_words(&report);
        assert_eq!(words, "sorry no colleague is free i couldn't catch that / ");
        assert!(words.contains("no colleague"));
    }
}
