//! DTMF against real data: SIPp's bundled RFC 4733 captures decode to their digits, and the
//! in-band detector finds tones mixed into real speech but never fires on the speech alone.

use std::path::Path;

use voxnav::media::dtmf::{EventReceiver, ToneDetector};
use voxnav::media::rtp::RtpPacket;
use voxnav::media::wav;
use voxnav::testkit::{espeak_wav, pcap_udp_payloads, temp_dir};

#[test]
fn sipp_rfc4733_captures_decode_to_their_digit() {
    let dir = Path::new("/usr/share/sip-tester");
    for (file, digit) in [
        ("0", '0'),
        ("1", '1'),
        ("2", '2'),
        ("3", '3'),
        ("4", '4'),
        ("5", '5'),
        ("6", '6'),
        ("7", '7'),
        ("8", '8'),
        ("9", '9'),
        ("star", '*'),
        ("pound", '#'),
    ] {
        let path = dir.join(format!("dtmf_2833_{file}.pcap"));
        let mut rx = EventReceiver::default();
        let mut heard = String::new();
        for udp in pcap_udp_payloads(&path) {
            let rtp = RtpPacket::parse(&udp).expect("SIPp's capture is valid RTP");
            // SIPp's captures use payload type 101; the receiver is given whatever SDP said.
            assert_eq!(rtp.payload_type, 101);
            heard.extend(rx.on_packet(rtp.timestamp, rtp.payload));
        }
        assert_eq!(heard, digit.to_string(), "{}", path.display());
    }
}

fn dtmf_tone(digit: char, ms: usize) -> Vec<f32> {
    let (row, col) = match digit {
        '4' => (770.0, 1209.0),
        '7' => (852.0, 1209.0),
        '2' => (697.0, 1336.0),
        '1' => (697.0, 1209.0),
        '#' => (941.0, 1477.0),
        _ => unreachable!(),
    };
    (0..ms * 8)
        .map(|i| {
            let t = i as f32 / 8000.0;
            0.15 * ((2.0 * std::f32::consts::PI * row * t).sin()
                + (2.0 * std::f32::consts::PI * col * t).sin())
        })
        .collect()
}

#[test]
fn inband_detector_ignores_speech_and_finds_tones_mixed_into_it() {
    let dir = temp_dir("dtmf-speech");
    let speech = wav::read(&espeak_wav(
        "My order number is four seven two one. Please press the pound key. Hello? Operator!",
        &dir,
        "speech",
    ))
    .unwrap();
    let mut det = ToneDetector::default();
    assert!(
        det.feed(&speech.samples).is_empty(),
        "speech must not read as DTMF"
    );

    // The same speech with a keyed order number over it, 70 ms tones, 60 ms gaps.
    let mut mixed = speech.samples.clone();
    let mut at = 4_000;
    for d in "4721#".chars() {
        for (i, s) in dtmf_tone(d, 70).into_iter().enumerate() {
            mixed[at + i] = mixed[at + i] * 0.3 + s;
        }
        at += 8 * 130;
    }
    let mut det = ToneDetector::default();
    assert_eq!(det.feed(&mixed).into_iter().collect::<String>(), "4721#");
    std::fs::remove_dir_all(dir).ok();
}
