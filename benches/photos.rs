//! Photo processing and upload measurements (docs/benchmarks.md, "Photos"); not a CI test:
//!
//! ```sh
//! cargo bench --bench photos
//! ```
//!
//! 1. The worker's stages on one 12-megapixel (4000x3000) JPEG, one thread: decode, scale to
//!    1024 and 256, encode (median of 10).
//! 2. Scaling 4000x3000 to 1024x768 with the `image` crate's area reduction, its Triangle and
//!    Lanczos3 filters, and `fast_image_resize` (SIMD convolution; Lanczos3 is what the hub uses).
//! 3. Throughput: whole photos (decode + scale + encode) per second on 1 and 2 threads.
//! 4. Latency of `POST /api/photos` to its 202 (in-process hub on port 0, worker off), for the
//!    12-megapixel JPEG and a 100 KB one: p50, p95, max of 30 sequential uploads.
//!
//! Under `cargo test` (no `--bench` flag) it does nothing.

use std::path::Path;
use std::time::{Duration, Instant};

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::imageops::{self, FilterType as ImageFilter};
use image::{DynamicImage, Rgb, RgbImage};
use socket_bridge::app::Application;
use socket_bridge::auth::{Permission, TokenAuthority};
use socket_bridge::photos::ImageKind;
use socket_bridge::photos::thumbnail::{self, SIZES};
use socket_bridge::settings::Settings;

const SECRET: &str = "bench-secret-0123456789abcdef-0123456789";
const RUNS: usize = 10;
const UPLOADS: usize = 30;

/// A photo-like picture: smooth gradients with noise, so that it compresses like a photo.
fn picture(width: u32, height: u32) -> RgbImage {
    let mut seed: u32 = 0x9E37_79B9;
    RgbImage::from_fn(width, height, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = seed % 24;
        let r = (x * 255 / width + noise).min(255) as u8;
        let g = (y * 255 / height + noise).min(255) as u8;
        let b = (((x + y) / 16) % 200 + noise).min(255) as u8;
        Rgb([r, g, b])
    })
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&picture(width, height))
        .expect("encode");
    out
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn time<T>(f: impl FnMut() -> T) -> Duration {
    let mut f = f;
    median(
        (0..RUNS)
            .map(|_| {
                let started = Instant::now();
                std::hint::black_box(f());
                started.elapsed()
            })
            .collect(),
    )
}

/// One photo through the worker's CPU stages.
fn process(path: &Path) {
    let decoded = thumbnail::decode(path, ImageKind::Jpeg, u64::MAX).expect("decode");
    for scaled in thumbnail::scale(&decoded, &SIZES).expect("scale") {
        std::hint::black_box(thumbnail::encode(&scaled).expect("encode"));
    }
}

fn stages(path: &Path) {
    println!("## stages, one 4000x3000 JPEG, one thread (median of {RUNS})");
    let decode = time(|| thumbnail::decode(path, ImageKind::Jpeg, u64::MAX).expect("decode"));
    let decoded = thumbnail::decode(path, ImageKind::Jpeg, u64::MAX).expect("decode");
    let scale = time(|| thumbnail::scale(&decoded, &SIZES).expect("scale"));
    let scaled = thumbnail::scale(&decoded, &SIZES).expect("scale");
    let encode = time(|| {
        scaled
            .iter()
            .map(|s| thumbnail::encode(s).expect("encode").bytes.len())
            .sum::<usize>()
    });
    println!(
        "decode {}  scale {}  encode {}",
        ms(decode),
        ms(scale),
        ms(encode)
    );
}

fn resizers(bytes: &[u8]) {
    println!("## 4000x3000 -> 1024x768, one thread (median of {RUNS})");
    let source = image::load_from_memory(bytes).expect("decode").into_rgb8();
    let area = time(|| imageops::thumbnail(&source, 1024, 768));
    let triangle = time(|| imageops::resize(&source, 1024, 768, ImageFilter::Triangle));
    let lanczos = time(|| imageops::resize(&source, 1024, 768, ImageFilter::Lanczos3));
    let dynamic = DynamicImage::ImageRgb8(source);
    let mut resizer = Resizer::new();
    let mut fir = |alg: ResizeAlg| {
        time(|| {
            let mut dst = DynamicImage::ImageRgb8(RgbImage::new(1024, 768));
            resizer
                .resize(&dynamic, &mut dst, &ResizeOptions::new().resize_alg(alg))
                .expect("resize");
            dst
        })
    };
    let fir_lanczos = fir(ResizeAlg::Convolution(FilterType::Lanczos3));
    let fir_bilinear = fir(ResizeAlg::Convolution(FilterType::Bilinear));
    println!(
        "image area {}  image Triangle {}  image Lanczos3 {}  fast_image_resize Lanczos3 (used) {}  fast_image_resize Bilinear {}",
        ms(area),
        ms(triangle),
        ms(lanczos),
        ms(fir_lanczos),
        ms(fir_bilinear)
    );
}

fn throughput(path: &Path) {
    println!("## whole photos (decode + scale + encode) per second");
    for threads in [1, 2] {
        let per_thread = 8;
        let started = Instant::now();
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| (0..per_thread).for_each(|_| process(path)));
            }
        });
        let photos = (threads * per_thread) as f64;
        println!(
            "{threads} thread(s): {:.2} photos/s",
            photos / started.elapsed().as_secs_f64()
        );
    }
}

async fn upload_latency(label: &str, base: &str, token: &str, bytes: &[u8]) {
    let http = reqwest::Client::new();
    let mut samples = Vec::with_capacity(UPLOADS);
    for _ in 0..UPLOADS {
        let form = reqwest::multipart::Form::new().part(
            "photo",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("bench.jpg"),
        );
        let started = Instant::now();
        let response = http
            .post(format!("{base}/api/photos"))
            .bearer_auth(token)
            .multipart(form)
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status().as_u16(), 202);
        samples.push(started.elapsed());
    }
    samples.sort();
    println!(
        "{label} ({} KB): p50 {}  p95 {}  max {}",
        bytes.len() / 1024,
        ms(samples[UPLOADS / 2]),
        ms(samples[UPLOADS * 95 / 100]),
        ms(samples[UPLOADS - 1])
    );
}

fn uploads(big: &[u8]) {
    println!("## POST /api/photos to 202 (worker off, {UPLOADS} sequential uploads)");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("dir");
        let mut settings = Settings::new(dir.path());
        settings.listen = "127.0.0.1:0".parse().expect("addr");
        settings.jwt_secret = Some(SECRET.into());
        settings.photos.worker = false;
        let app = Application::build(&settings).await.expect("app");
        let base = format!("http://{}", app.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.run_until_stopped(async move {
            let _ = stopped.await;
        }));
        let token = TokenAuthority::new(SECRET.as_bytes())
            .expect("secret")
            .mint(
                "bench",
                &[Permission::WritePhotos],
                Duration::from_secs(3600),
            )
            .expect("token");
        upload_latency("12 MP JPEG", &base, &token, big).await;
        upload_latency("small JPEG", &base, &token, &jpeg(400, 300)).await;
        let _ = stop.send(());
        let _ = task.await;
    });
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let bytes = jpeg(4000, 3000);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("photo.jpg");
    std::fs::write(&path, &bytes).expect("write");
    println!("# 4000x3000 JPEG, quality 90, {} KB", bytes.len() / 1024);
    stages(&path);
    resizers(&bytes);
    throughput(&path);
    uploads(&bytes);
}
