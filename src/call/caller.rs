//! `voxnav call`: a scripted test caller on the same SIP/RTP cores (`net::leg`). It places a
//! call, plays the script's caller turns (WAV files, text spoken by the product TTS, keypad
//! digits, silences, barge-in at an offset into the bot's reply), records everything the bot
//! says, and measures each turn's voice-to-voice latency: the last voiced caller packet sent
//! -> the first voiced bot packet received. The bot's speech is transcribed after the call
//! (so recognition does not compete with the server for the cores during it).
//!
//! ```yaml
//! # sip-test/calls/order-status.yaml
//! turns:
//!   - say: "I'd like to track my order"   # spoken with the product voice
//!   - dtmf: "472198#"
//!   - wav: caller.wav                     # 8 or 16 kHz mono, relative to this file
//!     at_ms: 800                          # barge in 800 ms after the bot starts replying
//!   - silence_ms: 9000                    # say nothing (the bot's no-input timer)
//!   - hangup: true                        # hang up now (default: at the end of the script,
//!                                         # once the bot's last reply has finished)
//! ```
//! Each turn starts when the bot has finished its reply (voiced audio, then `quiet_ms` of
//! silence, 1200 ms by default) unless it sets `at_ms` (barge-in) or `after_ms` (a fixed wait
//! after the previous turn, whatever the bot does).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::dialplan::error::Problems;
use crate::dialplan::read::{MapReader, boolean, number, text};
use crate::dialplan::yaml::{self, Yaml};
use crate::net::leg::{self, LegCommand, LegConfig, LegEvent};

/// What the caller does in one turn.
#[derive(Debug, Clone, PartialEq)]
pub enum CallerInput {
    /// Text for the product voice.
    Say(String),
    /// Audio from a WAV file.
    Wav(PathBuf),
    Dtmf(String),
    Silence(Duration),
    Hangup,
}

/// When a turn starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TurnStart {
    /// When the bot's reply has finished (voiced, then this much silence).
    BotDone { quiet: Duration },
    /// This long after the bot started replying (barge-in).
    IntoBotReply(Duration),
    /// This long after the previous turn ended, whatever the bot does.
    After(Duration),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptTurn {
    pub input: CallerInput,
    pub start: TurnStart,
}

/// How long to wait for the bot to finish a reply before going on anyway.
const BOT_REPLY_CAP: Duration = Duration::from_secs(30);
/// A 20 ms frame louder than this (RMS, 16-bit) counts as voiced.
const VOICED_RMS: f64 = 300.0;

/// Reads a call script; problems as file:line:col.
pub fn read_script(path: &Path) -> Result<Vec<ScriptTurn>, String> {
    let shown = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| format!("{shown}: {e}"))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse_script(&source, &shown, base)
}

/// Parses a call script's text (`base` resolves relative WAV paths).
pub fn parse_script(source: &str, shown: &str, base: &Path) -> Result<Vec<ScriptTurn>, String> {
    let tree = yaml::parse(source)
        .map_err(|e| format!("{shown}:{}:{}: YAML: {}", e.pos.line, e.pos.col, e.message))?;
    let mut p = Problems::new(shown);
    let mut turns = Vec::new();
    let mut top = MapReader::new(&tree, "the call script", &mut p);
    match top.require("turns", &mut p) {
        Some(Yaml::Seq { items, .. }) => {
            for item in items {
                let mut m = MapReader::new(item, "a turn", &mut p);
                let pos = m.pos;
                let problems_before = p.list.len();
                let mut inputs = Vec::new();
                if let Some((t, _)) = m.get("say").and_then(|y| text(y, "say", &mut p)) {
                    inputs.push(CallerInput::Say(t));
                }
                if let Some((t, _)) = m.get("wav").and_then(|y| text(y, "wav", &mut p)) {
                    inputs.push(CallerInput::Wav(base.join(t)));
                }
                if let Some((t, tpos)) = m.get("dtmf").and_then(|y| text(y, "dtmf", &mut p)) {
                    if t.chars().all(|c| crate::media::dtmf::event_of(c).is_some()) {
                        inputs.push(CallerInput::Dtmf(t));
                    } else {
                        p.add(
                            tpos,
                            format!("`{t}` has keys a keypad does not have"),
                            "0-9 * # A-D",
                        );
                    }
                }
                if let Some(ms) = m
                    .get("silence_ms")
                    .and_then(|y| number(y, "silence_ms", &mut p))
                {
                    inputs.push(CallerInput::Silence(Duration::from_millis(ms)));
                }
                if m.get("hangup")
                    .and_then(|y| boolean(y, "hangup", &mut p))
                    .unwrap_or(false)
                {
                    inputs.push(CallerInput::Hangup);
                }
                let at = m.get("at_ms").and_then(|y| number(y, "at_ms", &mut p));
                let after = m
                    .get("after_ms")
                    .and_then(|y| number(y, "after_ms", &mut p));
                let quiet = m
                    .get("quiet_ms")
                    .and_then(|y| number(y, "quiet_ms", &mut p))
                    .unwrap_or(1200);
                m.finish(&[], &mut p);
                let start = match (at, after) {
                    (Some(ms), None) => TurnStart::IntoBotReply(Duration::from_millis(ms)),
                    (None, Some(ms)) => TurnStart::After(Duration::from_millis(ms)),
                    (None, None) => TurnStart::BotDone {
                        quiet: Duration::from_millis(quiet),
                    },
                    (Some(_), Some(_)) => {
                        p.add(pos, "a turn has `at_ms` or `after_ms`, not both", "");
                        continue;
                    }
                };
                match inputs.len() {
                    1 => turns.push(ScriptTurn {
                        input: inputs.remove(0),
                        start,
                    }),
                    0 if p.list.len() > problems_before => {} // already reported
                    0 => p.add(
                        pos,
                        "a turn needs one of say, wav, dtmf, silence_ms, hangup",
                        "",
                    ),
                    _ => p.add(pos, "one input per turn", "split it into two turns"),
                }
            }
        }
        Some(other) => p.add(other.pos(), "`turns` is a list", "- say: hello"),
        None => {}
    }
    top.finish(&[], &mut p);
    p.into_result(turns)
}

/// One caller turn as it happened.
#[derive(Debug, Clone)]
pub struct CallerTurn {
    pub input: CallerInput,
    /// Since the call was answered.
    pub started: Duration,
    /// When its last voiced packet (or last digit packet) left.
    pub ended: Duration,
    /// The bot's first voiced packet after it, if the bot answered before the next turn.
    pub voice_to_voice: Option<Duration>,
    /// Barge-in: how long into this turn the bot was still heard (its last voiced packet
    /// while the caller was talking, from the turn's start).
    pub talked_over: Option<Duration>,
}

/// The whole call.
#[derive(Debug, Clone, Default)]
pub struct CallRecord {
    pub turns: Vec<CallerTurn>,
    /// Everything the bot sent, 8 kHz, on the call's timeline from the answer.
    pub bot_audio: Vec<i16>,
    /// Answered after this long, or the failure.
    pub answered_after: Option<Duration>,
    pub failure: Option<String>,
    /// Who hung up, how.
    pub ended: String,
    /// The call's Call-ID (what the server's records name it by).
    pub call_id: String,
}

/// Audio input for a turn, at 8 kHz, trailing silence trimmed (so "drained" is the last
/// voiced packet).
pub type SpeakFn<'a> = &'a (dyn Fn(&str) -> Result<Vec<i16>, String> + Sync);

fn trimmed(mut pcm: Vec<i16>) -> Vec<i16> {
    let last_voiced = pcm
        .chunks(160)
        .rposition(|c| rms(c) > VOICED_RMS)
        .map_or(0, |i| (i + 1) * 160);
    pcm.truncate(last_voiced.min(pcm.len()));
    pcm
}

fn rms(frame: &[i16]) -> f64 {
    if frame.is_empty() {
        return 0.0;
    }
    (frame.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / frame.len() as f64).sqrt()
}

/// Reads a WAV as 8 kHz PCM.
pub fn wav_8k(path: &Path) -> Result<Vec<i16>, String> {
    let w = crate::media::wav::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let samples = if w.sample_rate == 8000 {
        w.samples
    } else {
        crate::media::resample::resample(&w.samples, w.sample_rate, 8000)
            .map_err(|e| format!("{}: {e}", path.display()))?
    };
    Ok(samples
        .iter()
        .map(|&s| crate::media::wav::f32_to_i16(s))
        .collect())
}

/// Places the call and plays the script. `speak` turns text into 8 kHz audio (the product
/// TTS); it is called before the call so synthesis time does not count as the caller's.
/// `from_user` is the user of the caller's From (its number, to a hotline that looks callers
/// up).
pub async fn run(
    target: &str,
    from_user: &str,
    credentials: Option<crate::sip::uac::Credentials>,
    script: &[ScriptTurn],
    speak: SpeakFn<'_>,
) -> CallRecord {
    let mut record = CallRecord::default();
    // Prepare every turn's audio first.
    let mut audio: Vec<Option<Vec<i16>>> = Vec::new();
    for turn in script {
        audio.push(match &turn.input {
            CallerInput::Say(t) => match speak(t) {
                Ok(pcm) => Some(trimmed(pcm)),
                Err(e) => {
                    record.failure = Some(format!("speaking {t:?}: {e}"));
                    return record;
                }
            },
            CallerInput::Wav(p) => match wav_8k(p) {
                Ok(pcm) => Some(trimmed(pcm)),
                Err(e) => {
                    record.failure = Some(e);
                    return record;
                }
            },
            _ => None,
        });
    }
    let engine = match crate::net::media::MediaEngine::start(1) {
        Ok(e) => e,
        Err(e) => {
            record.failure = Some(e.to_string());
            return record;
        }
    };
    let mut leg = leg::place(
        &engine,
        LegConfig {
            target: target.to_string(),
            from_user: from_user.into(),
            headers: Vec::new(),
            answer_timeout: Duration::from_secs(30),
            max_queued_frames: None,
            media_timeout: None,
            credentials,
        },
    );
    record.call_id = leg.call_id.clone();
    let dialled = Instant::now();
    let mut answered: Option<Instant> = None;
    // Bot audio on the timeline: (arrival, frame).
    let mut last_voiced_bot: Option<Instant> = None;
    let mut first_voiced_since_turn: Option<Instant> = None;
    let mut turn_index = 0usize;
    let mut turn_started: Option<Instant> = None;
    let mut sending = false;
    let mut previous_end = Instant::now();
    let mut hung_up = false;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            ev = leg.events.recv() => {
                let Some(ev) = ev else { break };
                match ev {
                    LegEvent::Answered => {
                        let now = Instant::now();
                        answered = Some(now);
                        record.answered_after = Some(now - dialled);
                        previous_end = now;
                    }
                    LegEvent::Audio(pcm, at) => {
                        if rms(&pcm) > VOICED_RMS {
                            last_voiced_bot = Some(at);
                            if sending
                                && let (Some(t), Some(a)) = (record.turns.last_mut(), answered)
                            {
                                t.talked_over = Some(at.saturating_duration_since(a + t.started));
                            }
                            if first_voiced_since_turn.is_none() {
                                first_voiced_since_turn = Some(at);
                                if let (Some(t), Some(a)) = (record.turns.last_mut(), answered)
                                    && t.voice_to_voice.is_none()
                                    && !sending
                                    && !matches!(t.input, CallerInput::Silence(_) | CallerInput::Hangup)
                                {
                                    let ended = a + t.ended;
                                    t.voice_to_voice = Some(at.saturating_duration_since(ended));
                                }
                            }
                        }
                        record.bot_audio.extend(pcm);
                    }
                    LegEvent::Drained(at) => {
                        if let (true, Some(a), Some(t)) = (sending, answered, record.turns.last_mut()) {
                            t.ended = at.saturating_duration_since(a);
                            sending = false;
                            previous_end = at;
                            first_voiced_since_turn = None;
                        }
                    }
                    LegEvent::Failed { status, reason } => {
                        record.failure = Some(format!("{status} {reason}"));
                    }
                    LegEvent::Ended { why, .. } => {
                        record.ended = why;
                        break;
                    }
                    LegEvent::Ringing(_) | LegEvent::MediaStopped => {}
                }
            }
            _ = tick.tick() => {
                let Some(a) = answered else { continue };
                if sending || hung_up {
                    continue;
                }
                let now = Instant::now();
                if let Some(started) = turn_started {
                    // A silence or digits turn is over when its time is up.
                    let input = &record.turns.last().map(|t| t.input.clone());
                    let done = match input {
                        Some(CallerInput::Silence(d)) => now >= started + *d,
                        _ => true,
                    };
                    if !done {
                        continue;
                    }
                    if let Some(t) = record.turns.last_mut()
                        && matches!(t.input, CallerInput::Silence(_))
                    {
                        t.ended = now.saturating_duration_since(a);
                        previous_end = now;
                        first_voiced_since_turn = None;
                    }
                    turn_started = None;
                }
                let start = script.get(turn_index).map_or(
                    TurnStart::BotDone { quiet: Duration::from_millis(1200) },
                    |t| t.start,
                );
                let due = match start {
                    TurnStart::After(d) => now >= previous_end + d,
                    TurnStart::IntoBotReply(d) => first_voiced_since_turn.is_some_and(|f| now >= f + d)
                        || now >= previous_end + BOT_REPLY_CAP,
                    TurnStart::BotDone { quiet } => {
                        first_voiced_since_turn.is_some() && last_voiced_bot.is_some_and(|l| now >= l + quiet)
                            || now >= previous_end + BOT_REPLY_CAP
                    }
                };
                if !due {
                    continue;
                }
                let Some(turn) = script.get(turn_index) else {
                    // The script is over and the bot has finished: hang up.
                    let _ = leg.commands.send(LegCommand::Hangup);
                    hung_up = true;
                    continue;
                };
                let at = now.saturating_duration_since(a);
                record.turns.push(CallerTurn { input: turn.input.clone(), started: at, ended: at, voice_to_voice: None, talked_over: None });
                first_voiced_since_turn = None;
                match (&turn.input, audio[turn_index].take()) {
                    (CallerInput::Say(_) | CallerInput::Wav(_), Some(pcm)) => {
                        sending = !pcm.is_empty();
                        let _ = leg.commands.send(LegCommand::Audio(pcm));
                    }
                    (CallerInput::Dtmf(digits), _) => {
                        for d in digits.chars() {
                            // A 100 ms gap, then 100 ms of tone events per key; the turn ends
                            // when the last key's events have gone (`Drained`).
                            let _ = leg.commands.send(LegCommand::Audio(vec![0; 800]));
                            let _ = leg.commands.send(LegCommand::Digit(d));
                        }
                        sending = true;
                    }
                    (CallerInput::Hangup, _) => {
                        let _ = leg.commands.send(LegCommand::Hangup);
                        hung_up = true;
                    }
                    _ => turn_started = Some(now),
                }
                turn_index += 1;
            }
        }
    }
    if record.ended.is_empty() {
        record.ended = "leg closed".into();
    }
    record
}

/// The bot's audio between caller turns: (start, end) sample ranges on the call timeline.
pub fn bot_segments(record: &CallRecord) -> Vec<(usize, usize)> {
    let mut cuts: Vec<usize> = vec![0];
    for t in &record.turns {
        cuts.push((t.ended.as_millis() as usize * 8).min(record.bot_audio.len()));
    }
    cuts.push(record.bot_audio.len());
    cuts.windows(2)
        .filter(|w| w[1] > w[0])
        .map(|w| (w[0], w[1]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_read_with_positions() {
        let s = parse_script(
            "turns:\n  - say: hello\n  - dtmf: \"12#\"\n  - wav: a.wav\n    at_ms: 500\n  - silence_ms: 100\n  - hangup: true\n",
            "t.yaml",
            Path::new("/x"),
        )
        .unwrap();
        assert_eq!(s.len(), 5);
        assert_eq!(s[1].input, CallerInput::Dtmf("12#".into()));
        assert_eq!(s[2].input, CallerInput::Wav("/x/a.wav".into()));
        assert_eq!(
            s[2].start,
            TurnStart::IntoBotReply(Duration::from_millis(500))
        );
        let e = parse_script(
            "turns:\n  - say: a\n    dtmf: 1\n  - dtmf: x\n  - sya: b\n",
            "t.yaml",
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            e.contains("t.yaml:2:") && e.contains("one input per turn"),
            "{e}"
        );
        assert!(e.contains("t.yaml:4:11: `x` has keys a keypad"), "{e}");
        assert!(e.contains("t.yaml:5:5: unknown key `sya`"), "{e}");
        assert_eq!(
            e.matches("t.yaml:4:").count(),
            1,
            "one problem per mistake: {e}"
        );
    }

    #[test]
    fn trailing_silence_is_trimmed() {
        let mut pcm = vec![3000i16; 1600];
        pcm.extend(vec![0; 4000]);
        assert_eq!(trimmed(pcm).len(), 1600);
    }
}
