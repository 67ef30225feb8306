//! Audio primitives shared by the call path and the tools, all sans-IO: G.711 (ITU-T G.711)
//! codecs, RTP packets and RTCP reports (RFC 3550), the RTP session (pacing, latching, jitter
//! buffer, RTCP schedule, keypad), the receive jitter buffer, the RTP port pool, send-timing statistics, DTMF (RFC 4733 events and in-band Goertzel detection), WAV files, and sample-rate
//! conversion.

pub mod dtmf;
pub mod g711;
pub mod jitter;
pub mod ports;
pub mod resample;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod srtp;
pub mod timing;
pub mod wav;
