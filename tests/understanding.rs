//! Understanding callers end to end, on speech made at test time: requests spoken by the
//! product voice (Piper) and three espeak-ng voices cross a G.711 channel, Whisper (the
//! server's configuration) recognises them, and the demo hotline's menu decides them. Bad input
//! too: a number far too long, another language, noise and music.

use voxnav::dialplan::engine::Event;
use voxnav::speech::{
    PiperConfig, PiperSynthesizer, RecognizeOptions, Recognizer, Synthesizer, WhisperConfig,
    WhisperRecognizer,
};
use voxnav::testkit::{
    demo_hotline, espeak_telephone, installed_models, telephone, temp_dir, word_errors,
};

/// Requests worded apart from the hotline's examples (a mix of `hotline.heldout.tsv` and
/// `hotline.kb-paraphrases.tsv`), and what the menu should make of them.
const REQUESTS: [(&str, &str); 10] = [
    (
        "I'm wondering when my delivery will show up",
        "order_status",
    ),
    ("my parcel showed up all crushed", "delivery_problem"),
    ("I'd like to give back a pair of shoes", "return_refund"),
    (
        "I need to cancel something I bought an hour ago",
        "cancel_order",
    ),
    ("the checkout keeps rejecting my card", "payment_issue"),
    ("I'd rather speak with a real human being", "agent"),
    ("how long is the warranty on headphones", "kb:warranty"),
    (
        "how much does the membership cost per year",
        "kb:membership",
    ),
    ("what kinds of payment can I use", "kb:payment_methods"),
    ("what's the capital of france", "none"),
];

/// Spoken-request understanding bound, over the four voices (40 requests). Measured here: 37
/// of 40 (92.5%, WER 12.8%; the text alone scores 10 of 10, and the misses are espeak-ng's
/// "give back" heard as "give Mark" twice and "warranty on headphones" as "that one on the
/// on-air phones"). The bound allows three more misses, so one more misheard word does not
/// fail it while a real regression (a broken channel, resampler or router) does.
const SPOKEN_UNDERSTANDING_BOUND: f64 = 0.85;

fn whisper() -> WhisperRecognizer {
    WhisperRecognizer::new(&installed_models(), WhisperConfig::default()).expect("whisper")
}

/// `text` in each voice, as 8 kHz audio after G.711.
fn voices(text: &str, dir: &std::path::Path, name: &str) -> Vec<(&'static str, Vec<f32>)> {
    static TTS: std::sync::OnceLock<PiperSynthesizer> = std::sync::OnceLock::new();
    let tts = TTS.get_or_init(|| {
        let config = PiperConfig {
            noise_scale: Some(0.0),
            noise_w: Some(0.0),
            ..Default::default()
        };
        PiperSynthesizer::new(&installed_models(), config).expect("piper")
    });
    let mut out = vec![("piper", telephone(&tts.speak_all(text).unwrap()))];
    for voice in ["en-us", "en-gb+f3", "en-us+m3"] {
        out.push((
            voice,
            espeak_telephone(text, voice, dir, &format!("{name}-{voice}")),
        ));
    }
    out
}

#[test]
fn spoken_requests_are_understood_and_an_order_number_in_them_is_kept() {
    let dir = temp_dir("understanding");
    let hotline = demo_hotline();
    let asr = whisper();
    let mut right = 0;
    let mut total = 0;
    let (mut errors, mut words) = (0, 0);
    let mut misses = Vec::new();
    let mut confidences = Vec::new();
    for (i, (request, want)) in REQUESTS.iter().enumerate() {
        for (voice, audio) in voices(request, &dir, &format!("r{i}")) {
            let heard = asr
                .recognize(&audio, 8_000, &RecognizeOptions::default())
                .unwrap();
            let got = voxnav::dialplan::testing::first_turn_decision(&hotline, &heard.text);
            let (e, n) = word_errors(request, &heard.text);
            errors += e;
            words += n;
            total += 1;
            confidences.push(heard.confidence);
            if got == *want {
                right += 1;
            } else {
                misses.push(format!(
                    "{voice}: {request:?} heard {:?} -> {got}",
                    heard.text
                ));
            }
        }
    }
    let understood = right as f64 / total as f64;
    println!(
        "spoken requests: {right}/{total} understood ({:.1}%), WER {:.1}%",
        100.0 * understood,
        100.0 * errors as f64 / words as f64
    );
    for m in &misses {
        println!("  {m}");
    }
    confidences.sort_by(f32::total_cmp);
    println!(
        "recognition confidence on speech: min {:.2}, median {:.2}",
        confidences[0],
        confidences[confidences.len() / 2]
    );
    assert!(
        understood >= SPOKEN_UNDERSTANDING_BOUND,
        "{:.1}%: {misses:#?}",
        100.0 * understood
    );

    // An order number said in the first request skips the question for it, by voice too.
    let audio = voices(
        "where is order four seven two one nine eight",
        &dir,
        "order",
    )
    .remove(0)
    .1;
    let heard = asr
        .recognize(&audio, 8_000, &RecognizeOptions::default())
        .unwrap();
    let mut call = voxnav::dialplan::testing::started_call(&hotline);
    let step = call.handle(Event::Speech {
        text: heard.text.clone(),
        confidence: heard.confidence,
    });
    let d = step.decision.unwrap();
    assert_eq!(d.intent.as_deref(), Some("order_status"), "{heard:?} {d:?}");
    assert!(
        d.slots.get("order_number").map(String::as_str) == Some("472198"),
        "heard {:?}: {d:?}",
        heard.text
    );
    assert!(
        !d.say.iter().any(|s| s.contains("order number")),
        "not asked for the number it was given: {:?}",
        d.say
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_a_thirty_digit_number_another_language_noise_and_music() {
    let dir = temp_dir("understanding-bad");
    let hotline = demo_hotline();
    let asr = whisper();
    let recognise = |audio: &[f32]| {
        asr.recognize(audio, 8_000, &RecognizeOptions::default())
            .unwrap()
    };

    // Thirty digits at the order-number ask (6-10 digits): not taken, asked again.
    let thirty = "one two three four five six seven eight nine zero ".repeat(3);
    let audio = voices(&thirty, &dir, "thirty").remove(0).1;
    let heard = recognise(&audio);
    let mut call = voxnav::dialplan::testing::started_call(&hotline);
    call.handle(Event::Speech {
        text: "I want to check my order".into(),
        confidence: 0.9,
    });
    let d = call
        .handle(Event::Speech {
            text: heard.text.clone(),
            confidence: heard.confidence,
        })
        .decision
        .unwrap();
    assert!(d.slots.is_empty(), "heard {:?}: {d:?}", heard.text);
    assert!(d.reason.starts_with("not understood"), "{d:?}");
    assert_eq!(d.action, "listen", "asked again: {d:?}");

    // French to an English hotline: understood as what it asks, or not at all; never a
    // wrong answer.
    let heard = recognise(&espeak_telephone(
        "Bonjour, je voudrais savoir où est ma commande, s'il vous plaît.",
        "fr",
        &dir,
        "french",
    ));
    let got = voxnav::dialplan::testing::first_turn_decision(&hotline, &heard.text);
    println!("french heard {:?} -> {got}", heard.text);
    assert!(
        got == "order_status" || got == "none",
        "heard {:?} -> {got}",
        heard.text
    );

    // Noise and music handed to recognition (as a VAD false start would): the sentences
    // Whisper makes of them come with a low confidence and never reach the router.
    let mut seed = 7u32;
    let noise: Vec<f32> = (0..8000 * 3)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            ((seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5) * 0.3
        })
        .collect();
    let music: Vec<f32> = (0..8000 * 4)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let note = [261.6f32, 329.6, 392.0, 523.3][(i / 4000) % 4];
            (std::f32::consts::TAU * note * t).sin() * 0.2
                + (std::f32::consts::TAU * note * 1.5 * t).sin() * 0.1
        })
        .collect();
    for (what, audio) in [("noise", noise), ("music", music)] {
        let heard = recognise(&audio);
        let mut call = voxnav::dialplan::testing::started_call(&hotline);
        let d = call
            .handle(Event::Speech {
                text: heard.text.clone(),
                confidence: heard.confidence,
            })
            .decision
            .unwrap();
        println!(
            "{what} heard {:?} (confidence {:.2}): {}",
            heard.text, heard.confidence, d.reason
        );
        assert!(
            d.intent.is_none() && d.kb.is_none() && d.reason.contains("recognition unsure"),
            "{what} heard as {:?}: {d:?}",
            heard.text
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
