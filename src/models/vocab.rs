//! Whisper's vocabulary as whisper.cpp stores it: raw token bytes for every id below
//! `<|endoftext|>`. CTranslate2's `vocabulary.txt` holds GPT-2 byte-level BPE strings (one per line,
//! bytes mapped to printable code points, e.g. a space is `Ġ`), which are mapped back to bytes here.

use super::ConvertError;

/// The first special token; whisper.cpp derives every special id from the count of tokens before it.
pub const END_OF_TEXT: &str = "<|endoftext|>";

/// GPT-2's `bytes_to_unicode` inverted: code point -> byte.
fn unicode_to_byte() -> std::collections::HashMap<char, u8> {
    let printable = |b: u32| {
        (b'!' as u32..=b'~' as u32).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut shifted = 0u32;
    for b in 0u32..256 {
        let cp = if printable(b) {
            b
        } else {
            shifted += 1;
            255 + shifted
        };
        map.insert(
            char::from_u32(cp).expect("code points below 512 are valid"),
            b as u8,
        );
    }
    map
}

/// Decodes `vocabulary.txt` into raw token bytes for ids `0..id(<|endoftext|>)`.
pub fn decode_vocabulary(text: &str) -> Result<Vec<Vec<u8>>, ConvertError> {
    let table = unicode_to_byte();
    let mut tokens = Vec::new();
    for (line_no, token) in text.lines().enumerate() {
        if token == END_OF_TEXT {
            return Ok(tokens);
        }
        let bytes = token
            .chars()
            .map(|c| table.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| {
                ConvertError::Vocabulary(format!(
                    "line {}: token {token:?} is not a GPT-2 byte-level string",
                    line_no + 1
                ))
            })?;
        tokens.push(bytes);
    }
    Err(ConvertError::Vocabulary(format!(
        "no {END_OF_TEXT} token found"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_gpt2_byte_level_strings_to_bytes() {
        // "Ġhello" = " hello"; "Ċ" = "\n"; "Ã©" = the two UTF-8 bytes of "é".
        let vocab =
            decode_vocabulary("!\nĠhello\nĊ\nÃ©\n\n<|endoftext|>\n<|startoftranscript|>").unwrap();
        assert_eq!(
            vocab,
            vec![
                b"!".to_vec(),
                b" hello".to_vec(),
                b"\n".to_vec(),
                "é".as_bytes().to_vec(),
                Vec::new(),
            ]
        );
    }

    #[test]
    fn every_byte_has_exactly_one_code_point() {
        let table = unicode_to_byte();
        assert_eq!(table.len(), 256);
        let mut seen: Vec<u8> = table.values().copied().collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn refuses_foreign_characters_and_missing_end() {
        assert!(
            decode_vocabulary("ok\n漢\n<|endoftext|>")
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        assert!(
            decode_vocabulary("a\nb\n")
                .unwrap_err()
                .to_string()
                .contains(END_OF_TEXT)
        );
    }
}
