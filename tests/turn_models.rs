//! The turn-taking models on real telephone audio: requests spoken by the product voice
//! (Piper; espeak-ng's robotic prosody misleads the end-of-turn model, see
//! docs/turn-taking.md), through G.711 mu-law and back, as a caller's audio reaches voxnav.

use voxnav::call::session::HoldAudio;
use voxnav::call::turn::EndOfTurnModel;
use voxnav::call::turn::model::{TurnConfig, VoiceActivity, reads_finished};
use voxnav::speech::turn_models::{SileroModel, SileroVad, SmartTurn};
use voxnav::speech::{
    PiperConfig, PiperSynthesizer, RecognizeOptions, Recognizer, Synthesizer, WhisperConfig,
    WhisperRecognizer,
};
use voxnav::testkit::{installed_models, telephone};

/// Requests a caller finishes; each is also cut at a word boundary near its middle.
const REQUESTS: [&str; 12] = [
    "I want to track my order please.",
    "Where is my parcel?",
    "What are your opening hours?",
    "I'd like a refund for the jacket I bought last week.",
    "Can I talk to a person?",
    "My package arrived damaged and I want a replacement.",
    "How much does shipping cost to Canada?",
    "I was charged twice for the same order.",
    "Please cancel the order I placed this morning.",
    "Is there a warranty on the headphones?",
    "I need to change the delivery address on my order.",
    "Do you accept payment by gift card?",
];

fn speak(tts: &PiperSynthesizer, text: &str) -> Vec<f32> {
    telephone(&tts.speak_all(text).expect("piper speaks"))
}

/// Share of 20 ms frames the VAD calls speech.
fn speech_share(vad: &std::sync::Arc<SileroModel>, audio: &[f32]) -> f64 {
    let mut v = SileroVad::new(vad.clone());
    let frames: Vec<&[f32]> = audio.chunks_exact(160).collect();
    let speech = frames
        .iter()
        .filter(|f| v.speech_probability(f) >= TurnConfig::default().speech_threshold)
        .count();
    speech as f64 / frames.len().max(1) as f64
}

/// Deterministic noise.
fn noise(seconds: f32, amplitude: f32) -> Vec<f32> {
    let mut seed = 12_345u32;
    (0..(seconds * 8000.0) as usize)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            amplitude * ((seed >> 16) as f32 / 32_768.0 - 1.0)
        })
        .collect()
}

fn tone(freqs: &[f32], seconds: f32, amplitude: f32) -> Vec<f32> {
    (0..(seconds * 8000.0) as usize)
        .map(|i| {
            let t = i as f32 / 8000.0;
            amplitude
                * freqs
                    .iter()
                    .map(|f| (std::f32::consts::TAU * f * t).sin())
                    .sum::<f32>()
                / freqs.len() as f32
        })
        .collect()
}

/// "Hold music": a chord progression with a melody on top, and the hold chime voxnav plays.
fn music(seconds: f32) -> Vec<f32> {
    let chords: [&[f32]; 4] = [
        &[261.6, 329.6, 392.0],
        &[220.0, 261.6, 329.6],
        &[174.6, 220.0, 261.6],
        &[196.0, 246.9, 293.7],
    ];
    let melody = [523.3, 587.3, 659.3, 784.0, 659.3, 587.3, 523.3, 493.9];
    let mut out = Vec::new();
    let mut i = 0;
    while (out.len() as f32) < seconds * 8000.0 {
        let mut bar = tone(chords[i % 4], 1.0, 0.25);
        let lead: Vec<f32> = (0..4)
            .flat_map(|k| tone(&[melody[(i * 4 + k) % 8]], 0.25, 0.2))
            .collect();
        for (b, l) in bar.iter_mut().zip(lead) {
            *b += l;
        }
        out.extend(bar);
        i += 1;
    }
    let mut hold = HoldAudio::default();
    for _ in 0..25 {
        out.extend(hold.next_chunk().iter().map(|&s| s as f32 / 32_768.0));
    }
    out
}

fn through_g711(audio: &[f32]) -> Vec<f32> {
    let pcm: Vec<i16> = audio
        .iter()
        .map(|&s| (s * 32_767.0).clamp(-32_768.0, 32_767.0) as i16)
        .collect();
    telephone(&pcm)
}

#[test]
fn silero_separates_speech_from_noise_tones_music_and_silence() {
    let paths = installed_models();
    let vad = SileroModel::load(&paths).unwrap();
    let tts = PiperSynthesizer::new(&paths, deterministic()).unwrap();
    let mut speech = Vec::new();
    for text in &REQUESTS[..6] {
        speech.extend(speak(&tts, text));
    }
    let before = vad.inferences();
    let share = speech_share(&vad, &speech);
    assert!(
        vad.inferences() - before > (speech.len() / 256 / 2) as u64,
        "speech runs through the model"
    );
    // Requests include the pauses between words and sentences: most frames, not all.
    assert!(
        share > 0.6,
        "speech called speech in {:.0}% of frames",
        share * 100.0
    );
    // Speech after a long silence (the model's state started afresh) is still speech.
    let mut after_silence = vec![0.0; 8000 * 2];
    after_silence.extend(speak(&tts, REQUESTS[6]));
    let share = speech_share(&vad, &after_silence[..]);
    assert!(share > 0.25, "speech after silence: {:.0}%", share * 100.0);
    let dtmf: Vec<f32> = "472198#*0"
        .chars()
        .flat_map(|d| {
            let (r, c) = match d {
                '1' | '2' | '3' => (
                    697.0,
                    [1209.0, 1336.0, 1477.0][(d as usize - '1' as usize) % 3],
                ),
                '4' | '5' | '6' => (
                    770.0,
                    [1209.0, 1336.0, 1477.0][(d as usize - '4' as usize) % 3],
                ),
                '7' | '8' | '9' => (
                    852.0,
                    [1209.0, 1336.0, 1477.0][(d as usize - '7' as usize) % 3],
                ),
                _ => (941.0, 1336.0),
            };
            let mut t = tone(&[r, c], 0.15, 0.5);
            t.extend(vec![0.0; 800]);
            t
        })
        .collect();
    for (name, audio) in [
        ("line noise", noise(5.0, 0.05)),
        ("loud line noise", noise(5.0, 0.2)),
        ("keypad tones", dtmf),
        ("hold music", music(8.0)),
        ("silence", vec![0.0; 8000 * 3]),
        ("a quiet line (-70 dBFS noise)", noise(3.0, 0.000_55)),
    ] {
        let before = vad.inferences();
        let share = speech_share(&vad, &through_g711(&audio));
        if name.contains("silence") || name.contains("quiet") {
            // Below -60 dBFS the model is not asked: silence costs a call nothing.
            assert_eq!(vad.inferences(), before, "{name} ran through the model");
        }
        // A 2% allowance: a frame here and there never makes 100 ms of speech.
        assert!(
            share <= 0.02,
            "{name} called speech in {:.1}% of frames",
            share * 100.0
        );
    }
}

/// Drops leading and trailing silence.
fn trim(audio: &[f32]) -> Vec<f32> {
    let loud = |f: &[f32]| (f.iter().map(|s| s * s).sum::<f32>() / f.len() as f32).sqrt() > 0.01;
    let first = audio.chunks(160).position(loud).unwrap_or(0);
    let last = audio.chunks(160).rposition(loud).map_or(0, |i| i + 1);
    audio[first * 160..(last * 160).min(audio.len())].to_vec()
}

/// A caller who stops mid-request to think: the words up to one that needs more after it.
const CUT_OFF: [&str; 12] = [
    "I want to",
    "Where is my",
    "What are your",
    "I'd like a refund for the",
    "Can I talk to",
    "My package arrived damaged and",
    "How much does shipping cost to",
    "I was charged twice for the",
    "Please cancel the",
    "Is there a warranty on the",
    "I need to change the",
    "Do you accept payment by",
];

/// The early-end rule on real audio (`call::turn::model`): the end-of-turn model's verdict
/// at a 200 ms pause, and the pause's transcript (Whisper, as the speculative recognition
/// gives it) reading as finished and meaning something to the demo hotline. Finished
/// requests mostly end early; a request the caller stopped in the middle of never does.
///
/// Neither the model nor the words alone are trusted: the model calls many cut-off requests
/// complete, and Whisper turns fragments into sentences (docs/turn-taking.md).
#[test]
fn finished_requests_end_early_and_cut_off_ones_never_do() {
    let paths = installed_models();
    let tts = PiperSynthesizer::new(&paths, deterministic()).unwrap();
    let turn = SmartTurn::load(&paths).unwrap();
    let asr = WhisperRecognizer::new(
        &paths,
        WhisperConfig {
            threads_per_job: 2,
            ..Default::default()
        },
    )
    .unwrap();
    let threshold = TurnConfig::default().complete_threshold;
    let pause = vec![0.0; 8 * TurnConfig::default().pause_ms as usize];
    let hotline = voxnav::dialplan::cli::hotline(
        std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/dialplans/hotline.yaml"
        )),
        voxnav::dialplan::cli::embedder(&paths).unwrap(),
    )
    .unwrap();
    let engine = voxnav::dialplan::engine::CallEngine::new(hotline, Default::default());
    let early = |text: &str| -> (bool, f32, String) {
        let mut a = trim(&speak(&tts, text));
        a.extend(&pause);
        let p = turn.complete_probability(&a).unwrap();
        let heard = asr
            .recognize(&a, 8000, &RecognizeOptions::default())
            .map(|t| t.text)
            .unwrap_or_default();
        let finished = reads_finished(&heard) && engine.understands(&heard);
        (p >= threshold && finished, p, heard)
    };
    let mut ended_early = 0;
    for text in REQUESTS {
        let (e, p, heard) = early(text);
        println!("finished {p:.2} early={e} {heard:?}");
        ended_early += usize::from(e);
    }
    let mut cut_ended = Vec::new();
    for text in CUT_OFF {
        let (e, p, heard) = early(text);
        println!("cut-off  {p:.2} early={e} {heard:?}");
        if e {
            cut_ended.push(heard);
        }
    }
    assert!(
        cut_ended.is_empty(),
        "cut-off requests ended early: {cut_ended:?}"
    );
    // Measured 8 of 12: the others (a low verdict, a transcript ending in a comma or not
    // understood: "Is there a warranty on the hat phone?") wait
    // for the silence rule: slower, never wrong.
    assert!(
        ended_early >= 8,
        "{ended_early} of 12 finished requests ended early"
    );
}

#[test]
#[ignore = "exploration: Silero's longest speech run in short sounds"]
fn print_backchannel_runs() {
    let paths = installed_models();
    let tts = PiperSynthesizer::new(&paths, deterministic()).unwrap();
    let vad = SileroModel::load(&paths).unwrap();
    for text in [
        "Uh-huh.",
        "Mm-hmm.",
        "Yeah.",
        "Okay.",
        "What are your opening hours?",
        "I want to track my order.",
    ] {
        let audio = speak(&tts, text);
        let mut v = SileroVad::new(vad.clone());
        let probs: Vec<f32> = audio
            .chunks_exact(160)
            .map(|f| v.speech_probability(f))
            .collect();
        let (mut run, mut best, mut total) = (0, 0, 0);
        let mut first_run_at = None;
        for (i, p) in probs.iter().enumerate() {
            if *p >= 0.5 {
                run += 20;
                total += 20;
                best = best.max(run);
                if run >= 240 && first_run_at.is_none() {
                    first_run_at = Some(i)
                }
            } else {
                run = 0;
            }
        }
        println!(
            "{text:35} longest run {best} ms, speech {total} ms, 240ms-run reached at frame {first_run_at:?} of {}",
            probs.len()
        );
    }
}

/// The product voice without Piper's random variation, so runs hear the same audio.
fn deterministic() -> PiperConfig {
    PiperConfig {
        noise_scale: Some(0.0),
        noise_w: Some(0.0),
        ..Default::default()
    }
}
