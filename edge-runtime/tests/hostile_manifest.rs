//! Hostile bundles: a fixture bundle copied to a temporary folder, its manifest or model
//! doctored and the copy sealed again (so that only the checks under test stand in the way).
//! Class names must stay data, never paths; a manifest out of bounds or at odds with itself is
//! refused before use; a model whose output has the wrong shape or is not finite is refused
//! naming the bundle; requests beyond the memory budget are refused before allocating. In every
//! refusal nothing is written. A sweep sets each number of each fixture manifest to extreme
//! values: whatever validation accepts must generate without a panic.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_runtime::bundle::{self, Bundle};
use edge_runtime::engine::EngineKind;
use edge_runtime::memory::MemoryBudget;
use edge_runtime::sampler::{Generator, SampleSettings};
use prost::Message;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tract_onnx::pb::tensor_proto::DataType;
use tract_onnx::pb::tensor_shape_proto::{Dimension, dimension};
use tract_onnx::pb::{
    GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto, type_proto,
};

fn fixture_bundle(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bundles").join(name)
}

fn synth_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-edge"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-edge: {err}"))
}

/// A temporary folder holding `bundle/`, a copy of the fixture `name`'s manifest and model.
fn copy_bundle(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("bundle");
    std::fs::create_dir(&copy).unwrap();
    for file in ["manifest.json", "model.onnx"] {
        std::fs::copy(fixture_bundle(name).join(file), copy.join(file)).unwrap();
    }
    (dir, copy)
}

/// Edits the copy's manifest, points its checksum at the copy's model and seals the copy.
fn doctor(copy: &Path, edit: impl FnOnce(&mut Value)) {
    let path = copy.join("manifest.json");
    let mut manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    let model = std::fs::read(copy.join("model.onnx")).unwrap();
    manifest["model_sha256"] = json!(hex::encode(Sha256::digest(&model)));
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    bundle::seal(copy, None).unwrap();
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// `generate` on `copy` with `extra` must fail without a panic, print every part of
/// `expected`, and leave nothing next to the bundle.
fn check_refused(dir: &Path, copy: &Path, extra: &[&str], expected: &[&str]) {
    let out = dir.join("out.csv");
    let mut args =
        vec!["generate", "--model", copy.to_str().unwrap(), "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let output = synth_edge(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{args:?} should be refused");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "`{stderr}` should contain `{part}`");
    }
    let names: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(names, ["bundle"], "nothing may be written next to the bundle");
}

#[test]
fn class_names_become_folder_names_inside_out_never_paths() {
    let (dir, copy) = copy_bundle("digits-vae");
    let hostile = ["../../x", "/etc/x", "..", ".", "a/b\\c"];
    doctor(&copy, |m| {
        for (idx, class) in hostile.iter().enumerate() {
            m["schema"]["classes"][idx] = json!(class);
        }
    });
    let out = dir.path().join("deep/er/out");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let args = ["generate", "--model", copy.to_str().unwrap(), "--out", out.to_str().unwrap()];
    let output = synth_edge(&[&args[..], &["--n", "40", "--balanced"]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut outside: Vec<PathBuf> = files_under(dir.path())
        .into_iter()
        .filter(|path| !path.starts_with(&out) && !path.starts_with(&copy))
        .collect();
    outside.sort();
    assert_eq!(outside, Vec::<PathBuf>::new(), "files written outside --out");
    let mut folders: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let hash = |text: &str| hex::encode(Sha256::digest(text.as_bytes()))[..8].to_owned();
    let mut expected = vec![
        format!("_.._.._x-{}", hash("../../x")),
        format!("_etc_x-{}", hash("/etc/x")),
        format!("_..-{}", hash("..")),
        format!("_.-{}", hash(".")),
        format!("a_b_c-{}", hash("a/b\\c")),
    ];
    expected.extend(["5", "6", "7", "8", "9"].map(str::to_owned));
    expected.sort();
    assert_eq!(folders, expected);
    for folder in &folders {
        assert_eq!(std::fs::read_dir(out.join(folder)).unwrap().count(), 4, "{folder}");
    }

    // As data, the names are kept whole: a pixel CSV carries them in its label column.
    let csv = dir.path().join("samples.csv");
    let args = ["generate", "--model", copy.to_str().unwrap(), "--out", csv.to_str().unwrap()];
    let output = synth_edge(&[&args[..], &["--n", "10", "--balanced"]].concat());
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let mut reader = csv::Reader::from_path(&csv).unwrap();
    let labels: std::collections::BTreeSet<String> = reader
        .records()
        .map(|record| record.unwrap().iter().next_back().unwrap_or_default().to_owned())
        .collect();
    assert!(hostile.iter().all(|class| labels.contains(*class)), "{labels:?}");
}

#[test]
fn manifests_out_of_bounds_are_refused_naming_the_field() {
    type Edit = fn(&mut Value);
    let cases: [(&str, Edit, &str); 16] = [
        ("wheat-vae", |m| m["schema"]["classes"][1] = json!(""), "schema.classes[1] is empty"),
        (
            "wheat-vae",
            |m| m["schema"]["classes"][1] = json!("Marquis"),
            "schema.classes[1] `Marquis` appears twice",
        ),
        ("wheat-vae", |m| m["schema"]["classes"] = json!([]), "schema.classes is empty"),
        (
            "wheat-vae",
            |m| m["transform"]["columns"][3]["categories"] = json!([]),
            "transform.columns[3].categories is empty",
        ),
        (
            "wheat-vae",
            |m| m["transform"]["columns"][1]["min"] = json!(1e9),
            "transform.columns[1].min is 1000000000, above max 20",
        ),
        (
            "wheat-vae",
            |m| m["transform"]["columns"][1]["decimals"] = json!(1_000_000_000),
            "transform.columns[1].decimals is 1000000000; expected at most 17",
        ),
        ("wheat-vae", |m| m["transform"]["columns"][2]["std"] = Value::Null, "invalid manifest"),
        (
            "wheat-vae",
            |m| m["graph"]["latent_dim"] = json!(1_000_000_000_000_u64),
            "graph.latent_dim is 1000000000000; expected 1 to 65536",
        ),
        (
            "wheat-ddpm",
            |m| m["schedule"]["steps"] = json!(1_000_000_000_000_u64),
            "schedule.steps is 1000000000000; expected 1 to 10000",
        ),
        (
            "wheat-gan",
            |m| {
                let categories = &mut m["transform"]["columns"][0]["categories"];
                categories.as_array_mut().unwrap().push(json!("9"));
            },
            "graph.outputs[0].shape is [N, 33]; expected [N, 34]",
        ),
        (
            "wheat-gan",
            |m| m["transform"]["columns"][0]["mode"] = json!(99),
            "transform.columns[0].mode is 99",
        ),
        (
            "wheat-gan",
            |m| m["provenance"]["train_class_counts"] = json!([1, 2, 3]),
            "provenance.train_class_counts has 3 entries; expected one per class (2)",
        ),
        (
            "digits-vae",
            |m| {
                let shape = json!({"channels": 1, "height": 1_000_000, "width": 1_000_000});
                m["schema"]["image"] = shape.clone();
                m["transform"]["shape"] = shape;
            },
            "transform.shape.height is 1000000; expected 1 to 4096 pixels",
        ),
        (
            "digits-vae",
            |m| m["schema"]["columns"] = json!([{"name": "digit", "kind": "label"}]),
            "schema.columns has 1 entries; expected none (an image folder) or 64 pixel columns",
        ),
        (
            "wheat-ddpm",
            |m| m["schedule"]["max_beta"] = json!(1.0),
            "schedule.max_beta is 1; expected a number in (0, 1)",
        ),
        (
            "wheat-vae",
            |m| m["schema"]["columns"][0]["name"] = json!("col"),
            "schema.columns[1] `col` appears twice",
        ),
    ];
    for (fixture, edit, expected) in cases {
        let (dir, copy) = copy_bundle(fixture);
        doctor(&copy, edit);
        let manifest = copy.join("manifest.json");
        check_refused(
            dir.path(),
            &copy,
            &["--n", "10"],
            &[&format!("{}: {expected}", manifest.display())],
        );
    }
}

/// An ONNX value of `f32` with the symbolic batch `N` first.
fn value_info(name: &str, dims: &[usize]) -> ValueInfoProto {
    let mut shape = vec![Dimension {
        value: Some(dimension::Value::DimParam("N".to_owned())),
        ..Dimension::default()
    }];
    shape.extend(dims.iter().map(|&dim| Dimension {
        value: Some(dimension::Value::DimValue(dim as i64)),
        ..Dimension::default()
    }));
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto { dim: shape }),
            })),
            ..TypeProto::default()
        }),
        ..ValueInfoProto::default()
    }
}

fn tensor(name: &str, dims: &[usize], data_type: DataType, raw_data: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.to_owned(),
        dims: dims.iter().map(|&dim| dim as i64).collect(),
        data_type: data_type as i32,
        raw_data,
        ..TensorProto::default()
    }
}

fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> TensorProto {
    tensor(name, dims, DataType::Float, values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        op_type: op.to_owned(),
        input: inputs.iter().map(|&input| input.to_owned()).collect(),
        output: vec![output.to_owned()],
        name: output.to_owned(),
        ..NodeProto::default()
    }
}

/// What a doctored model computes from the inputs of a fixture's graph (`z[N, 32]` and
/// `y[N, 2]` for wheat-gan; `x_t[N, 33]`, `t[N, 1]` and `y[N, 2]` for wheat-ddpm); it always
/// declares the output `[N, 33]` that the fixture's manifest expects.
enum Doctored {
    /// The sum of each input times a zero matrix, plus the bias (33 wide is honest).
    Affine { width: usize, bias: Vec<f32> },
    /// That output of width 33 tiled `repeats` times along the features.
    Tiled { repeats: i64 },
}

fn doctored_model(kind: &Doctored, inputs: &[(String, usize)], output: &str) -> Vec<u8> {
    let (width, bias) = match kind {
        Doctored::Affine { width, bias } => (*width, bias.clone()),
        Doctored::Tiled { .. } => (33, vec![0.5; 33]),
    };
    let mut initializer = vec![f32_tensor("b", &[width], &bias)];
    let mut nodes = Vec::new();
    let mut sum = "b".to_owned();
    for (idx, (name, input_width)) in inputs.iter().enumerate() {
        let (weight, product, next) = (format!("W{idx}"), format!("m{idx}"), format!("s{idx}"));
        initializer.push(f32_tensor(
            &weight,
            &[*input_width, width],
            &vec![0.0; input_width * width],
        ));
        nodes.push(node("MatMul", &[name, &weight], &product));
        nodes.push(node("Add", &[&sum, &product], &next));
        sum = next;
    }
    if let Doctored::Tiled { repeats } = kind {
        let raw = [1_i64, *repeats].iter().flat_map(|v| v.to_le_bytes()).collect();
        initializer.push(tensor("repeats", &[2], DataType::Int64, raw));
        nodes.push(node("Tile", &[&sum, "repeats"], output));
    } else {
        nodes.push(node("Identity", &[&sum], output));
    }
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: 17 }],
        producer_name: "hostile_manifest test".to_owned(),
        graph: Some(GraphProto {
            name: "doctored".to_owned(),
            node: nodes,
            initializer,
            input: inputs.iter().map(|(name, width)| value_info(name, &[*width])).collect(),
            output: vec![value_info(output, &[33])],
            ..GraphProto::default()
        }),
        ..ModelProto::default()
    }
    .encode_to_vec()
}

/// A copy of the tabular fixture `name` whose model is `kind`, sealed.
fn doctored_bundle(name: &str, kind: &Doctored) -> (tempfile::TempDir, PathBuf) {
    let (dir, copy) = copy_bundle(name);
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(copy.join("manifest.json")).unwrap())
            .unwrap();
    let graph = &manifest["graph"];
    let inputs: Vec<(String, usize)> = graph["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| {
            (
                input["name"].as_str().unwrap().to_owned(),
                input["shape"][1].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let output = graph["outputs"][0]["name"].as_str().unwrap();
    std::fs::write(copy.join("model.onnx"), doctored_model(kind, &inputs, output)).unwrap();
    doctor(&copy, |_| {});
    (dir, copy)
}

fn engines() -> Vec<&'static str> {
    let mut engines = vec!["tract"];
    if cfg!(feature = "ort") && std::env::var_os("ORT_DYLIB_PATH").is_some() {
        engines.push("ort");
    } else {
        eprintln!("note: ORT_DYLIB_PATH is not set or ort not built: only tract is checked");
    }
    engines
}

#[test]
fn an_honest_doctored_model_generates() {
    // The baseline for the cases below: the same graph with a finite bias of width 33 runs.
    for (fixture, engine) in ["wheat-gan", "wheat-ddpm"]
        .into_iter()
        .flat_map(|f| engines().into_iter().map(move |e| (f, e)))
    {
        let (dir, copy) =
            doctored_bundle(fixture, &Doctored::Affine { width: 33, bias: vec![0.25; 33] });
        let out = dir.path().join(format!("{engine}.csv"));
        let output = synth_edge(&[
            "generate",
            "--model",
            copy.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--n",
            "8",
            "--steps",
            "3",
            "--engine",
            engine,
        ]);
        assert!(output.status.success(), "{engine}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 9);
    }
}

#[test]
fn model_outputs_of_the_wrong_shape_or_not_finite_are_refused() {
    let mut nan_bias = vec![0.0; 33];
    nan_bias[5] = f32::NAN;
    let mut inf_bias = vec![0.0; 33];
    inf_bias[32] = f32::NEG_INFINITY;
    // tract refuses a wrong shape when it loads the graph (from the shape it infers), ONNX
    // Runtime when the sampler checks what the graph returned.
    let refused_at_load = |width: usize| {
        format!(
            "/model.onnx: the graph's first output has the inferred shape N,{width}, but the manifest expects [N, 33]; refusing to run it"
        )
    };
    let refused_at_run = |width: usize| {
        format!(
            ": the model's output `x` has shape [3, {width}] ({} values) for a batch of 3, but the manifest declares [3, 33]; refusing its samples",
            3 * width
        )
    };
    let not_finite = |what: &str| {
        format!(": the model's output `x` is {what}; expected finite numbers, refusing its samples")
    };
    let nan = not_finite("NaN for sample 0, value 5");
    let inf = not_finite("-inf for sample 0, value 32");
    let tiled = format!(
        "/model.onnx: graph node `x` uses the operator `Tile`, which synth-train never writes (it writes {}); the graph was not written by synth-train, refusing it before any engine loads it",
        models::manifest::EXPORTED_OPS.join(", ")
    );
    let ddpm_nan = ": the model's output `eps` is NaN for sample 0, value 5 at diffusion step t = 199; expected finite numbers, refusing its samples".to_owned();
    let cases = [
        ("wheat-gan", Doctored::Affine { width: 33, bias: nan_bias.clone() }, [nan.clone(), nan]),
        ("wheat-gan", Doctored::Affine { width: 33, bias: inf_bias }, [inf.clone(), inf]),
        (
            "wheat-ddpm",
            Doctored::Affine { width: 33, bias: nan_bias },
            [ddpm_nan.clone(), ddpm_nan],
        ),
        (
            "wheat-gan",
            Doctored::Affine { width: 32, bias: vec![0.0; 32] },
            [refused_at_load(32), refused_at_run(32)],
        ),
        (
            "wheat-gan",
            Doctored::Affine { width: 34, bias: vec![0.0; 34] },
            [refused_at_load(34), refused_at_run(34)],
        ),
        (
            "wheat-gan",
            Doctored::Tiled { repeats: 100_000_000_000 },
            // Refused when the bundle opens, before either engine sees the graph.
            [tiled.clone(), tiled],
        ),
    ];
    for (fixture, kind, [tract_detail, ort_detail]) in &cases {
        for engine in engines() {
            let detail = if engine == "tract" { tract_detail } else { ort_detail };
            let (dir, copy) = doctored_bundle(fixture, kind);
            let stderr = {
                let out = dir.path().join("out.csv");
                let args = [
                    "generate",
                    "--model",
                    copy.to_str().unwrap(),
                    "--out",
                    out.to_str().unwrap(),
                    "--n",
                    "3",
                    "--engine",
                    engine,
                ];
                let output = synth_edge(&args);
                assert!(!output.status.success(), "{engine} {detail}: should be refused");
                String::from_utf8_lossy(&output.stderr).into_owned()
            };
            assert!(!stderr.contains("panicked"), "{stderr}");
            let expected = format!("error: {}{detail}", copy.display());
            assert!(stderr.contains(&expected), "{engine}: `{stderr}` should contain `{expected}`");
            let names: Vec<_> =
                std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
            assert_eq!(names, ["bundle"], "{engine} {detail}: nothing may be written");
        }
    }
}

#[test]
fn requests_beyond_the_memory_budget_are_refused_before_allocating() {
    let opened = Bundle::open(&fixture_bundle("wheat-ddpm")).unwrap();
    let mut generator = Generator::new(&opened, EngineKind::Tract, 1).unwrap();
    let settings = SampleSettings { n: 1_000_000_000_000, batch: 256, ..SampleSettings::default() };
    let err = generator.generate(&settings).err().map(|err| err.to_string()).unwrap_or_default();
    assert!(
        err.starts_with("generating 1000000000000 samples of 33 encoded values needs"),
        "{err}"
    );
    assert!(err.ends_with("lower the number of samples"), "{err}");

    // 4096 samples per call: x_t (33), t (1), y (2) and eps (33) of 4 bytes: 1104 KiB.
    let mut generator = generator.with_memory_budget(MemoryBudget { bytes: 1 << 20 });
    let run = |generator: &mut Generator, n: usize, batch: usize| {
        let settings = SampleSettings { n, batch, steps: Some(2), ..SampleSettings::default() };
        generator.generate(&settings).map(|samples| samples.x.len()).map_err(|err| err.to_string())
    };
    assert_eq!(
        run(&mut generator, 4096, 4096),
        Err("one engine call on 4096 samples needs 2 MiB, more than the memory budget of 1 MiB (half the memory available); lower the samples per engine call".to_owned())
    );
    // All 4096 samples: label, y (2), x, eps and noise (3 × 33) of 4 bytes: 1632 KiB.
    assert_eq!(
        run(&mut generator, 4096, 1024),
        Err("generating 4096 samples of 33 encoded values needs 2 MiB, more than the memory budget of 1 MiB (half the memory available); lower the number of samples".to_owned())
    );
    assert_eq!(run(&mut generator, 2048, 1024), Ok(2048 * 33));
}

/// Every number of a manifest, by its JSON pointer.
fn number_pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    match value {
        Value::Number(_) => out.push(at.to_owned()),
        Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                number_pointers(item, &format!("{at}/{idx}"), out);
            }
        }
        Value::Object(fields) => {
            for (key, item) in fields {
                number_pointers(item, &format!("{at}/{key}"), out);
            }
        }
        _ => {}
    }
}

/// Each number of each fixture's manifest set to extreme values, one at a time: whatever the
/// validation accepts must then generate and be written without a panic or an abort (an abort
/// ends this test's process, which fails it too).
#[test]
fn any_manifest_that_validates_generates_without_panicking() {
    let extremes = [
        json!(0),
        json!(-1),
        json!(1_000_000_000_000_u64),
        json!(1e300),
        json!(-1e300),
        json!(0.5),
    ];
    let (dir, copy) = copy_bundle("wheat-gan");
    let mut accepted = 0;
    let mut refused = 0;
    for fixture in ["wheat-gan", "wheat-ddpm", "digits-vae"] {
        let text = std::fs::read_to_string(fixture_bundle(fixture).join("manifest.json")).unwrap();
        let original: Value = serde_json::from_str(&text).unwrap();
        std::fs::copy(fixture_bundle(fixture).join("model.onnx"), copy.join("model.onnx")).unwrap();
        let mut pointers = Vec::new();
        number_pointers(&original, "", &mut pointers);
        for pointer in pointers.iter().filter(|pointer| !pointer.starts_with("/format_version")) {
            for extreme in &extremes {
                let mut manifest = original.clone();
                *manifest.pointer_mut(pointer).unwrap() = extreme.clone();
                let case = format!("{fixture} {pointer} = {extreme}");
                if models::Manifest::from_json(&manifest.to_string(), "m.json").is_err() {
                    refused += 1;
                    continue;
                }
                accepted += 1;
                std::fs::write(copy.join("manifest.json"), manifest.to_string()).unwrap();
                bundle::seal(&copy, None).unwrap();
                let outcome = std::panic::catch_unwind(|| {
                    let opened = Bundle::open(&copy)?;
                    let mut generator = Generator::new(&opened, EngineKind::Tract, 1)?;
                    let settings =
                        SampleSettings { n: 12, steps: Some(2), ..SampleSettings::default() };
                    let samples = generator.generate(&settings)?;
                    let out = dir.path().join("out");
                    edge_runtime::output::write_samples(&opened.manifest, &samples, &out)?;
                    let _ = std::fs::remove_dir_all(&out);
                    let _ = std::fs::remove_file(&out);
                    Ok::<_, edge_runtime::error::Error>(())
                });
                assert!(outcome.is_ok(), "{case}: panicked");
            }
        }
    }
    // Both happen: the test would prove nothing if the validation refused (or took) everything.
    assert!(accepted > 50 && refused > 50, "accepted {accepted}, refused {refused}");
}
