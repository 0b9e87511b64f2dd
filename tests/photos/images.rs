//! Images made in the test: JPEG, PNG (with transparency) and WebP of any size, a JPEG carrying
//! EXIF (an orientation and a GPS block), and a JPEG cut short.

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageEncoder, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// A `width` x `height` picture: red on its left half, blue on its right half, with a gradient
/// so that it compresses like a photo rather than a flat colour.
pub fn picture(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        let shade = ((x + y) % 64) as u8;
        if x < width / 2 {
            Rgb([220, shade, shade])
        } else {
            Rgb([shade, shade, 220])
        }
    })
}

fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

/// A baseline JPEG.
pub fn jpeg(width: u32, height: u32) -> Vec<u8> {
    encode(
        DynamicImage::ImageRgb8(picture(width, height)),
        ImageFormat::Jpeg,
    )
}

/// A PNG with an alpha channel (its top rows transparent).
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let rgb = picture(width, height);
    let rgba = RgbaImage::from_fn(width, height, |x, y| {
        let [r, g, b] = rgb.get_pixel(x, y).0;
        Rgba([r, g, b, if y < height / 10 { 0 } else { 255 }])
    });
    encode(DynamicImage::ImageRgba8(rgba), ImageFormat::Png)
}

/// A (lossless) WebP.
pub fn webp(width: u32, height: u32) -> Vec<u8> {
    encode(
        DynamicImage::ImageRgb8(picture(width, height)),
        ImageFormat::WebP,
    )
}

/// A JPEG whose EXIF says `orientation` (1-8) and holds a GPS block (latitude ref "N").
pub fn jpeg_with_exif(width: u32, height: u32, orientation: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 90);
    encoder
        .set_exif_metadata(exif(orientation))
        .expect("the JPEG encoder writes EXIF");
    encoder
        .encode_image(&picture(width, height))
        .expect("encode");
    out
}

/// Big-endian TIFF: IFD0 with Orientation (0x0112) and a GPS IFD pointer (0x8825); the GPS IFD
/// with GPSLatitudeRef (0x0001) = "N".
fn exif(orientation: u16) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(b"MM\0\x2a");
    t.extend_from_slice(&8u32.to_be_bytes());
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&0x0112u16.to_be_bytes());
    t.extend_from_slice(&3u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&0x8825u16.to_be_bytes());
    t.extend_from_slice(&4u16.to_be_bytes());
    t.extend_from_slice(&1u32.to_be_bytes());
    t.extend_from_slice(&38u32.to_be_bytes());
    t.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(t.len(), 38);
    t.extend_from_slice(&1u16.to_be_bytes());
    t.extend_from_slice(&0x0001u16.to_be_bytes());
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&2u32.to_be_bytes());
    t.extend_from_slice(b"N\0\0\0");
    t.extend_from_slice(&0u32.to_be_bytes());
    t
}

/// A JPEG cut off in the middle of its compressed data (its header is whole).
pub fn truncated_jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = jpeg(width, height);
    bytes.truncate(bytes.len() / 2);
    bytes
}

/// Whether `bytes` holds an EXIF block (an APP1 `Exif` segment).
pub fn has_exif(bytes: &[u8]) -> bool {
    bytes.windows(6).any(|w| w == b"Exif\0\0")
}
