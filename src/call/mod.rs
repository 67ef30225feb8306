//! The call pipeline: RTP audio in -> endpointing (`vad`) -> ASR -> dialplan engine -> TTS ->
//! RTP out (`brain`, driven by the media task in `net/call_media.rs`).

#[cfg(feature = "speech")]
pub mod brain;
pub mod vad;
