//! Thumbnails, as pure CPU work on bytes: decode (with the EXIF orientation), scale down to a long
//! side, encode as JPEG. Nothing here touches the event log; the worker runs each step on a
//! blocking thread and reports between them.
//!
//! What a thumbnail keeps of the original is its pixels only: it is encoded afresh from them, so
//! EXIF (GPS position, camera, time) and every other metadata block is left behind. Scaling is a
//! Lanczos3 convolution by `fast_image_resize` (SIMD): measured in docs/benchmarks.md ("Photos"),
//! it takes 12-18 ms for 12 megapixels to 1024x768 where the `image` crate's own Lanczos3 takes
//! 171-177 ms and its cheaper area reduction 43 ms.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek};
use std::path::Path;

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, Rgb, RgbImage};

use super::{ImageKind, jpeg};

/// The long sides of the thumbnails made for every photo.
pub const SIZES: [u32; 2] = [256, 1024];
/// JPEG quality of the thumbnails.
const JPEG_QUALITY: u8 = 82;

/// Why a photo could not be made into thumbnails. Its text is what `photo.processing.failed`
/// says.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    /// The file could not be read.
    #[error("the original could not be read: {0}")]
    Read(#[source] std::io::Error),
    /// The JPEG ends before its end-of-image marker.
    #[error("the image cannot be decoded: the JPEG is cut off before its end")]
    Truncated,
    /// The bytes are not a whole image of their format (corrupt or truncated).
    #[error("the image cannot be decoded: {0}")]
    Decode(#[source] image::ImageError),
    /// The image has more pixels than allowed.
    #[error("the image is {width}x{height}, more than the {limit} pixels allowed")]
    TooManyPixels {
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The limit, in pixels.
        limit: u64,
    },
    /// Scaling failed.
    #[error("the image could not be scaled: {0}")]
    Scale(#[source] fast_image_resize::ResizeError),
    /// Encoding failed.
    #[error("the thumbnail could not be encoded: {0}")]
    Encode(#[source] image::ImageError),
}

/// A decoded photo and how it must be turned to be seen upright.
pub struct Decoded {
    image: RgbImage,
    orientation: Orientation,
}

impl Decoded {
    /// Width and height as seen upright.
    pub fn dimensions(&self) -> (u32, u32) {
        let (w, h) = self.image.dimensions();
        if swaps_axes(self.orientation) {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// One scaled-down photo, upright.
pub struct Scaled {
    /// The long side it was made for.
    pub size: u32,
    /// Its pixels.
    pub image: RgbImage,
}

/// One thumbnail, ready to store.
pub struct Encoded {
    /// The long side it was made for.
    pub size: u32,
    /// Its width.
    pub width: u32,
    /// Its height.
    pub height: u32,
    /// The JPEG bytes.
    pub bytes: Vec<u8>,
}

/// A reader of `input` as `kind`, allowed the memory `max_pixels` pixels need.
fn reader<R: BufRead + Seek>(input: R, kind: ImageKind, max_pixels: u64) -> ImageReader<R> {
    let mut reader = ImageReader::with_format(input, kind.format());
    let mut limits = Limits::default();
    // The decoded pixels (at most 8 bytes each) plus the decoders' own buffers.
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    reader.limits(limits);
    reader
}

fn check_pixels(width: u32, height: u32, limit: u64) -> Result<(), ThumbnailError> {
    if u64::from(width) * u64::from(height) > limit {
        return Err(ThumbnailError::TooManyPixels {
            width,
            height,
            limit,
        });
    }
    Ok(())
}

/// Reads only the header of the image at `path`: its stored width and height, refused when
/// they make more than `max_pixels`.
pub fn dimensions(
    path: &Path,
    kind: ImageKind,
    max_pixels: u64,
) -> Result<(u32, u32), ThumbnailError> {
    let file = File::open(path).map_err(ThumbnailError::Read)?;
    let (width, height) = reader(BufReader::new(file), kind, max_pixels)
        .into_dimensions()
        .map_err(ThumbnailError::Decode)?;
    check_pixels(width, height, max_pixels)?;
    Ok((width, height))
}

/// Decodes the image at `path` into 8-bit RGB (transparency laid over white), with its EXIF
/// orientation. The pixel count is checked from the header before anything is decoded, and a
/// JPEG must be whole.
pub fn decode(path: &Path, kind: ImageKind, max_pixels: u64) -> Result<Decoded, ThumbnailError> {
    let bytes = std::fs::read(path).map_err(ThumbnailError::Read)?;
    if kind == ImageKind::Jpeg && !jpeg::is_whole(&bytes) {
        return Err(ThumbnailError::Truncated);
    }
    let mut decoder = reader(Cursor::new(bytes), kind, max_pixels)
        .into_decoder()
        .map_err(ThumbnailError::Decode)?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, max_pixels)?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(ThumbnailError::Decode)?;
    Ok(Decoded {
        image: flatten(image),
        orientation,
    })
}

/// The image as 8-bit RGB; transparent pixels are laid over white.
fn flatten(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let mut out = RgbImage::new(rgba.width(), rgba.height());
    for (dst, src) in out.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = src.0;
        let over_white = |c: u8| {
            let (c, a) = (u16::from(c), u16::from(a));
            ((c * a + 255 * (255 - a) + 127) / 255) as u8
        };
        *dst = Rgb([over_white(r), over_white(g), over_white(b)]);
    }
    out
}

/// Width and height of `(width, height)` scaled so that its long side is `long_side`; never
/// larger than it was.
pub fn fit(width: u32, height: u32, long_side: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= long_side || long == 0 {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(long_side) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(scaled).unwrap_or(long_side).max(1)
    };
    (scale(width), scale(height))
}

/// Scales `decoded` to each long side of `sizes`, largest first (each one from the previous, so
/// only the first reads the whole photo), and turns each upright.
pub fn scale(decoded: &Decoded, sizes: &[u32]) -> Result<Vec<Scaled>, ThumbnailError> {
    let mut sizes = sizes.to_vec();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    let mut out: Vec<Scaled> = Vec::with_capacity(sizes.len());
    for size in sizes {
        let source = out.last().map_or(&decoded.image, |s| &s.image);
        let (width, height) = decoded.image.dimensions();
        let (w, h) = fit(width, height, size);
        let image = if (w, h) == source.dimensions() {
            source.clone()
        } else {
            resize(source, w, h)?
        };
        out.push(Scaled { size, image });
    }
    for scaled in &mut out {
        let mut upright = DynamicImage::ImageRgb8(std::mem::take(&mut scaled.image));
        upright.apply_orientation(decoded.orientation);
        scaled.image = upright.into_rgb8();
    }
    out.reverse();
    Ok(out)
}

/// `source` scaled to `width` x `height` with a Lanczos3 convolution.
fn resize(source: &RgbImage, width: u32, height: u32) -> Result<RgbImage, ThumbnailError> {
    let mut out = RgbImage::new(width, height);
    let lanczos3 = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    Resizer::new()
        .resize(source, &mut out, &lanczos3)
        .map_err(ThumbnailError::Scale)?;
    Ok(out)
}

/// Encodes `scaled` as a JPEG with no metadata.
pub fn encode(scaled: &Scaled) -> Result<Encoded, ThumbnailError> {
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, JPEG_QUALITY)
        .encode_image(&scaled.image)
        .map_err(ThumbnailError::Encode)?;
    Ok(Encoded {
        size: scaled.size,
        width: scaled.image.width(),
        height: scaled.image.height(),
        bytes,
    })
}

fn swaps_axes(orientation: Orientation) -> bool {
    matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The long side is brought down to the size, the ratio kept, and nothing is enlarged.
    #[test]
    fn fit_never_upscales() {
        assert_eq!(fit(4000, 3000, 1024), (1024, 768));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(800, 600, 1024), (800, 600));
        assert_eq!(fit(1024, 10, 1024), (1024, 10));
        assert_eq!(fit(10_000, 1, 256), (256, 1));
        assert_eq!(fit(0, 0, 256), (0, 0));
    }

    /// A transparent pixel becomes white, an opaque one keeps its colour.
    #[test]
    fn transparency_over_white() {
        let mut rgba = image::RgbaImage::new(2, 1);
        rgba.put_pixel(0, 0, image::Rgba([0, 0, 0, 0]));
        rgba.put_pixel(1, 0, image::Rgba([10, 20, 30, 255]));
        let rgb = flatten(DynamicImage::ImageRgba8(rgba));
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(rgb.get_pixel(1, 0).0, [10, 20, 30]);
    }

    /// A rotated photo's thumbnails are upright: a 40x20 image stored with "rotate 90" comes
    /// out 20x40 (and 10x20 at long side 20).
    #[test]
    fn orientation_applied_after_scaling() {
        let decoded = Decoded {
            image: RgbImage::new(40, 20),
            orientation: Orientation::Rotate90,
        };
        assert_eq!(decoded.dimensions(), (20, 40));
        let scaled = scale(&decoded, &[20, 1024]).expect("scaled");
        let dims: Vec<_> = scaled
            .iter()
            .map(|s| (s.size, s.image.dimensions()))
            .collect();
        assert_eq!(dims, vec![(20, (10, 20)), (1024, (20, 40))]);
    }
}
