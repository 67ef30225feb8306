//! CTranslate2 Whisper -> GGML conversion, so whisper.cpp can run the weights the registry ships.
//!
//! Name mapping (`E` = `encoder/layer_i`, `D` = `decoder/layer_i`, n = state width):
//!
//! ```text
//! encoder/conv{1,2}/{weight,bias}           -> encoder.conv{1,2}.{weight,bias}   (bias as [n,1])
//! encoder/position_encodings/encodings      -> encoder.positional_embedding
//! E/self_attention/layer_norm/{gamma,beta}  -> encoder.blocks.i.attn_ln.{weight,bias}
//! E/self_attention/linear_0 [3n,n]          -> attn.{query,key,value}.weight; bias q and v only
//! E/self_attention/linear_1                 -> attn.out
//! E/ffn/{layer_norm,linear_0,linear_1}      -> mlp_ln, mlp.0, mlp.2
//! encoder/layer_norm                        -> encoder.ln_post
//! decoder/embeddings/weight                 -> decoder.token_embedding.weight
//! decoder/position_encodings/encodings      -> decoder.positional_embedding
//! D/self_attention/*                        -> decoder.blocks.i.attn_ln, attn.* (as the encoder)
//! D/attention/layer_norm, linear_0          -> cross_attn_ln, cross_attn.query
//! D/attention/linear_1 [2n,n]               -> cross_attn.{key,value}.weight, value bias
//! D/attention/linear_2                      -> cross_attn.out
//! decoder/layer_norm                        -> decoder.ln
//! ```
//!
//! whisper.cpp has no key bias: dropping it is exact, because `q·(k+b) = q·k + q·b` shifts every
//! attention logit of one query by the same amount, which softmax ignores.
//!
//! Types follow whisper.cpp's tensor table: the matrix weights (attention, MLP, token
//! embedding) f16 or, for `Weights::Q8_0`, 8-bit blocks (whisper.cpp's `wtype`); the conv
//! weights f16 (its `vtype`); 1-D tensors, conv biases and positional embeddings f32. The loader
//! checks sizes, so a wrong type fails loudly there too.

use std::io::Write;
use std::ops::Range;

use half::{bf16, f16};

use super::ConvertError;
use super::ct2::{Ct2Model, Ct2Type, Ct2Var};
use super::ggml::{GgmlType, GgmlWriter, WhisperHparams};
use super::{mel, vocab};

/// What a conversion produced, for logs and checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    pub hparams: WhisperHparams,
    pub tensors: usize,
    pub vocab_tokens: usize,
}

/// How the matrix weights are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// As shipped (16-bit floats).
    F16,
    /// 8-bit blocks with an f16 scale per 32 values: half the memory traffic, integer dot
    /// products on AVX2.
    Q8_0,
}

/// Converts a CTranslate2 Whisper `model.bin` plus its `vocabulary.txt` into a GGML file.
pub fn convert_whisper<W: Write>(
    model_bin: &[u8],
    vocabulary: &str,
    out: W,
) -> Result<(W, ConvertSummary), ConvertError> {
    convert_whisper_as(model_bin, vocabulary, out, Weights::F16)
}

/// `convert_whisper` with the matrix weights stored as `weights`.
pub fn convert_whisper_as<W: Write>(
    model_bin: &[u8],
    vocabulary: &str,
    out: W,
    weights: Weights,
) -> Result<(W, ConvertSummary), ConvertError> {
    let model = Ct2Model::parse(model_bin)?;
    if model.spec != "WhisperSpec" {
        return Err(ConvertError::Shape(format!(
            "model spec is {:?}, not a Whisper model",
            model.spec
        )));
    }
    let mut hparams = hparams(&model)?;
    let wtype = match weights {
        Weights::F16 => GgmlType::F16,
        Weights::Q8_0 => {
            hparams.ftype = 7 + 1000 * 2;
            GgmlType::Q8_0
        }
    };
    let tokens = vocab::decode_vocabulary(vocabulary)?;
    // Tokens past <|endoftext|> are special and whisper.cpp derives them; the rest must fit.
    if tokens.len() >= hparams.n_vocab as usize {
        return Err(ConvertError::Vocabulary(format!(
            "{} text tokens but the embedding has only {} rows",
            tokens.len(),
            hparams.n_vocab
        )));
    }
    let bank = mel::filter_bank(hparams.n_mels as usize);
    let mut w = GgmlWriter::new(out, &hparams, &bank, mel::N_BINS, &tokens)?;
    let mut c = Converter {
        model: &model,
        w: &mut w,
        wtype,
    };

    let n_audio = hparams.n_audio_state as usize;
    for k in 1..=2 {
        // Conv weights stay f16 whatever the matrices are (whisper.cpp's `vtype`).
        c.emit_full(
            &format!("encoder.conv{k}.weight"),
            &format!("encoder/conv{k}/weight"),
            GgmlType::F16,
        )?;
        let bias = c.var(&format!("encoder/conv{k}/bias"))?;
        c.emit(
            &format!("encoder.conv{k}.bias"),
            bias,
            0..n_audio,
            &[n_audio, 1],
            GgmlType::F32,
        )?;
    }
    c.emit_full(
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
        GgmlType::F32,
    )?;
    for i in 0..hparams.n_audio_layer {
        let (g, e) = (format!("encoder.blocks.{i}"), format!("encoder/layer_{i}"));
        c.self_attention(&g, &e, n_audio)?;
        c.ffn(&g, &e)?;
    }
    c.norm("encoder.ln_post", "encoder/layer_norm")?;

    let n_text = hparams.n_text_state as usize;
    c.emit_weight(
        "decoder.token_embedding.weight",
        "decoder/embeddings/weight",
    )?;
    c.emit_full(
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
        GgmlType::F32,
    )?;
    for i in 0..hparams.n_text_layer {
        let (g, d) = (format!("decoder.blocks.{i}"), format!("decoder/layer_{i}"));
        c.self_attention(&g, &d, n_text)?;
        c.norm(
            &format!("{g}.cross_attn_ln"),
            &format!("{d}/attention/layer_norm"),
        )?;
        c.linear(
            &format!("{g}.cross_attn.query"),
            &format!("{d}/attention/linear_0"),
        )?;
        let kv = c.var(&format!("{d}/attention/linear_1/weight"))?;
        let kv_bias = c.var(&format!("{d}/attention/linear_1/bias"))?;
        c.emit(
            &format!("{g}.cross_attn.key.weight"),
            kv,
            0..n_text,
            &[n_text, n_text],
            wtype,
        )?;
        c.emit(
            &format!("{g}.cross_attn.value.weight"),
            kv,
            n_text..2 * n_text,
            &[n_text, n_text],
            wtype,
        )?;
        c.emit(
            &format!("{g}.cross_attn.value.bias"),
            kv_bias,
            n_text..2 * n_text,
            &[n_text],
            GgmlType::F32,
        )?;
        c.linear(
            &format!("{g}.cross_attn.out"),
            &format!("{d}/attention/linear_2"),
        )?;
        c.ffn(&g, &d)?;
    }
    c.norm("decoder.ln", "decoder/layer_norm")?;

    let (out, tensors) = w.finish()?;
    Ok((
        out,
        ConvertSummary {
            hparams,
            tensors,
            vocab_tokens: tokens.len(),
        },
    ))
}

/// Number of tensors whisper.cpp requires for a model with these layer counts.
pub fn expected_tensor_count(h: &WhisperHparams) -> usize {
    // encoder: 2 convs (w, b), positional, 15 per block, ln_post (w, b)
    // decoder: token + positional embedding, 24 per block, ln (w, b)
    (4 + 1 + 15 * h.n_audio_layer as usize + 2) + (2 + 24 * h.n_text_layer as usize + 2)
}

fn hparams(model: &Ct2Model<'_>) -> Result<WhisperHparams, ConvertError> {
    let dims = |name: &str, rank: usize| -> Result<Vec<usize>, ConvertError> {
        let v = model.var(name)?;
        if v.dims.len() != rank {
            return Err(ConvertError::Shape(format!(
                "{name} has shape {:?}, expected rank {rank}",
                v.dims
            )));
        }
        Ok(v.dims.clone())
    };
    let heads = |name: &str| -> Result<i32, ConvertError> {
        model
            .var(name)?
            .scalar_int()
            .and_then(|h| i32::try_from(h).ok())
            .filter(|&h| h > 0)
            .ok_or_else(|| ConvertError::Shape(format!("{name} is not a positive integer scalar")))
    };
    let layers = |side: &str| {
        (0..)
            .take_while(|i| {
                model
                    .vars
                    .contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight"))
            })
            .count() as i32
    };
    let conv1 = dims("encoder/conv1/weight", 3)?;
    let audio_pos = dims("encoder/position_encodings/encodings", 2)?;
    let embed = dims("decoder/embeddings/weight", 2)?;
    let text_pos = dims("decoder/position_encodings/encodings", 2)?;
    let h = WhisperHparams {
        n_vocab: embed[0] as i32,
        n_audio_ctx: audio_pos[0] as i32,
        n_audio_state: conv1[0] as i32,
        n_audio_head: heads("encoder/num_heads")?,
        n_audio_layer: layers("encoder"),
        n_text_ctx: text_pos[0] as i32,
        n_text_state: embed[1] as i32,
        n_text_head: heads("decoder/num_heads")?,
        n_text_layer: layers("decoder"),
        n_mels: conv1[1] as i32,
        ftype: 1,
    };
    if h.n_audio_layer == 0 || h.n_text_layer == 0 {
        return Err(ConvertError::Shape(
            "model has no encoder or decoder layers".into(),
        ));
    }
    if audio_pos[1] != conv1[0] || text_pos[1] != embed[1] {
        return Err(ConvertError::Shape(
            "positional embeddings do not match the state width".into(),
        ));
    }
    Ok(h)
}

struct Converter<'m, 'a, W: Write> {
    model: &'m Ct2Model<'a>,
    w: &'m mut GgmlWriter<W>,
    /// The matrix weights' type.
    wtype: GgmlType,
}

impl<'m, 'a, W: Write> Converter<'m, 'a, W> {
    /// Borrows from the model, not from the converter, so it can be used while writing.
    fn var(&self, name: &str) -> Result<&'m Ct2Var<'a>, ConvertError> {
        self.model.var(name)
    }

    /// Writes rows `rows` (along the first axis) of `var` as a tensor of `shape` and type `ty`.
    fn emit(
        &mut self,
        name: &str,
        var: &Ct2Var<'_>,
        rows: Range<usize>,
        shape: &[usize],
        ty: GgmlType,
    ) -> Result<(), ConvertError> {
        let first = *var.dims.first().unwrap_or(&1);
        if rows.end > first {
            return Err(ConvertError::Shape(format!(
                "{name}: rows {rows:?} out of range for shape {:?}",
                var.dims
            )));
        }
        let row_bytes = var.dims.iter().skip(1).product::<usize>() * var.dtype.size();
        let src = &var.data[rows.start * row_bytes..rows.end * row_bytes];
        let expected: usize = shape.iter().product();
        if src.len() / var.dtype.size() != expected {
            return Err(ConvertError::Shape(format!(
                "{name}: source shape {:?} rows {rows:?} does not fit {shape:?}",
                var.dims
            )));
        }
        let data = convert_elements(src, var.dtype, ty, name)?;
        self.w.tensor(name, shape, ty, &data)
    }

    fn emit_full(&mut self, name: &str, src: &str, ty: GgmlType) -> Result<(), ConvertError> {
        let var = self.var(src)?;
        let rows = 0..*var.dims.first().unwrap_or(&1);
        let shape = var.dims.clone();
        self.emit(name, var, rows, &shape, ty)
    }

    fn emit_weight(&mut self, name: &str, src: &str) -> Result<(), ConvertError> {
        self.emit_full(name, src, self.wtype)
    }

    fn linear(&mut self, g: &str, src: &str) -> Result<(), ConvertError> {
        self.emit_weight(&format!("{g}.weight"), &format!("{src}/weight"))?;
        self.emit_full(&format!("{g}.bias"), &format!("{src}/bias"), GgmlType::F32)
    }

    fn norm(&mut self, g: &str, src: &str) -> Result<(), ConvertError> {
        self.emit_full(
            &format!("{g}.weight"),
            &format!("{src}/gamma"),
            GgmlType::F32,
        )?;
        self.emit_full(&format!("{g}.bias"), &format!("{src}/beta"), GgmlType::F32)
    }

    /// Self-attention with CTranslate2's fused QKV projection split into three.
    fn self_attention(&mut self, g: &str, src: &str, n: usize) -> Result<(), ConvertError> {
        self.norm(
            &format!("{g}.attn_ln"),
            &format!("{src}/self_attention/layer_norm"),
        )?;
        let qkv = self.var(&format!("{src}/self_attention/linear_0/weight"))?;
        let qkv_bias = self.var(&format!("{src}/self_attention/linear_0/bias"))?;
        for (part, k) in ["query", "key", "value"].iter().zip(0..) {
            let rows = k * n..(k + 1) * n;
            self.emit(
                &format!("{g}.attn.{part}.weight"),
                qkv,
                rows.clone(),
                &[n, n],
                self.wtype,
            )?;
            if *part != "key" {
                self.emit(
                    &format!("{g}.attn.{part}.bias"),
                    qkv_bias,
                    rows,
                    &[n],
                    GgmlType::F32,
                )?;
            }
        }
        self.linear(
            &format!("{g}.attn.out"),
            &format!("{src}/self_attention/linear_1"),
        )
    }

    fn ffn(&mut self, g: &str, src: &str) -> Result<(), ConvertError> {
        self.norm(&format!("{g}.mlp_ln"), &format!("{src}/ffn/layer_norm"))?;
        self.linear(&format!("{g}.mlp.0"), &format!("{src}/ffn/linear_0"))?;
        self.linear(&format!("{g}.mlp.2"), &format!("{src}/ffn/linear_1"))
    }
}

/// Re-encodes little-endian float elements from the CTranslate2 type to the GGML type.
fn convert_elements(
    src: &[u8],
    from: Ct2Type,
    to: GgmlType,
    name: &str,
) -> Result<Vec<u8>, ConvertError> {
    let as_f32: fn(&[u8]) -> f32 = match from {
        Ct2Type::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        Ct2Type::F16 => |b| f16::from_le_bytes([b[0], b[1]]).to_f32(),
        Ct2Type::Bf16 => |b| bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        other => {
            return Err(ConvertError::Shape(format!(
                "{name} is {other:?}; quantised models are not supported"
            )));
        }
    };
    Ok(match (from, to) {
        (Ct2Type::F16, GgmlType::F16) | (Ct2Type::F32, GgmlType::F32) => src.to_vec(),
        (_, GgmlType::F32) => src
            .chunks_exact(from.size())
            .flat_map(|b| as_f32(b).to_le_bytes())
            .collect(),
        (_, GgmlType::F16) => src
            .chunks_exact(from.size())
            .flat_map(|b| f16::from_f32(as_f32(b)).to_le_bytes())
            .collect(),
        (_, GgmlType::Q8_0) => {
            let values: Vec<f32> = src.chunks_exact(from.size()).map(as_f32).collect();
            if !values.len().is_multiple_of(super::ggml::Q8_0_BLOCK) {
                return Err(ConvertError::Shape(format!(
                    "{name}: {} values are not whole 32-value blocks",
                    values.len()
                )));
            }
            super::ggml::quantize_q8_0(&values)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ct2::write;
    use crate::models::ggml::GgmlFile;

    const N: usize = 4; // state width
    const MELS: usize = 80;
    const VOCAB: usize = 8; // 5 text tokens, <|endoftext|>, 2 more specials

    /// f16 bytes whose values encode their position, so every slice can be traced.
    fn f16_seq(len: usize, base: f32) -> Vec<u8> {
        (0..len)
            .flat_map(|i| f16::from_f32(base + i as f32).to_le_bytes())
            .collect()
    }

    fn var(name: &str, dims: Vec<usize>, base: f32) -> (String, Vec<usize>, Ct2Type, Vec<u8>) {
        let len = dims.iter().product();
        (name.to_string(), dims, Ct2Type::F16, f16_seq(len, base))
    }

    fn synthetic_model() -> Vec<u8> {
        let mut vars = vec![
            var("encoder/conv1/weight", vec![N, MELS, 3], 0.0),
            var("encoder/conv1/bias", vec![N], 1.0),
            var("encoder/conv2/weight", vec![N, N, 3], 0.0),
            var("encoder/conv2/bias", vec![N], 2.0),
            var("encoder/position_encodings/encodings", vec![6, N], 0.0),
            var("encoder/layer_norm/gamma", vec![N], 3.0),
            var("encoder/layer_norm/beta", vec![N], 4.0),
            var("decoder/embeddings/weight", vec![VOCAB, N], 0.0),
            var("decoder/position_encodings/encodings", vec![5, N], 0.0),
            var("decoder/layer_norm/gamma", vec![N], 5.0),
            var("decoder/layer_norm/beta", vec![N], 6.0),
        ];
        for (side, attn) in [("encoder", false), ("decoder", true)] {
            let p = format!("{side}/layer_0");
            for ln in ["self_attention/layer_norm", "ffn/layer_norm"] {
                vars.push(var(&format!("{p}/{ln}/gamma"), vec![N], 1.0));
                vars.push(var(&format!("{p}/{ln}/beta"), vec![N], 0.0));
            }
            vars.push(var(
                &format!("{p}/self_attention/linear_0/weight"),
                vec![3 * N, N],
                0.0,
            ));
            vars.push(var(
                &format!("{p}/self_attention/linear_0/bias"),
                vec![3 * N],
                100.0,
            ));
            vars.push(var(
                &format!("{p}/self_attention/linear_1/weight"),
                vec![N, N],
                0.0,
            ));
            vars.push(var(
                &format!("{p}/self_attention/linear_1/bias"),
                vec![N],
                0.0,
            ));
            vars.push(var(
                &format!("{p}/ffn/linear_0/weight"),
                vec![2 * N, N],
                0.0,
            ));
            vars.push(var(&format!("{p}/ffn/linear_0/bias"), vec![2 * N], 0.0));
            vars.push(var(
                &format!("{p}/ffn/linear_1/weight"),
                vec![N, 2 * N],
                0.0,
            ));
            vars.push(var(&format!("{p}/ffn/linear_1/bias"), vec![N], 0.0));
            if attn {
                vars.push(var(
                    &format!("{p}/attention/layer_norm/gamma"),
                    vec![N],
                    1.0,
                ));
                vars.push(var(&format!("{p}/attention/layer_norm/beta"), vec![N], 0.0));
                vars.push(var(
                    &format!("{p}/attention/linear_0/weight"),
                    vec![N, N],
                    0.0,
                ));
                vars.push(var(&format!("{p}/attention/linear_0/bias"), vec![N], 0.0));
                vars.push(var(
                    &format!("{p}/attention/linear_1/weight"),
                    vec![2 * N, N],
                    0.0,
                ));
                vars.push(var(
                    &format!("{p}/attention/linear_1/bias"),
                    vec![2 * N],
                    200.0,
                ));
                vars.push(var(
                    &format!("{p}/attention/linear_2/weight"),
                    vec![N, N],
                    0.0,
                ));
                vars.push(var(&format!("{p}/attention/linear_2/bias"), vec![N], 0.0));
            }
        }
        for side in ["encoder", "decoder"] {
            vars.push((
                format!("{side}/num_heads"),
                vec![],
                Ct2Type::I16,
                2i16.to_le_bytes().to_vec(),
            ));
        }
        let refs: Vec<(&str, Vec<usize>, Ct2Type, Vec<u8>)> = vars
            .iter()
            .map(|(n, d, t, b)| (n.as_str(), d.clone(), *t, b.clone()))
            .collect();
        write(
            "WhisperSpec",
            &refs,
            &[("decoder/projection/weight", "decoder/embeddings/weight")],
        )
    }

    const VOCAB_TXT: &str = "a\nĠb\nc\nĊ\nĠhi\n<|endoftext|>\n<|startoftranscript|>\n<|en|>\n";

    fn tensor<'f>(f: &'f GgmlFile, name: &str) -> &'f (String, Vec<usize>, GgmlType, Vec<u8>) {
        f.tensors
            .iter()
            .find(|t| t.0 == name)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }

    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    #[test]
    fn round_trip_of_a_small_synthetic_model() {
        let (out, summary) = convert_whisper(&synthetic_model(), VOCAB_TXT, Vec::new()).unwrap();
        let f = GgmlFile::parse(&out).unwrap();

        // Header and hparams.
        assert_eq!(&out[..4], &0x6767_6d6cu32.to_le_bytes());
        let h = f.hparams;
        assert_eq!(
            [
                h.n_vocab,
                h.n_audio_ctx,
                h.n_audio_state,
                h.n_audio_head,
                h.n_audio_layer
            ],
            [VOCAB as i32, 6, N as i32, 2, 1]
        );
        assert_eq!(
            [h.n_text_ctx, h.n_text_state, h.n_text_head, h.n_text_layer],
            [5, N as i32, 2, 1]
        );
        assert_eq!((h.n_mels, h.ftype), (80, 1));
        assert_eq!((f.n_mel, f.n_fft), (80, 201));
        assert_eq!(f.mel_filters, mel::filter_bank(80));

        // Vocabulary: bytes, only ids below <|endoftext|>.
        assert_eq!(
            f.vocab,
            vec![
                b"a".to_vec(),
                b" b".to_vec(),
                b"c".to_vec(),
                b"\n".to_vec(),
                b" hi".to_vec()
            ]
        );
        assert_eq!(summary.vocab_tokens, 5);

        // Every tensor whisper.cpp requires, once each.
        assert_eq!(f.tensors.len(), expected_tensor_count(&h));
        assert_eq!(summary.tensors, f.tensors.len());
        let mut names: Vec<_> = f.tensors.iter().map(|t| t.0.clone()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), f.tensors.len());

        // Fused QKV rows split in order; key bias dropped; biases widened to f32.
        let q = tensor(&f, "encoder.blocks.0.attn.query.weight");
        let k = tensor(&f, "encoder.blocks.0.attn.key.weight");
        let v = tensor(&f, "encoder.blocks.0.attn.value.weight");
        assert_eq!((q.1.clone(), q.2), (vec![N, N], GgmlType::F16));
        assert_eq!(q.3, f16_seq(N * N, 0.0));
        assert_eq!(k.3, f16_seq(N * N, (N * N) as f32));
        assert_eq!(v.3, f16_seq(N * N, (2 * N * N) as f32));
        assert!(f.tensors.iter().all(|t| !t.0.ends_with("key.bias")));
        let vb = tensor(&f, "encoder.blocks.0.attn.value.bias");
        assert_eq!(vb.2, GgmlType::F32);
        assert_eq!(f32s(&vb.3), vec![108.0, 109.0, 110.0, 111.0]);

        // Cross attention key/value split, conv bias as [n, 1] f32, positional f32, embedding f16.
        let cv = tensor(&f, "decoder.blocks.0.cross_attn.value.bias");
        assert_eq!(f32s(&cv.3), vec![204.0, 205.0, 206.0, 207.0]);
        let cb = tensor(&f, "encoder.conv1.bias");
        assert_eq!((cb.1.clone(), cb.2), (vec![N, 1], GgmlType::F32));
        assert_eq!(f32s(&cb.3), vec![1.0, 2.0, 3.0, 4.0]);
        assert_eq!(tensor(&f, "encoder.conv1.weight").1, vec![N, MELS, 3]);
        assert_eq!(tensor(&f, "decoder.positional_embedding").2, GgmlType::F32);
        assert_eq!(
            tensor(&f, "decoder.token_embedding.weight").2,
            GgmlType::F16
        );
        assert_eq!(
            f32s(&tensor(&f, "decoder.ln.bias").3),
            vec![6.0, 7.0, 8.0, 9.0]
        );
    }

    #[test]
    fn refuses_truncated_and_incomplete_models() {
        let model = synthetic_model();
        for cut in [0, 3, 40, model.len() / 2, model.len() - 1] {
            let err = convert_whisper(&model[..cut], VOCAB_TXT, Vec::new()).unwrap_err();
            assert!(
                matches!(err, ConvertError::Truncated { .. }),
                "cut {cut}: {err}"
            );
        }
        let no_encoder_norm = write(
            "WhisperSpec",
            &[(
                "encoder/conv1/weight",
                vec![N, MELS, 3],
                Ct2Type::F16,
                f16_seq(N * MELS * 3, 0.0),
            )],
            &[],
        );
        let err = convert_whisper(&no_encoder_norm, VOCAB_TXT, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("no variable"), "{err}");
        let other_spec = write("TransformerSpec", &[], &[]);
        let err = convert_whisper(&other_spec, VOCAB_TXT, Vec::new()).unwrap_err();
        assert!(err.to_string().contains("not a Whisper model"), "{err}");
    }

    #[test]
    fn refuses_a_vocabulary_larger_than_the_embedding() {
        let long: String =
            (0..20).map(|i| format!("t{i}\n")).collect::<String>() + "<|endoftext|>\n";
        let err = convert_whisper(&synthetic_model(), &long, Vec::new()).unwrap_err();
        assert!(matches!(err, ConvertError::Vocabulary(_)), "{err}");
    }
}

#[cfg(test)]
mod q8_tests {
    use super::*;
    use crate::models::ggml::{dequantize_q8_0, quantize_q8_0};

    #[test]
    fn q8_0_blocks_round_trip_within_half_a_step() {
        let values: Vec<f32> = (0..96).map(|i| ((i as f32) * 0.37).sin() * 3.0).collect();
        let q = quantize_q8_0(&values);
        assert_eq!(q.len(), 3 * 34);
        let back = dequantize_q8_0(&q);
        for block in 0..3 {
            let amax = values[block * 32..(block + 1) * 32]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            for i in block * 32..(block + 1) * 32 {
                assert!((back[i] - values[i]).abs() <= amax / 127.0 * 0.51 + 1e-3);
            }
        }
        assert_eq!(dequantize_q8_0(&quantize_q8_0(&[0.0; 32])), vec![0.0; 32]);
    }

    #[test]
    fn rows_that_are_not_whole_blocks_are_refused() {
        let err = convert_elements(&[0u8; 8 * 4], Ct2Type::F32, GgmlType::Q8_0, "w").unwrap_err();
        assert!(
            err.to_string().contains("not whole 32-value blocks"),
            "{err}"
        );
        let ok = convert_elements(&[0u8; 32 * 2], Ct2Type::F16, GgmlType::Q8_0, "w").unwrap();
        assert_eq!(ok.len(), 34);
    }
}
