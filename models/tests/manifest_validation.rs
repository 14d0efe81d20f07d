//! Manifest validation against hostile values: each case edits one field of a real fixture
//! manifest and expects [`Manifest::from_json`] to refuse it with an error naming the file and
//! the field. The untouched fixtures are the known-good baseline.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use models::Manifest;
use serde_json::{Value, json};

const FIXTURES: [&str; 5] = ["wheat-vae", "wheat-gan", "wheat-ddpm", "digits-vae", "digits-ldm"];

fn fixture(name: &str) -> Value {
    let path = format!("{}/../fixtures/bundles/{name}/manifest.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    serde_json::from_str(&text).unwrap()
}

/// Applies `edit` to the fixture `name` and expects the error `"{name}.json: {expected}"`.
fn check(name: &str, edit: impl FnOnce(&mut Value), expected: &str) {
    let mut manifest = fixture(name);
    edit(&mut manifest);
    let source = format!("{name}.json");
    let err = Manifest::from_json(&manifest.to_string(), source.as_str())
        .err()
        .unwrap_or_else(|| panic!("{name}: `{expected}` was accepted"));
    assert_eq!(err.to_string(), format!("{source}: {expected}"));
}

#[test]
fn every_fixture_manifest_validates() {
    for name in FIXTURES {
        let text = fixture(name).to_string();
        let manifest =
            Manifest::from_json(&text, name).unwrap_or_else(|err| panic!("{name}: {err}"));
        manifest.validate(&name.into()).unwrap();
    }
}

#[test]
fn names_are_checked() {
    check(
        "wheat-vae",
        |m| m["schema"]["classes"] = json!([]),
        "schema.classes is empty; expected at least one class",
    );
    check(
        "wheat-vae",
        |m| m["schema"]["classes"][1] = json!(""),
        "schema.classes[1] is empty; expected a name",
    );
    check(
        "wheat-vae",
        |m| m["schema"]["classes"][1] = json!("Marquis"),
        "schema.classes[1] `Marquis` appears twice; expected unique names",
    );
    check(
        "wheat-vae",
        |m| m["schema"]["classes"][0] = json!("x".repeat(2000)),
        "schema.classes[0] is 2000 bytes long; expected at most 1024",
    );
    check(
        "wheat-vae",
        |m| m["transform"]["columns"][2]["name"] = json!("col"),
        "transform.columns[2] `col` appears twice; expected unique names",
    );
    check(
        "wheat-vae",
        |m| m["schema"]["columns"][2]["name"] = json!("yield2"),
        "schema.columns the feature columns (names and kinds, in order) differ from transform.columns",
    );
    check(
        "wheat-vae",
        |m| m["schema"]["columns"][5]["kind"] = json!("categorical"),
        "schema.columns expected exactly one column of kind `label`, named `gen` like schema.label",
    );
    check(
        "wheat-vae",
        |m| m["provenance"]["split"]["holdout"] = json!(1.5),
        "provenance.split is out of range: invalid hold-out fraction 1.5: expected a number in [0, 1), e.g. 0.2 (0: train on every row)",
    );
    check(
        "wheat-vae",
        |m| m["provenance"]["train_class_counts"] = json!([64]),
        "provenance.train_class_counts has 1 entries; expected one per class (2)",
    );
}

#[test]
fn columns_are_checked() {
    check(
        "wheat-vae",
        |m| m["transform"]["columns"][0]["categories"] = json!([]),
        "transform.columns[0].categories is empty; expected at least one category",
    );
    check(
        "wheat-vae",
        |m| m["transform"]["columns"][0]["categories"][1] = json!("1"),
        "transform.columns[0].categories[1] `1` appears twice; expected unique names",
    );
    check(
        "wheat-vae",
        |m| m["transform"]["columns"][0]["mode"] = json!(8),
        "transform.columns[0].mode is 8; expected the index of one of the 8 categories",
    );
    check(
        "wheat-vae",
        |m| {
            m["transform"]["columns"][1]["min"] = json!(30.0);
            m["transform"]["columns"][1]["max"] = json!(2.0);
        },
        "transform.columns[1].min is 30, above max 2; expected min ≤ max",
    );
    check(
        "wheat-vae",
        |m| m["transform"]["columns"][1]["decimals"] = json!(1_000_000_000),
        "transform.columns[1].decimals is 1000000000; expected at most 17",
    );
    check(
        "wheat-vae",
        |m| m["transform"]["columns"][2]["std"] = json!(-1.0),
        "transform.columns[2].std is -1; expected ≥ 0 (0 for a constant column)",
    );
    check(
        "wheat-vae",
        |m| m["transform"]["columns"][2]["std"] = json!(1e-300),
        "transform.columns[2].std is 1e-300: min and max lie 2.69921875e301 standard deviations from the mean, beyond what a 32-bit float holds",
    );
    // JSON has no NaN; a mean that is not a number arrives as null and fails to parse.
    check("wheat-vae", |m| m["transform"]["columns"][1]["mean"] = Value::Null, "invalid manifest");
}

#[test]
fn sizes_and_shapes_are_checked() {
    check(
        "wheat-vae",
        |m| m["graph"]["latent_dim"] = json!(1_000_000_000_000_u64),
        "graph.latent_dim is 1000000000000; expected 1 to 65536",
    );
    check(
        "wheat-vae",
        |m| m["graph"]["inputs"][0]["shape"][1] = json!(17),
        "graph.inputs[0].shape is [N, 17]; expected [N, 16] for vae",
    );
    check(
        "wheat-gan",
        |m| m["graph"]["outputs"][0]["shape"][1] = json!(32),
        "graph.outputs[0].shape is [N, 32]; expected [N, 33]",
    );
    check(
        "wheat-gan",
        |m| m["graph"]["outputs"][0]["shape"][0] = json!(4),
        "graph.outputs[0].shape is [4, 33]; expected [N, 33]",
    );
    check(
        "wheat-gan",
        |m| {
            let extra = m["graph"]["outputs"][0].clone();
            m["graph"]["outputs"].as_array_mut().unwrap().push(extra);
        },
        "graph.outputs has 2 entries; expected exactly one",
    );
    check(
        "wheat-ddpm",
        |m| m["schedule"]["steps"] = json!(1_000_000_000_000_u64),
        "schedule.steps is 1000000000000; expected 1 to 10000",
    );
    check(
        "wheat-ddpm",
        |m| m["schedule"]["max_beta"] = json!(1.5),
        "schedule.max_beta is 1.5; expected a number in (0, 1)",
    );
    check(
        "wheat-ddpm",
        |m| {
            m["schedule"] =
                json!({"rule": "linear", "beta_start": 0.0, "beta_end": 0.02, "steps": 200})
        },
        "schedule.beta_start is 0; expected a number in (0, 1)",
    );
    check(
        "wheat-ddpm",
        |m| m["graph"]["inputs"][1]["shape"] = json!([null, 2]),
        "graph.inputs[1].shape is [N, 2]; expected [N, 1] for ddpm",
    );
    check(
        "digits-vae",
        |m| {
            let shape = json!({"channels": 1, "height": 1_000_000, "width": 1_000_000});
            m["schema"]["image"] = shape.clone();
            m["transform"]["shape"] = shape;
        },
        "transform.shape.height is 1000000; expected 1 to 4096 pixels",
    );
    check(
        "digits-vae",
        |m| m["transform"]["shape"]["channels"] = json!(2),
        "transform.shape.channels is 2; expected 1 (grayscale) or 3 (RGB)",
    );
    check(
        "digits-vae",
        |m| m["schema"]["image"]["height"] = json!(4),
        "schema.image differs from transform.shape (8×8 grayscale)",
    );
    check(
        "digits-vae",
        |m| m["transform"]["pixel_max"] = json!(0.0),
        "transform.pixel_max is 0; expected a number in (0, 65535]",
    );
}

/// Latent diffusion's section, classifier-free guidance and the size preset.
#[test]
fn latent_diffusion_guidance_and_size_are_checked() {
    check("digits-ldm", |m| m["latent"] = Value::Null, "latent is missing; it is required for ldm");
    check(
        "digits-vae",
        |m| m["latent"] = fixture("digits-ldm")["latent"].clone(),
        "latent is only for ldm",
    );
    check(
        "digits-ldm",
        |m| m["latent"]["low"] = json!([0.0]),
        "latent.low has 1 entries; expected latent.dim = 32",
    );
    check(
        "digits-ldm",
        |m| {
            m["latent"]["low"][3] = json!(1.0);
            m["latent"]["high"][3] = json!(1.0);
        },
        "latent.low[3] and latent.high[3] are 1 and 1; expected finite numbers with low < high, at most 10000 apart",
    );
    check(
        "digits-ldm",
        |m| m["latent"]["decoder_sha256"] = json!("00"),
        "latent.decoder_sha256 is not a 64-digit hex SHA-256",
    );
    check(
        "digits-ldm",
        |m| m["latent"]["decoder"]["inputs"][0]["shape"] = json!([null, 33]),
        "latent.decoder.inputs[0].shape is [N, 33]; expected [N, 32] for ldm",
    );
    check(
        "digits-ldm",
        |m| m["latent"]["decoder"]["outputs"][0]["shape"] = json!([null, 1, 8, 9]),
        "latent.decoder.outputs[0].shape is [N, 1, 8, 9]; expected [N, 64] or [N, 1, 8, 8]",
    );
    check(
        "digits-ldm",
        |m| m["graph"]["outputs"][0]["shape"] = json!([null, 64]),
        "graph.outputs[0].shape is [N, 64]; expected [N, 32] (the latent noise prediction) and no graph.latent_dim",
    );
    check(
        "digits-ldm",
        |m| m["schedule"] = Value::Null,
        "schedule a noise schedule is required for ddpm and ldm, and only for them",
    );
    check("digits-ldm", |m| m["guidance"] = json!(1e9), "guidance is 1000000000; expected 0 to 20");
    check("digits-ldm", |m| m["guidance"] = json!(-1.0), "guidance is -1; expected 0 to 20");
    check("wheat-gan", |m| m["guidance"] = json!(1.0), "guidance is only for ddpm and ldm");
    check("wheat-ddpm", |m| m["family"] = json!("ldm"), "family ldm is for images only");
    // The size preset is one of three names; bundles from before presets read as tiny.
    let err = Manifest::from_json(
        &{
            let mut m = fixture("digits-ldm");
            m["size"] = json!("huge");
            m.to_string()
        },
        "digits-ldm.json",
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "digits-ldm.json: invalid manifest");
    let cause = std::error::Error::source(&err).map(ToString::to_string).unwrap_or_default();
    assert!(cause.contains("unknown variant `huge`"), "{cause}");
    let old = Manifest::from_json(&fixture("wheat-vae").to_string(), "wheat-vae.json").unwrap();
    assert_eq!(old.size, models::manifest::SizePreset::Tiny);
}

#[test]
fn a_newer_format_version_is_still_refused_first() {
    check(
        "wheat-vae",
        |m| {
            m["format_version"] = json!(2);
            m["schema"]["classes"] = json!([]);
        },
        "manifest format version 2 is newer than this build understands (at most 1); update synth-edge",
    );
}
