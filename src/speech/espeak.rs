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

/// The one espeak-ng instance of the process: `None` until initialised, then its data path.
static ESPEAK: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Phonemises `text` (one clause) with `voice` ("en-us"), using the espeak-ng data found in
/// `data_parent/espeak-ng-data`. The clause's closing punctuation is kept, since Piper voices map
/// it to a pause and intonation.
pub fn phonemize(data_parent: &Path, voice: &str, text: &str) -> Result<String, SpeechError> {
    let mut guard = ESPEAK.lock().unwrap_or_else(|p| p.into_inner());
    match guard.as_ref() {
        Some(path) if path != data_parent => {
            return Err(SpeechError::Config(format!(
                "espeak-ng already initialised with {} (one data directory per process)",
                path.display()
            )));
        }
        Some(_) => {}
        None => {
            initialise(data_parent)?;
            *guard = Some(data_parent.to_path_buf());
        }
    }
    let voice_c =
        CString::new(voice).map_err(|_| SpeechError::Config("voice name has a NUL".into()))?;
    // SAFETY: espeak is initialised and we hold the process-wide lock.
    let status = unsafe { espeak_rs_sys::espeak_SetVoiceByName(voice_c.as_ptr()) };
    if status != espeak_rs_sys::espeak_ERROR_EE_OK {
        return Err(SpeechError::Config(format!(
            "espeak-ng has no voice {voice:?}"
        )));
    }
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

fn initialise(data_parent: &Path) -> Result<(), SpeechError> {
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
    Ok(())
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
