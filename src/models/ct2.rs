//! Reader for CTranslate2 `model.bin` files (the faster-whisper format the registry packages ship).
//!
//! Layout (all little-endian; a "str" is a u16 length that counts a trailing NUL, then the bytes):
//!
//! ```text
//! u32 version (6) | str spec ("WhisperSpec") | u32 revision
//! u32 n_vars, then per variable: str name | u8 rank | u32 dims[rank] | u8 dtype | u32 nbytes | data
//! u32 n_aliases, then (str alias, str target) pairs
//! ```
//!
//! Every length read from the file is checked against what is left, so a truncated or corrupt file
//! is refused with the offset where it went wrong instead of a panic or a huge allocation.

use std::collections::BTreeMap;

use super::ConvertError;
use super::bytes::ByteReader;

/// Element type of a CTranslate2 variable (the u8 `dtype` code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ct2Type {
    F32,
    I8,
    I16,
    I32,
    F16,
    Bf16,
}

impl Ct2Type {
    fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            0 => Self::F32,
            1 => Self::I8,
            2 => Self::I16,
            3 => Self::I32,
            4 => Self::F16,
            5 => Self::Bf16,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::I8 => 1,
            Self::I16 | Self::F16 | Self::Bf16 => 2,
            Self::F32 | Self::I32 => 4,
        }
    }

    /// The file's code for this type (the inverse of `from_code`).
    pub fn code(self) -> u8 {
        match self {
            Self::F32 => 0,
            Self::I8 => 1,
            Self::I16 => 2,
            Self::I32 => 3,
            Self::F16 => 4,
            Self::Bf16 => 5,
        }
    }
}

/// One named tensor or scalar from the file, borrowing its bytes from the input buffer.
#[derive(Debug, Clone)]
pub struct Ct2Var<'a> {
    pub dims: Vec<usize>,
    pub dtype: Ct2Type,
    pub data: &'a [u8],
}

impl Ct2Var<'_> {
    /// Reads a rank-0 integer variable (such as `encoder/num_heads`).
    pub fn scalar_int(&self) -> Option<i64> {
        if !self.dims.is_empty() {
            return None;
        }
        match self.dtype {
            Ct2Type::I8 => self.data.first().map(|&b| b as i8 as i64),
            Ct2Type::I16 => self
                .data
                .get(..2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]) as i64),
            Ct2Type::I32 => self
                .data
                .get(..4)
                .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64),
            _ => None,
        }
    }
}

/// A parsed CTranslate2 model: its spec name and variables by name (aliases resolved).
#[derive(Debug)]
pub struct Ct2Model<'a> {
    pub spec: String,
    pub revision: u32,
    pub vars: BTreeMap<String, Ct2Var<'a>>,
}

impl<'a> Ct2Model<'a> {
    /// Parses a whole `model.bin` held in memory.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ConvertError> {
        let mut r = ByteReader::new(bytes);
        let version = r.u32("format version")?;
        if version != 6 {
            return Err(r.corrupt(format!(
                "CTranslate2 format version {version}; only version 6 is supported"
            )));
        }
        let spec = read_string(&mut r, "spec name")?;
        let revision = r.u32("spec revision")?;
        let n_vars = r.u32("variable count")? as usize;
        let mut vars = BTreeMap::new();
        for _ in 0..n_vars {
            let name = read_string(&mut r, "variable name")?;
            let rank = r.u8("rank")? as usize;
            if rank > 4 {
                return Err(r.corrupt(format!("variable {name} has rank {rank} (at most 4)")));
            }
            let mut dims = Vec::with_capacity(rank);
            for _ in 0..rank {
                dims.push(r.u32("dimension")? as usize);
            }
            let code = r.u8("dtype")?;
            let dtype = Ct2Type::from_code(code)
                .ok_or_else(|| r.corrupt(format!("variable {name} has unknown dtype {code}")))?;
            let nbytes = r.u32("byte count")? as usize;
            let elements: usize = dims.iter().product();
            if elements.checked_mul(dtype.size()) != Some(nbytes) {
                return Err(r.corrupt(format!(
                    "variable {name}: {nbytes} bytes do not match shape {dims:?} of {dtype:?}"
                )));
            }
            let data = r.take(nbytes, "variable data")?;
            vars.insert(name, Ct2Var { dims, dtype, data });
        }
        let n_aliases = r.u32("alias count")? as usize;
        for _ in 0..n_aliases {
            let alias = read_string(&mut r, "alias name")?;
            let target = read_string(&mut r, "alias target")?;
            let var = vars.get(&target).cloned().ok_or_else(|| {
                r.corrupt(format!("alias {alias} points at missing variable {target}"))
            })?;
            vars.insert(alias, var);
        }
        Ok(Self {
            spec,
            revision,
            vars,
        })
    }

    /// Looks up a variable that the conversion requires.
    pub fn var(&self, name: &str) -> Result<&Ct2Var<'a>, ConvertError> {
        self.vars
            .get(name)
            .ok_or_else(|| ConvertError::MissingVariable(name.to_string()))
    }
}

/// A CTranslate2 string: u16 length counting a trailing NUL, then the bytes.
fn read_string(r: &mut ByteReader<'_>, what: &str) -> Result<String, ConvertError> {
    let len = r.u16(what)? as usize;
    let raw = r.take(len, what)?;
    let text = raw.strip_suffix(&[0]).unwrap_or(raw);
    String::from_utf8(text.to_vec()).map_err(|_| r.corrupt(format!("{what} is not UTF-8")))
}

/// Serialises a model in the same format; used by tests to build small synthetic models.
pub fn write(
    spec: &str,
    vars: &[(&str, Vec<usize>, Ct2Type, Vec<u8>)],
    aliases: &[(&str, &str)],
) -> Vec<u8> {
    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    let mut out = Vec::new();
    out.extend_from_slice(&6u32.to_le_bytes());
    put_str(&mut out, spec);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(vars.len() as u32).to_le_bytes());
    for (name, dims, dtype, data) in vars {
        put_str(&mut out, name);
        out.push(dims.len() as u8);
        for d in dims {
            out.extend_from_slice(&(*d as u32).to_le_bytes());
        }
        out.push(dtype.code());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out.extend_from_slice(&(aliases.len() as u32).to_le_bytes());
    for (alias, target) in aliases {
        put_str(&mut out, alias);
        put_str(&mut out, target);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        write(
            "WhisperSpec",
            &[
                (
                    "a/num_heads",
                    vec![],
                    Ct2Type::I16,
                    6i16.to_le_bytes().to_vec(),
                ),
                ("a/w", vec![2, 2], Ct2Type::F32, vec![0u8; 16]),
            ],
            &[("a/alias", "a/w")],
        )
    }

    #[test]
    fn parses_vars_scalars_and_aliases() {
        let bytes = sample();
        let m = Ct2Model::parse(&bytes).unwrap();
        assert_eq!(m.spec, "WhisperSpec");
        assert_eq!(m.revision, 3);
        assert_eq!(m.var("a/num_heads").unwrap().scalar_int(), Some(6));
        assert_eq!(m.var("a/w").unwrap().dims, vec![2, 2]);
        assert_eq!(m.var("a/alias").unwrap().data.len(), 16);
        assert!(matches!(
            m.var("nope"),
            Err(ConvertError::MissingVariable(_))
        ));
    }

    #[test]
    fn every_truncation_is_refused_without_panic() {
        let bytes = sample();
        for cut in 0..bytes.len() {
            let err = Ct2Model::parse(&bytes[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConvertError::Truncated { .. } | ConvertError::Corrupt { .. }
                ),
                "cut at {cut}: {err}"
            );
        }
    }

    #[test]
    fn wrong_version_and_bad_sizes_are_refused() {
        let mut bytes = sample();
        bytes[0] = 5;
        assert!(
            Ct2Model::parse(&bytes)
                .unwrap_err()
                .to_string()
                .contains("version 5")
        );

        let bad = write(
            "WhisperSpec",
            &[("x", vec![4], Ct2Type::F16, vec![0u8; 7])],
            &[],
        );
        assert!(
            Ct2Model::parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("do not match shape")
        );

        let dangling = write("WhisperSpec", &[], &[("x", "missing")]);
        assert!(
            Ct2Model::parse(&dangling)
                .unwrap_err()
                .to_string()
                .contains("missing variable")
        );
    }
}
