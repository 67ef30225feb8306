//! Mandarin by voice: character error rate of Whisper base (language pinned to `zh`) on the
//! Mandarin hotline's own sentences (what the bot says, and what callers ask), spoken by the
//! product's Mandarin voice (espeak-ng `cmn-latn-pinyin`, linked, 1.52 data) and by Debian's
//! espeak-ng command (1.51, its full Mandarin dictionary: the test callers' voice), both
//! through G.711; with no prompt, and with each `asr.prompt` worth trying. Also the voice's
//! first-audio time and real-time factor. Reference in the same process: the English hotline's
//! sentences spoken by Piper, word error rate through the same recognizer in English.
//!
//! `cargo bench --bench mandarin`

use std::time::Instant;

use voxnav::speech::espeak_voice::EspeakSynthesizer;
use voxnav::speech::{
    PiperConfig, PiperSynthesizer, RecognizeOptions, Recognizer, Synthesizer, WhisperConfig,
    WhisperRecognizer,
};
use voxnav::testkit::{char_errors, median, telephone, word_errors};

/// The bot's sentences (prompts of `dialplans/hotline-zh.yaml`, an order number filled in).
const BOT: &[&str] = &[
    "您好，欢迎致电网店客服。",
    "请问有什么可以帮您？",
    "抱歉，我没听懂，请换个说法。",
    "请说出或按键输入您的订单号。",
    "订单号是六到十位数字。",
    "订单已发货，预计周四送达。",
    "收货后三十天内可以退货，退款五个工作日内到账。",
    "正在为您转接人工客服。",
    "感谢来电，再见。",
];

/// What callers say (requests worded as callers do, not all the hotline's examples).
const CALLER: &[&str] = &[
    "我的订单在哪里",
    "我要退货",
    "转人工",
    "我想退款",
    "帮我查一下快递",
    "你们几点上班",
    "没有了谢谢",
    "我买的东西发货了吗",
];

const ENGLISH: &[&str] = &[
    "Thanks for calling the online store.",
    "How can I help you today?",
    "Please say or type your order number.",
    "Your order has shipped and should arrive on Thursday.",
    "I'm connecting you to a colleague now.",
    "where is my order",
    "I want to return an item",
];

/// Character errors over `sentences`, each spoken by `speak` and recognised by `asr`.
fn cer(
    asr: &dyn Recognizer,
    sentences: &[&str],
    speak: &dyn Fn(&str) -> Vec<f32>,
    show: bool,
) -> f64 {
    let (mut errors, mut total) = (0, 0);
    for s in sentences {
        let heard = asr
            .recognize(&speak(s), 8000, &RecognizeOptions::default())
            .map(|t| t.text)
            .unwrap_or_default();
        let (e, n) = char_errors(s, &heard);
        if show {
            println!("      {s} -> {heard}");
        }
        errors += e;
        total += n;
    }
    errors as f64 / total as f64
}

fn main() {
    let paths = voxnav::testkit::installed_models();
    let dir = voxnav::testkit::temp_dir("bench-mandarin");
    let voice = EspeakSynthesizer::new(&paths, "cmn-latn-pinyin").expect("espeak-ng data");
    let product = |s: &str| telephone(&voice.speak_all(s).expect("espeak-ng speaks"));
    let counter = std::cell::Cell::new(0);
    let debian = |s: &str| {
        counter.set(counter.get() + 1);
        voxnav::testkit::espeak_telephone(
            s,
            "cmn-latn-pinyin",
            &dir,
            &format!("s{}", counter.get()),
        )
    };

    // The voice: first audio and real-time factor over the bot's sentences.
    let (mut first, mut rtf) = (Vec::new(), Vec::new());
    for s in BOT {
        let started = Instant::now();
        let (pcm, stats) = voice.speak_with_stats(s).unwrap();
        rtf.push(started.elapsed().as_secs_f64() / (pcm.len() as f64 / 8000.0));
        first.push(stats.first_audio.as_secs_f64() * 1000.0);
    }
    println!(
        "Mandarin voice (espeak-ng cmn-latn-pinyin): first audio median {:.0} ms, real-time factor median {:.3}",
        median(first),
        median(rtf)
    );

    let prompts: [(&str, Option<&str>); 3] = [
        ("no prompt", None),
        ("script prompt", Some("以下是普通话的句子。")),
        ("domain prompt", Some("订单，快递，退货，退款，人工客服。")),
    ];
    println!("Whisper base, zh, beam 5, 8 kHz G.711; character error rate (lower is better):");
    for (label, prompt) in prompts {
        let asr = WhisperRecognizer::new(
            &paths,
            WhisperConfig {
                language: "zh".into(),
                prompt: prompt.map(String::from),
                ..Default::default()
            },
        )
        .expect("whisper base");
        let show = prompt.is_none();
        let bot = cer(&asr, BOT, &product, show);
        let caller_product = cer(&asr, CALLER, &product, show);
        let caller_debian = cer(&asr, CALLER, &debian, show);
        println!(
            "  {label:<14} bot sentences (product voice) {:.1}%, caller requests: product voice {:.1}%, Debian espeak-ng {:.1}%",
            100.0 * bot,
            100.0 * caller_product,
            100.0 * caller_debian
        );
    }

    // Reference: English through the same recognizer with the English voice.
    let piper = PiperSynthesizer::new(
        &paths,
        PiperConfig {
            noise_scale: Some(0.0),
            noise_w: Some(0.0),
            ..Default::default()
        },
    )
    .unwrap();
    let asr = WhisperRecognizer::new(&paths, WhisperConfig::default()).unwrap();
    let (mut errors, mut words) = (0, 0);
    for s in ENGLISH {
        let audio = telephone(&piper.speak_all(s).unwrap());
        let heard = asr
            .recognize(&audio, 8000, &RecognizeOptions::default())
            .map(|t| t.text)
            .unwrap_or_default();
        let (e, n) = word_errors(s, &heard);
        errors += e;
        words += n;
    }
    println!(
        "  reference: English, Piper voice, same recognizer in English: word error rate {:.1}%",
        100.0 * errors as f64 / words as f64
    );
    let _ = std::fs::remove_dir_all(&dir);
}
