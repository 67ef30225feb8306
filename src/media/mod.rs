//! Audio primitives shared by the call path and the tools: G.711 (ITU-T G.711) codecs, WAV
//! files, and sample-rate conversion.

pub mod g711;
pub mod resample;
pub mod wav;
