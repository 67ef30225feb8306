//! The command-line tools on good and bad input: bad input gives a clear one-line error and a
//! non-zero exit, never a panic.

use std::path::Path;
use std::process::{Command, Output};

use voxnav::media::wav;
use voxnav::testkit::{installed_models, temp_dir};

fn voxnav(args: &[&str]) -> Output {
    installed_models();
    Command::new(env!("CARGO_BIN_EXE_voxnav"))
        .args(args)
        .output()
        .expect("binary runs")
}

fn fails_cleanly(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(!stderr.contains("panicked"), "panicked: {stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
}

fn write_wav(path: &Path, channels: u16, bits: u16, samples: usize) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: 8_000,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..samples * channels as usize {
        match bits {
            16 => w.write_sample((i % 100) as i16).unwrap(),
            _ => w.write_sample((i % 100) as i32).unwrap(),
        }
    }
    w.finalize().unwrap();
}

#[test]
fn say_then_transcribe_round_trip() {
    let dir = temp_dir("cli-ok");
    let file = dir.join("reply.wav");
    let out = voxnav(&[
        "say",
        "Please hold while I check your order.",
        "-o",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audio = wav::read(&file).unwrap();
    assert_eq!(audio.sample_rate, 8_000);
    assert!(
        audio.duration_secs() > 1.0 && audio.duration_secs() < 6.0,
        "{}",
        audio.duration_secs()
    );

    let out = voxnav(&["transcribe", file.to_str().unwrap(), "--model", "tiny.en"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(text.contains("hold") && text.contains("order"), "{text}");
    let timings = String::from_utf8_lossy(&out.stderr);
    assert!(
        timings.contains("processing") && timings.contains("RTF"),
        "{timings}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn bad_input_is_refused_with_a_clear_error() {
    let dir = temp_dir("cli-bad");
    let missing = dir.join("missing.wav");
    fails_cleanly(
        &voxnav(&["transcribe", missing.to_str().unwrap()]),
        "No such file",
    );

    let text = dir.join("notes.wav");
    std::fs::write(&text, "this is not audio").unwrap();
    fails_cleanly(
        &voxnav(&["transcribe", text.to_str().unwrap()]),
        "not a readable WAV",
    );

    let stereo = dir.join("stereo.wav");
    write_wav(&stereo, 2, 16, 800);
    fails_cleanly(&voxnav(&["transcribe", stereo.to_str().unwrap()]), "mono");

    let deep = dir.join("24bit.wav");
    write_wav(&deep, 1, 24, 800);
    fails_cleanly(
        &voxnav(&["transcribe", deep.to_str().unwrap()]),
        "16-bit PCM or 32-bit float",
    );

    let empty = dir.join("empty.wav");
    write_wav(&empty, 1, 16, 0);
    fails_cleanly(&voxnav(&["transcribe", empty.to_str().unwrap()]), "empty");

    let out = dir.join("out.wav");
    fails_cleanly(
        &voxnav(&["say", "   ", "-o", out.to_str().unwrap()]),
        "empty",
    );
    let unwritable = dir.join("no-such-dir/out.wav");
    fails_cleanly(
        &voxnav(&["say", "hello", "-o", unwritable.to_str().unwrap()]),
        "No such file",
    );

    fails_cleanly(
        &voxnav(&["transcribe", empty.to_str().unwrap(), "--model", "large"]),
        "unknown whisper model",
    );
    let bad_ct2 = dir.join("model.bin");
    std::fs::write(&bad_ct2, [6u8, 0, 0, 0, 12]).unwrap();
    fails_cleanly(
        &voxnav(&[
            "models",
            "convert",
            bad_ct2.to_str().unwrap(),
            text.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]),
        "truncated model file",
    );
    assert!(!out.exists(), "a failed conversion leaves no output");

    // The English-only engine for a Mandarin hotline is refused before anything listens.
    fails_cleanly(
        &voxnav(&[
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--dialplan",
            "dialplans/hotline-zh.yaml",
            "--asr-engine",
            "moonshine",
        ]),
        "moonshine hears English only",
    );
    std::fs::remove_dir_all(dir).ok();
}
