//! Latent diffusion end to end: `fit --family ldm` on digits writes a bundle with the latent
//! denoiser and the decoder, the same seed gives the same bytes, the edge samples images from
//! it, the decoder's ONNX agrees with candle, and a damaged or missing decoder is refused.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::{Path, PathBuf};

use edge_runtime::bundle::Bundle;
use edge_runtime::data::DataOptions;
use edge_runtime::engine::EngineKind;
use edge_runtime::sampler::{ClassChoice, Generator, SampleSettings, SamplerKind};
use models::ImageShape;
use models::manifest::{DECODER_FILE, Family, MODEL_FILE, SizePreset};
use models::split::SplitSpec;
use trainer::device::DeviceChoice;
use trainer::fit::{FitSettings, Quiet, fit};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn settings(data: &str, options: DataOptions, out: &Path) -> FitSettings {
    FitSettings {
        data: fixture(data),
        data_options: options,
        family: Family::Ldm,
        size: SizePreset::Tiny,
        split: SplitSpec::new(0, 0.2, 0.25).unwrap(),
        train_seed: 0,
        epochs: Some(3),
        device: DeviceChoice::Cpu,
        out: out.to_owned(),
        replace: false,
        sign_key: None,
    }
}

fn digits() -> DataOptions {
    DataOptions {
        label: Some("digit".into()),
        image_shape: Some(ImageShape { channels: 1, height: 8, width: 8 }),
        ..DataOptions::default()
    }
}

fn sample(bundle: &Bundle, seed: u64, sampler: SamplerKind) -> Vec<f32> {
    let mut generator = Generator::new(bundle, EngineKind::Tract, 1).unwrap();
    let samples = generator
        .generate(&SampleSettings {
            n: 20,
            seed,
            classes: ClassChoice::Balanced,
            steps: Some(10),
            sampler,
            batch: 7,
            guidance: None,
        })
        .unwrap();
    assert_eq!(samples.x.len(), 20 * 64);
    // 10 steps of the guided denoiser (two evaluations each), then the decoder.
    assert_eq!(samples.steps, 2 * 10 + 1);
    samples.x
}

#[test]
fn ldm_fits_exports_and_samples_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let outcome = fit(&settings("digits.csv", digits(), &a), &mut Quiet).unwrap();
    fit(&settings("digits.csv", digits(), &b), &mut Quiet).unwrap();
    for file in [MODEL_FILE, DECODER_FILE] {
        assert_eq!(
            std::fs::read(a.join(file)).unwrap(),
            std::fs::read(b.join(file)).unwrap(),
            "{file} differs between two fits with the same seed"
        );
    }
    let manifest = &outcome.manifest;
    assert_eq!(manifest.family, Family::Ldm);
    assert_eq!(manifest.guidance, Some(trainer::train::GUIDANCE));
    let latent = manifest.latent.as_ref().unwrap();
    assert_eq!(latent.dim, outcome.hyper.widths.latent_dim);
    assert!(latent.low.iter().zip(&latent.high).all(|(low, high)| low < high));
    // Autoencoder epochs, then three times as many for the latent denoiser.
    assert_eq!(outcome.history.len(), 3 + 9);

    let bundle = Bundle::open(&a).unwrap();
    for sampler in [SamplerKind::Ddpm, SamplerKind::Ddim] {
        let x = sample(&bundle, 5, sampler);
        assert!(x.iter().all(|value| value.is_finite() && (-1.0..=1.0).contains(value)));
        assert_eq!(x, sample(&bundle, 5, sampler), "same seed, same samples");
        assert_ne!(x, sample(&bundle, 6, sampler), "another seed, other samples");
    }
}

#[test]
fn ldm_is_for_images_only() {
    let dir = tempfile::tempdir().unwrap();
    let options = DataOptions { label: Some("gen".into()), ..DataOptions::default() };
    let err = fit(&settings("wheat_splitsplit.csv", options, &dir.path().join("w")), &mut Quiet)
        .unwrap_err();
    assert!(err.to_string().contains("latent diffusion (ldm) is for images"), "{err}");
    assert!(!dir.path().join("w").exists());
}

#[test]
fn a_missing_or_changed_decoder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ldm");
    fit(&settings("digits.csv", digits(), &out), &mut Quiet).unwrap();

    // Changed after export: the seal names the file.
    let decoder = out.join(DECODER_FILE);
    let mut bytes = std::fs::read(&decoder).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&decoder, &bytes).unwrap();
    let err = Bundle::open(&out).unwrap_err().to_string();
    assert!(err.contains("decoder.onnx") && err.contains("changed after export"), "{err}");

    // Sealed again over the changed file: the manifest's checksum still catches it.
    edge_runtime::bundle::seal(&out, None).unwrap();
    let err = Bundle::open(&out).unwrap_err().to_string();
    assert!(err.contains("decoder.onnx") && err.contains("the manifest expects"), "{err}");

    // Removed and sealed again: a latent diffusion bundle needs its decoder.
    std::fs::remove_file(&decoder).unwrap();
    edge_runtime::bundle::seal(&out, None).unwrap();
    let err = Bundle::open(&out).unwrap_err().to_string();
    assert!(err.contains("decoder.onnx") && err.contains("is missing"), "{err}");
}
