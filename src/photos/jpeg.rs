//! Whether a JPEG is whole. The `image` crate's JPEG decoder (zune-jpeg) is lenient: a file cut
//! off in its compressed data decodes "successfully", the missing part filled with grey. So
//! before decoding, the hub walks the JPEG's markers and requires that they reach the
//! end-of-image marker (`FF D9`); a cut-off upload is then an ordinary failure.
//!
//! The walk skips every segment by its length (so an EXIF thumbnail's own end marker is not
//! mistaken for the end) and, after each start-of-scan, the compressed data, where a `FF` byte is
//! always followed by `00` (a stuffed byte), a restart marker or a fill `FF`.

/// Whether `bytes` is a JPEG whose markers reach its end-of-image marker.
pub fn is_whole(bytes: &[u8]) -> bool {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return false;
    }
    let mut at = 2;
    loop {
        // `at` is on a marker's FF (possibly after fill FFs).
        let Some(marker) = next_marker(bytes, at) else {
            return false;
        };
        let (marker, position) = marker;
        match marker {
            0xD9 => return true,
            0x01 | 0xD0..=0xD7 => at = position + 2,
            _ => {
                let Some(length) = bytes
                    .get(position + 2..position + 4)
                    .map(|l| usize::from(u16::from_be_bytes([l[0], l[1]])))
                else {
                    return false;
                };
                let end = position + 2 + length;
                if end > bytes.len() {
                    return false;
                }
                at = if marker == 0xDA {
                    match scan_end(bytes, end) {
                        Some(next) => next,
                        None => return false,
                    }
                } else {
                    end
                };
            }
        }
    }
}

/// The marker at `at` (after any fill bytes) and the position of its FF.
fn next_marker(bytes: &[u8], mut at: usize) -> Option<(u8, usize)> {
    if bytes.get(at) != Some(&0xFF) {
        return None;
    }
    while bytes.get(at + 1) == Some(&0xFF) {
        at += 1;
    }
    bytes.get(at + 1).map(|m| (*m, at))
}

/// The position of the first marker after the compressed data starting at `from` (restart
/// markers and stuffed bytes belong to the data), or `None` when the data runs to the end.
fn scan_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while at + 1 < bytes.len() {
        if bytes[at] != 0xFF {
            at += 1;
            continue;
        }
        match bytes[at + 1] {
            0x00 | 0xD0..=0xD7 => at += 2,
            0xFF => at += 1,
            _ => return Some(at),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let image =
            image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .encode_image(&image)
            .expect("encode");
        out
    }

    /// A whole JPEG is whole; every cut of it is not; trailing bytes after the end are allowed.
    #[test]
    fn cut_jpegs_are_not_whole() {
        let whole = jpeg();
        assert!(is_whole(&whole));
        for len in [
            0,
            1,
            2,
            3,
            20,
            whole.len() / 2,
            whole.len() - 2,
            whole.len() - 1,
        ] {
            assert!(!is_whole(&whole[..len]), "cut at {len} of {}", whole.len());
        }
        let mut trailer = whole.clone();
        trailer.extend_from_slice(b"a motion photo's video");
        assert!(is_whole(&trailer));
        assert!(!is_whole(b"\x89PNG\r\n\x1a\n"));
    }

    /// An end marker inside a segment (an EXIF thumbnail) is skipped with the segment.
    #[test]
    fn an_end_marker_inside_a_segment_is_not_the_end() {
        let whole = jpeg();
        let mut with_app1 = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 0xFF, 0xD9, 0xFF, 0xD9];
        with_app1.extend_from_slice(&whole[2..whole.len() / 2]);
        assert!(!is_whole(&with_app1));
    }
}
