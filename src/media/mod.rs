//! Audio primitives shared by the call path and the tools: G.711 (ITU-T G.711) codecs, RTP
//! packets (RFC 3550), DTMF (RFC 4733 events and in-band Goertzel detection), WAV files, and
//! sample-rate conversion.

pub mod dtmf;
pub mod g711;
pub mod resample;
pub mod rtp;
pub mod wav;
