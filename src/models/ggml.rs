//! Writer for the legacy GGML model file that whisper.cpp's loader reads (`whisper_model_load`).
//!
//! ```text
//! i32 magic 0x67676d6c
//! i32 x 11 hparams: n_vocab n_audio_ctx n_audio_state n_audio_head n_audio_layer
//!                   n_text_ctx n_text_state n_text_head n_text_layer n_mels ftype
//! mel filters: i32 n_mel, i32 n_fft, f32[n_mel * n_fft]
//! vocabulary:  i32 count, then per token: u32 len, raw bytes
//! tensors:     i32 n_dims, i32 name_len, i32 type (0 f32, 1 f16, 8 q8_0), i32 ne[n_dims],
//!              name, data
//! ```
//!
//! Q8_0 (ggml's `block_q8_0`): blocks of 32 consecutive values along `ne[0]`, each an f16 scale
//! `d = max|x| / 127` then 32 signed bytes `round(x / d)`: 34 bytes per 32 values. A file of
//! mostly-Q8_0 weights says so in `ftype` as `7 + 1000 * 2` (ggml's quantisation version 2).
//!
//! ```text
//! ```
//!
//! `ne` is the shape in ggml order: the numpy/row-major shape reversed (fastest axis first).

use std::io::Write;

use super::ConvertError;
use super::bytes::ByteReader;

/// The GGML file magic, "ggml" as a little-endian i32.
pub const MAGIC: u32 = 0x6767_6d6c;

/// Whisper hyper-parameters, in the order the header stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WhisperHparams {
    pub n_vocab: i32,
    pub n_audio_ctx: i32,
    pub n_audio_state: i32,
    pub n_audio_head: i32,
    pub n_audio_layer: i32,
    pub n_text_ctx: i32,
    pub n_text_state: i32,
    pub n_text_head: i32,
    pub n_text_layer: i32,
    pub n_mels: i32,
    /// 1 = mostly f16; 2007 = mostly Q8_0 (quantisation version 2).
    pub ftype: i32,
}

impl WhisperHparams {
    fn as_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }
}

/// Element type of a GGML tensor as stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
}

/// Values per Q8_0 block, and the block's bytes (an f16 scale and 32 bytes).
pub const Q8_0_BLOCK: usize = 32;
const Q8_0_BYTES: usize = 2 + Q8_0_BLOCK;

impl GgmlType {
    /// Bytes `elements` values take (a multiple of the block size for Q8_0).
    pub fn bytes(self, elements: usize) -> Option<usize> {
        match self {
            Self::F32 => elements.checked_mul(4),
            Self::F16 => elements.checked_mul(2),
            Self::Q8_0 => elements
                .is_multiple_of(Q8_0_BLOCK)
                .then_some(elements / Q8_0_BLOCK * Q8_0_BYTES),
        }
    }

    /// The type of a file's type id.
    fn from_id(id: i32) -> Option<Self> {
        match id {
            0 => Some(Self::F32),
            1 => Some(Self::F16),
            8 => Some(Self::Q8_0),
            _ => None,
        }
    }
}

/// Quantises f32 values (a multiple of 32) to Q8_0 blocks.
pub fn quantize_q8_0(values: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() / Q8_0_BLOCK * Q8_0_BYTES);
    for block in values.chunks(Q8_0_BLOCK) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
        out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
        out.extend(
            block
                .iter()
                .map(|v| (v * inv).round().clamp(-127.0, 127.0) as i8 as u8),
        );
    }
    out
}

/// The f32 values of Q8_0 blocks (tests, checks).
pub fn dequantize_q8_0(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(Q8_0_BYTES)
        .flat_map(|b| {
            let d = half::f16::from_le_bytes([b[0], b[1]]).to_f32();
            b[2..].iter().map(move |&q| q as i8 as f32 * d)
        })
        .collect()
}

/// Streams a GGML whisper file: header first, then tensors one by one.
pub struct GgmlWriter<W: Write> {
    out: W,
    tensors: usize,
}

impl<W: Write> GgmlWriter<W> {
    /// Writes magic, hparams, mel filters (`n_mel` rows of `n_fft` bins) and the vocabulary.
    pub fn new(
        mut out: W,
        hparams: &WhisperHparams,
        mel_filters: &[f32],
        n_fft: usize,
        vocab: &[Vec<u8>],
    ) -> Result<Self, ConvertError> {
        out.write_all(&MAGIC.to_le_bytes())?;
        for v in hparams.as_array() {
            out.write_all(&v.to_le_bytes())?;
        }
        let n_mel = hparams.n_mels as usize;
        if mel_filters.len() != n_mel * n_fft {
            return Err(ConvertError::Shape(format!(
                "mel filter bank has {} values, expected {n_mel} x {n_fft}",
                mel_filters.len()
            )));
        }
        out.write_all(&(n_mel as i32).to_le_bytes())?;
        out.write_all(&(n_fft as i32).to_le_bytes())?;
        for f in mel_filters {
            out.write_all(&f.to_le_bytes())?;
        }
        out.write_all(&(vocab.len() as i32).to_le_bytes())?;
        for token in vocab {
            out.write_all(&(token.len() as u32).to_le_bytes())?;
            out.write_all(token)?;
        }
        Ok(Self { out, tensors: 0 })
    }

    /// Writes one tensor. `shape` is row-major (numpy order); `data` is already in `ty`.
    pub fn tensor(
        &mut self,
        name: &str,
        shape: &[usize],
        ty: GgmlType,
        data: &[u8],
    ) -> Result<(), ConvertError> {
        let elements: usize = shape.iter().product();
        if ty.bytes(elements) != Some(data.len()) {
            return Err(ConvertError::Shape(format!(
                "tensor {name}: {} bytes for shape {shape:?} of {ty:?}",
                data.len()
            )));
        }
        self.out.write_all(&(shape.len() as i32).to_le_bytes())?;
        self.out.write_all(&(name.len() as i32).to_le_bytes())?;
        self.out.write_all(&(ty as i32).to_le_bytes())?;
        for &d in shape.iter().rev() {
            self.out.write_all(&(d as i32).to_le_bytes())?;
        }
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(data)?;
        self.tensors += 1;
        Ok(())
    }

    /// Flushes and returns the writer and the number of tensors written.
    pub fn finish(mut self) -> Result<(W, usize), ConvertError> {
        self.out.flush()?;
        Ok((self.out, self.tensors))
    }
}

/// A parsed GGML whisper file, for tests and for checking a converted model.
#[derive(Debug)]
pub struct GgmlFile {
    pub hparams: WhisperHparams,
    pub n_mel: usize,
    pub n_fft: usize,
    pub mel_filters: Vec<f32>,
    pub vocab: Vec<Vec<u8>>,
    /// name -> (row-major shape, type, data)
    pub tensors: Vec<(String, Vec<usize>, GgmlType, Vec<u8>)>,
}

impl GgmlFile {
    /// Reads a whole GGML whisper file; refuses a bad magic or a truncated file.
    pub fn parse(bytes: &[u8]) -> Result<Self, ConvertError> {
        let mut r = ByteReader::new(bytes);
        if r.u32("magic")? != MAGIC {
            return Err(r.corrupt("not a GGML file (bad magic)".into()));
        }
        let mut h = [0i32; 11];
        for v in &mut h {
            *v = r.i32("hparams")?;
        }
        let hparams = WhisperHparams {
            n_vocab: h[0],
            n_audio_ctx: h[1],
            n_audio_state: h[2],
            n_audio_head: h[3],
            n_audio_layer: h[4],
            n_text_ctx: h[5],
            n_text_state: h[6],
            n_text_head: h[7],
            n_text_layer: h[8],
            n_mels: h[9],
            ftype: h[10],
        };
        let n_mel = r.len_i32("n_mel")?;
        let n_fft = r.len_i32("n_fft")?;
        let filter_bytes = n_mel
            .checked_mul(n_fft)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(|| r.corrupt("mel filter size overflows".into()))?;
        let mel_filters = r
            .take(filter_bytes, "mel filters")?
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let n_vocab = r.len_i32("vocabulary count")?;
        let mut vocab = Vec::new();
        for _ in 0..n_vocab {
            let len = r.u32("token length")? as usize;
            vocab.push(r.take(len, "token bytes")?.to_vec());
        }
        let mut tensors = Vec::new();
        while r.remaining() > 0 {
            let n_dims = r.len_i32("tensor rank")?;
            let name_len = r.len_i32("tensor name length")?;
            let id = r.i32("tensor type")?;
            let ty = GgmlType::from_id(id)
                .ok_or_else(|| r.corrupt(format!("unsupported tensor type {id}")))?;
            if n_dims > 4 {
                return Err(r.corrupt(format!("tensor rank {n_dims} (at most 4)")));
            }
            let mut ne = Vec::with_capacity(n_dims);
            for _ in 0..n_dims {
                ne.push(r.len_i32("tensor dimension")?);
            }
            let name = String::from_utf8_lossy(r.take(name_len, "tensor name")?).into_owned();
            let nbytes = ne
                .iter()
                .try_fold(1usize, |acc, &d| acc.checked_mul(d))
                .and_then(|n| ty.bytes(n))
                .ok_or_else(|| r.corrupt(format!("tensor {name} has a bad size")))?;
            let data = r.take(nbytes, "tensor data")?.to_vec();
            ne.reverse();
            tensors.push((name, ne, ty, data));
        }
        Ok(Self {
            hparams,
            n_mel,
            n_fft,
            mel_filters,
            vocab,
            tensors,
        })
    }
}
