//! A bounds-checked little-endian cursor shared by the model file parsers: every read says what it
//! was reading, so a truncated or corrupt file is refused with an offset instead of a panic.

use super::ConvertError;

/// Reads little-endian values from a byte slice, never past its end.
pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// An error for a value that was read but makes no sense, at the current offset.
    pub fn corrupt(&self, what: String) -> ConvertError {
        ConvertError::Corrupt {
            offset: self.pos,
            what,
        }
    }

    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ConvertError> {
        match self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
        {
            Some(end) => {
                let slice = &self.bytes[self.pos..end];
                self.pos = end;
                Ok(slice)
            }
            None => Err(ConvertError::Truncated {
                offset: self.pos,
                needed: n,
                what: what.to_string(),
            }),
        }
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], ConvertError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, ConvertError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, ConvertError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, ConvertError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub fn i32(&mut self, what: &str) -> Result<i32, ConvertError> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }

    /// An i32 that must be a count or size: negative values are corruption.
    pub fn len_i32(&mut self, what: &str) -> Result<usize, ConvertError> {
        let v = self.i32(what)?;
        usize::try_from(v).map_err(|_| self.corrupt(format!("{what} is negative ({v})")))
    }
}
