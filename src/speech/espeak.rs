//! Text -> IPA phonemes with espeak-ng, the front end Piper voices are trained on.
//!
//! espeak-ng keeps global C state (the voice, the text pointer), and espeak-rs's wrapper calls it
//! without a lock: concurrent calls segfault or double-free. Every call here goes through one
//! process-wide mutex, which also owns initialisation, so the data path is ours (the models
//! directory) rather than an environment variable or the build directory.

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::SpeechError;

/// The one espeak-ng instance of the process: `None` until initialised, then its data path
/// and the sample rate it synthesises at.
static ESPEAK: Mutex<Option<(PathBuf, u32)>> = Mutex::new(None);

/// The held process-wide lock.
type Held = std::sync::MutexGuard<'static, Option<(PathBuf, u32)>>;

/// Takes the process-wide lock, initialises espeak-ng on first use, and selects `voice`;
/// returns the guard and the synthesis rate.
fn ready(data_parent: &Path, voice: &str) -> Result<(Held, u32), SpeechError> {
    let mut guard = ESPEAK.lock().unwrap_or_else(|p| p.into_inner());
    let rate = match guard.as_ref() {
        Some((path, _)) if path != data_parent => {
            return Err(SpeechError::Config(format!(
                "espeak-ng already initialised with {} (one data directory per process)",
                path.display()
            )));
        }
        Some((_, rate)) => *rate,
        None => {
            let rate = initialise(data_parent)?;
            *guard = Some((data_parent.to_path_buf(), rate));
            rate
        }
    };
    let voice_c =
        CString::new(voice).map_err(|_| SpeechError::Config("voice name has a NUL".into()))?;
    // SAFETY: espeak is initialised and we hold the process-wide lock.
    let status = unsafe { espeak_rs_sys::espeak_SetVoiceByName(voice_c.as_ptr()) };
    if status != espeak_rs_sys::espeak_ERROR_EE_OK {
        return Err(SpeechError::Config(format!(
            "espeak-ng has no voice {voice:?}"
        )));
    }
    Ok((guard, rate))
}

/// Phonemises `text` (one clause) with `voice` ("en-us"), using the espeak-ng data found in
/// `data_parent/espeak-ng-data`. The clause's closing punctuation is kept, since Piper voices map
/// it to a pause and intonation.
pub fn phonemize(data_parent: &Path, voice: &str, text: &str) -> Result<String, SpeechError> {
    let _guard = ready(data_parent, voice)?;
    let text_c = CString::new(text.replace('\0', " "))
        .map_err(|_| SpeechError::Engine("text has a NUL".into()))?;
    let mode = espeak_rs_sys::espeakINITIALIZE_PHONEME_IPA as i32;
    let mut out = String::new();
    let mut ptr: *const c_char = text_c.as_ptr();
    // espeak advances `ptr` clause by clause and sets it to NULL at the end of the text.
    while !ptr.is_null() {
        // SAFETY: `ptr` points into `text_c`, alive for the loop; the result is a C string
        // owned by espeak, copied before the next call.
        let phonemes = unsafe {
            let res = espeak_rs_sys::espeak_TextToPhonemes(
                &mut ptr as *mut *const c_char as *mut *const c_void,
                espeak_rs_sys::espeakCHARS_UTF8 as i32,
                mode,
            );
            if res.is_null() {
                break;
            }
            CStr::from_ptr(res).to_string_lossy().into_owned()
        };
        let phonemes = strip_language_switches(&phonemes);
        if !phonemes.trim().is_empty() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(phonemes.trim());
        }
    }
    // Keep the clause's punctuation (espeak drops it), so the voice pauses and intones.
    if let Some(p) = text
        .trim_end()
        .chars()
        .last()
        .filter(|c| ",.;:?!".contains(*c))
        && !out.ends_with(p)
    {
        out.push(p);
    }
    Ok(out)
}

/// Collects the samples espeak hands to the synthesis callback.
unsafe extern "C" fn collect(
    wav: *mut std::os::raw::c_short,
    samples: std::os::raw::c_int,
    events: *mut espeak_rs_sys::espeak_EVENT,
) -> std::os::raw::c_int {
    // SAFETY: espeak passes the `user_data` given to `espeak_Synth` in every event: a live
    // `Vec<i16>` owned by `synthesize`, which holds the process-wide lock for the call.
    unsafe {
        if events.is_null() || (*events).user_data.is_null() {
            return 0;
        }
        let out = &mut *((*events).user_data as *mut Vec<i16>);
        if !wav.is_null() && samples > 0 {
            out.extend_from_slice(std::slice::from_raw_parts(wav, samples as usize));
        }
    }
    0
}

/// Speaks `text` with espeak-ng's own synthesiser and `voice` ("cmn-latn-pinyin"): 16-bit PCM
/// and its sample rate. The Mandarin hotline's voice: no neural Mandarin voice ships in a
/// package we can install (docs/speech.md).
pub fn synthesize(
    data_parent: &Path,
    voice: &str,
    text: &str,
) -> Result<(Vec<i16>, u32), SpeechError> {
    let (_guard, rate) = ready(data_parent, voice)?;
    let text_c = CString::new(text.replace('\0', " "))
        .map_err(|_| SpeechError::Engine("text has a NUL".into()))?;
    let mut out: Vec<i16> = Vec::new();
    // SAFETY: under the process-wide lock; `out` outlives the synchronous `espeak_Synth` call
    // (initialised in retrieval mode, it returns when the text is spoken), and the callback
    // is reset before `out` is read.
    let status = unsafe {
        espeak_rs_sys::espeak_SetSynthCallback(Some(collect));
        let status = espeak_rs_sys::espeak_Synth(
            text_c.as_ptr() as *const c_void,
            text_c.as_bytes_with_nul().len(),
            0,
            espeak_rs_sys::espeak_POSITION_TYPE_POS_CHARACTER,
            0,
            espeak_rs_sys::espeakCHARS_UTF8,
            std::ptr::null_mut(),
            &mut out as *mut Vec<i16> as *mut c_void,
        );
        espeak_rs_sys::espeak_Synchronize();
        espeak_rs_sys::espeak_SetSynthCallback(None);
        status
    };
    if status != espeak_rs_sys::espeak_ERROR_EE_OK {
        return Err(SpeechError::Engine(format!(
            "espeak-ng synthesis failed (code {status})"
        )));
    }
    Ok((out, rate))
}

fn initialise(data_parent: &Path) -> Result<u32, SpeechError> {
    if !data_parent.join("espeak-ng-data/phontab").exists() {
        return Err(SpeechError::ModelMissing(
            data_parent.join("espeak-ng-data"),
        ));
    }
    let path = CString::new(data_parent.to_string_lossy().as_bytes())
        .map_err(|_| SpeechError::Config("espeak data path has a NUL".into()))?;
    // SAFETY: called once, under the lock; DONT_EXIT keeps espeak from calling exit() on errors.
    let rate = unsafe {
        espeak_rs_sys::espeak_Initialize(
            espeak_rs_sys::espeak_AUDIO_OUTPUT_AUDIO_OUTPUT_RETRIEVAL,
            0,
            path.as_ptr(),
            espeak_rs_sys::espeakINITIALIZE_DONT_EXIT as i32,
        )
    };
    if rate <= 0 {
        return Err(SpeechError::Engine(format!(
            "espeak-ng failed to initialise with data in {} (code {rate})",
            data_parent.display()
        )));
    }
    Ok(rate as u32)
}

/// Removes the `(en)`-style language switch markers espeak inserts for foreign words.
fn strip_language_switches(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut depth = 0usize;
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}
