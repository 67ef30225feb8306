//! The call pipeline: RTP audio in -> endpointing (`vad`) -> ASR -> dialplan engine -> TTS ->
//! RTP out (`brain`, driven by the media task in `net/call_media.rs`); transfers to a human
//! seat are bridged (`transfer`).

#[cfg(feature = "speech")]
pub mod brain;
pub mod caller;
pub mod transfer;
pub mod vad;
