//! Turning a byte stream into text chunks without splitting a character across two of them.

/// Decodes a stream of byte chunks into UTF-8 text, holding back an incomplete trailing character
/// until its remaining bytes arrive; invalid bytes become U+FFFD.
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The text completed by `data`.
    pub fn push(&mut self, data: &[u8]) -> String {
        self.pending.extend_from_slice(data);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&rest[..valid]).unwrap_or_default());
                    match e.error_len() {
                        None => {
                            rest = &rest[valid..]; // an incomplete character: wait for more
                            break;
                        }
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &rest[valid + n..];
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Whatever is still held back, at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_character_is_delivered_whole() {
        let mut d = Utf8Stream::default();
        let snow = "☃".as_bytes(); // 3 bytes
        assert_eq!(d.push(&[b'a', snow[0]]), "a");
        assert_eq!(d.push(&snow[1..2]), "");
        assert_eq!(d.push(&[snow[2], b'b']), "☃b");
        assert_eq!(d.finish(), "");
    }

    #[test]
    fn invalid_bytes_are_replaced_and_decoding_goes_on() {
        let mut d = Utf8Stream::default();
        assert_eq!(d.push(&[b'x', 0xff, b'y']), "x\u{FFFD}y");
        assert_eq!(d.push(&[0xe2, 0x98]), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
