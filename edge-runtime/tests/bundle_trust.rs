//! The bundle trust boundary: a bundle is used only when its folder holds exactly the files its
//! seal lists, unchanged; with `--trust`, only when a trusted key signed it; and a graph whose
//! constants declare more memory than the budget is refused before any engine sees it. Every
//! refusal is a clear error naming the bundle, a non-zero exit, and no output.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use edge_runtime::bundle::{Bundle, Trust, seal};
use edge_runtime::engine::tract::TractEngine;
use edge_runtime::engine::{Engine, TensorIn};
use edge_runtime::keys::{PublicKey, SecretKey};
use prost::Message;
use sha2::{Digest, Sha256};
use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn synth_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-edge"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-edge: {err}"))
}

/// A copy of a fixture bundle, every file of it (its seal included), in `root/bundle`.
fn copy_bundle(root: &Path, name: &str) -> PathBuf {
    let copy = root.join("bundle");
    fs::create_dir(&copy).unwrap();
    for entry in fs::read_dir(fixture("bundles").join(name)).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    copy
}

/// A key pair written to `root/NAME.key` and `root/NAME.pub`.
fn key_pair(root: &Path, name: &str) -> (SecretKey, PathBuf) {
    let key = SecretKey::generate().unwrap();
    key.write(&root.join(format!("{name}.key"))).unwrap();
    let public = root.join(format!("{name}.pub"));
    key.public().write(&public).unwrap();
    (key, public)
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

/// `synth-edge generate` of 5 samples from `bundle` into `root/out.csv`, with `extra` flags.
fn generate(root: &Path, bundle: &Path, extra: &[&str]) -> (Output, PathBuf) {
    let out = root.join("out.csv");
    let mut args = vec!["generate", "--model", path_str(bundle), "--out", path_str(&out)];
    args.extend_from_slice(&["--n", "5"]);
    args.extend_from_slice(extra);
    (synth_edge(&args), out)
}

fn check_accepted(root: &Path, bundle: &Path, extra: &[&str]) {
    let (output, out) = generate(root, bundle, extra);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{extra:?}: {stderr}");
    let text = fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), 6, "a header and five rows: {text}");
    fs::remove_file(out).unwrap();
}

/// `generate` refuses `bundle` with a message holding every part of `expected` (the bundle's
/// folder among them), exits non-zero without panicking, and writes nothing.
fn check_refused(root: &Path, bundle: &Path, extra: &[&str], expected: &[&str]) {
    let (output, out) = generate(root, bundle, extra);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "expected a refusal: {stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(path_str(bundle)), "`{stderr}` should name the bundle");
    for part in expected {
        assert!(stderr.contains(part), "`{stderr}` should contain `{part}`");
    }
    assert!(!out.exists(), "no output may be written");
}

fn edit_json(path: &Path, edit: impl Fn(&mut serde_json::Value)) {
    let mut value: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap();
    edit(&mut value);
    fs::write(path, serde_json::to_string_pretty(&value).unwrap()).unwrap();
}

#[test]
fn every_committed_fixture_bundle_is_sealed_and_opens() {
    for name in ["wheat-vae", "wheat-gan", "wheat-ddpm", "digits-vae", "digits-ldm"] {
        let bundle = Bundle::open(&fixture("bundles").join(name)).unwrap();
        assert_eq!(bundle.digest.len(), 64, "{name}");
        assert_eq!(bundle.signer, None, "{name}: the fixtures are unsigned");
    }
}

/// What a case does, how, and what the refusal must say.
type Case<Edit> = (&'static str, Edit, &'static [&'static str]);

#[test]
fn a_bundle_changed_after_export_is_refused() {
    let cases: [Case<fn(&Path)>; 6] = [
        (
            "class renamed",
            |dir| {
                edit_json(&dir.join("manifest.json"), |m| {
                    m["schema"]["classes"][0] = "Marquiz".into()
                })
            },
            &["manifest.json", "the seal expects", "changed after export"],
        ),
        (
            "decimals changed",
            |dir| {
                edit_json(&dir.join("manifest.json"), |m| {
                    m["transform"]["columns"][1]["decimals"] = 3.into();
                });
            },
            &["manifest.json", "changed after export"],
        ),
        (
            "model replaced, same size",
            |dir| {
                let path = dir.join("model.onnx");
                let mut bytes = fs::read(&path).unwrap();
                let last = bytes.len() - 1;
                bytes[last] ^= 0x01;
                fs::write(&path, bytes).unwrap();
            },
            &["model.onnx", "SHA-256 is", "the seal expects"],
        ),
        (
            "file added",
            |dir| fs::write(dir.join("notes.txt"), "hello").unwrap(),
            &["notes.txt", "is not listed in the bundle's seal"],
        ),
        (
            "hidden file added",
            |dir| fs::write(dir.join(".DS_Store"), "").unwrap(),
            &[".DS_Store", "is not a bundle file"],
        ),
        (
            "model removed",
            |dir| fs::remove_file(dir.join("model.onnx")).unwrap(),
            &["model.onnx", "is listed in the bundle's seal but missing"],
        ),
    ];
    for (what, tamper, expected) in cases {
        let root = tempfile::tempdir().unwrap();
        let bundle = copy_bundle(root.path(), "wheat-vae");
        check_accepted(root.path(), &bundle, &[]);
        tamper(&bundle);
        println!("{what}");
        check_refused(root.path(), &bundle, &[], expected);
    }
}

#[test]
fn a_replaced_weights_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(root.path(), "wheat-vae");
    fs::write(bundle.join("weights.safetensors"), vec![7_u8; 4096]).unwrap();
    seal(&bundle, None).unwrap();
    check_accepted(root.path(), &bundle, &[]);
    fs::write(bundle.join("weights.safetensors"), vec![8_u8; 4096]).unwrap();
    check_refused(root.path(), &bundle, &[], &["weights.safetensors", "the seal expects"]);
    fs::write(bundle.join("weights.safetensors"), vec![7_u8; 4097]).unwrap();
    check_refused(
        root.path(),
        &bundle,
        &[],
        &["weights.safetensors", "is 4097 bytes, but the seal says 4096"],
    );
}

#[cfg(unix)]
#[test]
fn links_and_folders_in_a_bundle_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(root.path(), "wheat-vae");
    // A link to an identical manifest: the bytes would pass, the link does not.
    let outside = root.path().join("manifest-elsewhere.json");
    fs::rename(bundle.join("manifest.json"), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, bundle.join("manifest.json")).unwrap();
    check_refused(root.path(), &bundle, &[], &["manifest.json", "is not a plain file"]);
    fs::remove_file(bundle.join("manifest.json")).unwrap();
    fs::rename(&outside, bundle.join("manifest.json")).unwrap();
    check_accepted(root.path(), &bundle, &[]);
    std::os::unix::fs::symlink("/etc/passwd", bundle.join("extra")).unwrap();
    check_refused(root.path(), &bundle, &[], &["extra", "is not a plain file"]);
    fs::remove_file(bundle.join("extra")).unwrap();
    fs::create_dir(bundle.join("sub")).unwrap();
    check_refused(root.path(), &bundle, &[], &["sub", "is not a plain file"]);
    fs::remove_dir(bundle.join("sub")).unwrap();
    // A named pipe is refused without being opened (opening one would wait for a writer).
    let fifo = bundle.join("pipe");
    if Command::new("mkfifo").arg(&fifo).status().is_ok_and(|status| status.success()) {
        check_refused(root.path(), &bundle, &[], &["pipe", "is not a plain file"]);
        fs::remove_file(&fifo).unwrap();
    }
    // The seal cannot be a link either.
    let seal_elsewhere = root.path().join("seal-elsewhere.json");
    fs::rename(bundle.join("seal.json"), &seal_elsewhere).unwrap();
    std::os::unix::fs::symlink(&seal_elsewhere, bundle.join("seal.json")).unwrap();
    check_refused(root.path(), &bundle, &[], &["seal.json", "is not a plain file"]);
    fs::remove_file(bundle.join("seal.json")).unwrap();
    fs::rename(&seal_elsewhere, bundle.join("seal.json")).unwrap();
    check_accepted(root.path(), &bundle, &[]);
    // Nor is a link ever sealed.
    std::os::unix::fs::symlink("/etc/passwd", bundle.join("passwd")).unwrap();
    let err = seal(&bundle, None).unwrap_err();
    assert!(err.to_string().contains("is not a plain file"), "{err}");
}

#[test]
fn a_bundle_without_a_seal_is_refused_with_the_way_to_seal_it() {
    let root = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(root.path(), "wheat-vae");
    fs::remove_file(bundle.join("seal.json")).unwrap();
    check_refused(
        root.path(),
        &bundle,
        &[],
        &["has no seal.json", "older than bundle seals", "synth-train seal"],
    );
}

#[test]
fn an_edited_seal_is_refused() {
    let cases: [Case<fn(&mut serde_json::Value)>; 7] = [
        (
            "a malformed signer",
            |s| s["signature"] = serde_json::json!({"public_key": "zz", "signature": "00"}),
            &["seal.json", "signature.public_key: expected 64 hex digits"],
        ),
        (
            "the seal listing itself",
            |s| s["files"][0]["name"] = "seal.json".into(),
            &["lists `seal.json`, which cannot be a bundle file"],
        ),
        (
            "digest changed",
            |s| s["digest"] = "0".repeat(64).into(),
            &["seal.json", "its digest is 0000", "the seal was edited"],
        ),
        (
            "listed hash recomputed for an edit",
            |s| s["files"][0]["sha256"] = "f".repeat(64).into(),
            &["the seal expects ffff"],
        ),
        (
            "a path as a name",
            |s| s["files"][0]["name"] = "../manifest.json".into(),
            &["seal.json", "lists `../manifest.json`, which cannot be a bundle file"],
        ),
        ("an unknown field", |s| s["trusted"] = true.into(), &["seal.json", "not a valid seal"]),
        ("a newer format", |s| s["format"] = "fieldsynth-bundle-seal-v9".into(), &["newer"]),
    ];
    for (what, edit, expected) in cases {
        let root = tempfile::tempdir().unwrap();
        let bundle = copy_bundle(root.path(), "wheat-vae");
        edit_json(&bundle.join("seal.json"), edit);
        println!("{what}");
        check_refused(root.path(), &bundle, &[], expected);
    }
}

#[test]
fn trust_accepts_only_bundles_signed_by_a_trusted_key() {
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("keys");
    fs::create_dir(&keys).unwrap();
    let (old_key, old_pub) = key_pair(&keys, "old");
    let (new_key, new_pub) = key_pair(&keys, "new");
    let (_, stranger_pub) = key_pair(&keys, "stranger");
    let trust_old = ["--trust", path_str(&old_pub)];
    let bundle = copy_bundle(root.path(), "wheat-vae");

    // Unsigned: fine without --trust, refused with it.
    check_accepted(root.path(), &bundle, &[]);
    let old_fingerprint = old_key.public().fingerprint();
    check_refused(root.path(), &bundle, &trust_old, &["is not signed", &old_fingerprint]);

    // Signed by the old key.
    seal(&bundle, Some(&old_key)).unwrap();
    check_accepted(root.path(), &bundle, &trust_old);
    check_accepted(root.path(), &bundle, &[]);
    let opened = Bundle::open_trusted(&bundle, &[old_key.public()]).unwrap();
    assert_eq!(opened.signer, Some(old_key.public()));
    check_refused(
        root.path(),
        &bundle,
        &["--trust", path_str(&stranger_pub)],
        &["is signed by key", &old_fingerprint, "which is not trusted"],
    );

    // Rotation: re-signed with the new key, a fleet trusting both accepts it, one trusting only
    // the old key does not.
    seal(&bundle, Some(&new_key)).unwrap();
    let both = ["--trust", path_str(&old_pub), "--trust", path_str(&new_pub)];
    check_accepted(root.path(), &bundle, &both);
    check_refused(
        root.path(),
        &bundle,
        &trust_old,
        &[&new_key.public().fingerprint(), "which is not trusted"],
    );

    // The secret half given as a public key is a clear error, not a trust.
    let (output, out) =
        generate(root.path(), &bundle, &["--trust", path_str(&keys.join("new.key"))]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("new.key") && stderr.contains("other half"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn a_changed_signature_or_a_changed_signed_bundle_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let (key, public) = key_pair(root.path(), "trainer");
    let fingerprint = key.public().fingerprint();
    let trust = ["--trust", path_str(&public)];
    let bundle = copy_bundle(root.path(), "wheat-vae");
    seal(&bundle, Some(&key)).unwrap();
    let signed = fs::read_to_string(bundle.join("seal.json")).unwrap();

    edit_json(&bundle.join("seal.json"), |s| {
        let signature = s["signature"]["signature"].as_str().unwrap_or_default().to_owned();
        let flipped = if signature.starts_with('0') { "1" } else { "0" };
        s["signature"]["signature"] = format!("{flipped}{}", &signature[1..]).into();
    });
    check_refused(
        root.path(),
        &bundle,
        &trust,
        &["signature by key", &fingerprint, "does not verify"],
    );
    // A bad signature is refused even where no key is required.
    check_refused(root.path(), &bundle, &[], &["does not verify"]);

    // The manifest edited and the seal's list and digest recomputed, the signature kept.
    fs::write(bundle.join("seal.json"), &signed).unwrap();
    edit_json(&bundle.join("manifest.json"), |m| m["schema"]["classes"][0] = "x".into());
    let resealed = seal(&bundle, None).unwrap();
    edit_json(&bundle.join("seal.json"), |s| {
        let original: serde_json::Value = serde_json::from_str(&signed).unwrap();
        s["signature"] = original["signature"].clone();
    });
    assert_ne!(
        resealed.digest,
        serde_json::from_str::<serde_json::Value>(&signed).unwrap()["digest"]
    );
    check_refused(root.path(), &bundle, &trust, &["does not verify"]);

    // Resealed unsigned after the edit: only an intact seal, which --trust does not accept.
    seal(&bundle, None).unwrap();
    check_refused(root.path(), &bundle, &trust, &["is not signed"]);
}

#[test]
fn evaluate_and_bench_check_trust_too() {
    let root = tempfile::tempdir().unwrap();
    let (_, public) = key_pair(root.path(), "trainer");
    let bundle = copy_bundle(root.path(), "wheat-vae");
    let json = root.path().join("out.json");
    let real = fixture("wheat_splitsplit.csv");
    for args in [
        vec!["bench", "--model", path_str(&bundle), "--repeats", "1"],
        vec!["evaluate", "--model", path_str(&bundle), "--real", path_str(&real), "--n", "50"],
    ] {
        let mut args = args;
        args.extend_from_slice(&["--json", path_str(&json), "--trust", path_str(&public)]);
        let output = synth_edge(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains("is not signed") && stderr.contains(path_str(&bundle)), "{stderr}");
        assert!(!json.exists(), "{args:?}: nothing written");
    }
}

/// A copy of wheat-vae whose graph `edit` changed, with the manifest's checksum updated and the
/// folder sealed again: only the graph checks stand between it and an engine.
fn with_graph(root: &Path, edit: impl Fn(&mut ModelProto)) -> PathBuf {
    let bundle = copy_bundle(root, "wheat-vae");
    let mut model =
        ModelProto::decode(fs::read(bundle.join("model.onnx")).unwrap().as_slice()).unwrap();
    edit(&mut model);
    let bytes = model.encode_to_vec();
    let sha256 = hex::encode(Sha256::digest(&bytes));
    fs::write(bundle.join("model.onnx"), bytes).unwrap();
    edit_json(&bundle.join("manifest.json"), |m| m["model_sha256"] = sha256.clone().into());
    seal(&bundle, None).unwrap();
    bundle
}

fn float_tensor(name: &str, dims: Vec<i64>) -> TensorProto {
    TensorProto { name: name.to_owned(), dims, data_type: 1, ..TensorProto::default() }
}

#[test]
fn a_graph_declaring_huge_constants_is_refused_before_any_engine_allocates() {
    let root = tempfile::tempdir().unwrap();
    // An untouched round trip through prost still loads.
    let bundle = with_graph(root.path(), |_| {});
    check_accepted(root.path(), &bundle, &[]);
    fs::remove_dir_all(&bundle).unwrap();

    // 2^20 × 2^20 floats (4 TiB) declared, no data.
    let bundle = with_graph(root.path(), |model| {
        if let Some(graph) = model.graph.as_mut() {
            graph.initializer.push(float_tensor("huge_weight", vec![1 << 20, 1 << 20]));
        }
    });
    check_refused(
        root.path(),
        &bundle,
        &[],
        &["model.onnx", "graph tensor `huge_weight`", "4398046511104 bytes", "before any engine"],
    );
    fs::remove_dir_all(&bundle).unwrap();

    // A Constant node's value, and one whose dimensions overflow u64.
    for dims in [vec![1 << 16, 1 << 16, 1 << 4], vec![i64::MAX, i64::MAX]] {
        let bundle = with_graph(root.path(), |model| {
            if let Some(graph) = model.graph.as_mut() {
                graph.node.insert(
                    0,
                    NodeProto {
                        op_type: "Constant".to_owned(),
                        output: vec!["big_constant".to_owned()],
                        attribute: vec![tract_onnx::pb::AttributeProto {
                            name: "value".to_owned(),
                            t: Some(float_tensor("", dims.clone())),
                            ..Default::default()
                        }],
                        ..NodeProto::default()
                    },
                );
            }
        });
        check_refused(
            root.path(),
            &bundle,
            &[],
            &["graph tensor `big_constant`", "before any engine"],
        );
        fs::remove_dir_all(&bundle).unwrap();
    }

    // ConstantOfShape of a constant shape of 2^40 elements: an operator synth-train never writes.
    let bundle = with_graph(root.path(), |model| {
        if let Some(graph) = model.graph.as_mut() {
            graph.initializer.push(TensorProto {
                name: "big_shape".to_owned(),
                dims: vec![2],
                data_type: 7,
                int64_data: vec![1 << 20, 1 << 20],
                ..TensorProto::default()
            });
            graph.node.insert(
                0,
                NodeProto {
                    name: "fill".to_owned(),
                    op_type: "ConstantOfShape".to_owned(),
                    input: vec!["big_shape".to_owned()],
                    output: vec!["filled".to_owned()],
                    ..NodeProto::default()
                },
            );
        }
    });
    check_refused(
        root.path(),
        &bundle,
        &[],
        &[
            "model.onnx: graph node `fill` uses the operator `ConstantOfShape`",
            "the graph was not written by synth-train",
            "before any engine",
        ],
    );
    fs::remove_dir_all(&bundle).unwrap();

    // Data in an external file: never a path read on a bundle's say-so.
    let bundle = with_graph(root.path(), |model| {
        if let Some(graph) = model.graph.as_mut() {
            let mut tensor = float_tensor("outside", vec![4]);
            tensor.data_location = Some(1);
            tensor.external_data = vec![tract_onnx::pb::StringStringEntryProto {
                key: "location".to_owned(),
                value: "/etc/passwd".to_owned(),
            }];
            graph.initializer.push(tensor);
        }
    });
    check_refused(root.path(), &bundle, &[], &["graph tensor `outside`", "external file"]);
}

#[test]
fn oversized_files_are_refused_before_they_are_read() {
    for (name, size, limit) in [
        ("model.onnx", 3_u64 << 30, edge_runtime::bundle::MAX_MODEL_BYTES),
        ("manifest.json", 64 << 20, edge_runtime::bundle::MAX_MANIFEST_BYTES),
    ] {
        let root = tempfile::tempdir().unwrap();
        let bundle = copy_bundle(root.path(), "wheat-vae");
        // A sparse file: the size is on disk in an instant, the bytes are never there.
        fs::File::create(bundle.join(name)).unwrap().set_len(size).unwrap();
        edit_json(&bundle.join("seal.json"), |s| {
            for file in s["files"].as_array_mut().unwrap() {
                if file["name"] == name {
                    file["bytes"] = size.into();
                }
            }
        });
        check_refused(
            root.path(),
            &bundle,
            &[],
            &[name, &format!("is {size} bytes"), &format!("at most {limit} bytes")],
        );
        let err = seal(&bundle, None).unwrap_err();
        assert!(err.to_string().contains(&format!("at most {limit} bytes")), "{err}");
    }
    let root = tempfile::tempdir().unwrap();
    let bundle = copy_bundle(root.path(), "wheat-vae");
    fs::File::create(bundle.join("seal.json")).unwrap().set_len(32 << 20).unwrap();
    check_refused(root.path(), &bundle, &[], &["seal.json", "at most 1048576 bytes"]);
}

#[test]
fn the_library_refuses_an_empty_trust_list() {
    let err =
        Bundle::open_with(&fixture("bundles/wheat-vae"), &Trust::SignedBy(Vec::new())).unwrap_err();
    assert!(err.to_string().contains("no trusted key"), "{err}");
    let key: PublicKey = SecretKey::generate().unwrap().public();
    let err = Bundle::open_trusted(&fixture("bundles/wheat-vae"), &[key]).unwrap_err();
    assert!(err.to_string().contains("is not signed"), "{err}");
}

/// A node without a name (engines and the checks name it by its output), as `mkbomb.py` writes.
fn bare_node(op: &str, inputs: &[&str], output: &str, attribute: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.to_owned(),
        input: inputs.iter().map(|&input| input.to_owned()).collect(),
        output: vec![output.to_owned()],
        attribute,
        ..NodeProto::default()
    }
}

/// A `Constant` node whose value is `tensor`.
fn constant(output: &str, tensor: TensorProto) -> NodeProto {
    let value = AttributeProto {
        name: "value".to_owned(),
        r#type: AttributeType::Tensor as i32,
        t: Some(tensor),
        ..AttributeProto::default()
    };
    bare_node("Constant", &[], output, vec![value])
}

fn int64_tensor(dims: Vec<i64>, values: Vec<i64>) -> TensorProto {
    TensorProto { dims, data_type: 7, int64_data: values, ..TensorProto::default() }
}

fn f32_tensor(dims: Vec<i64>, values: Vec<f32>) -> TensorProto {
    TensorProto { dims, data_type: 1, float_data: values, ..TensorProto::default() }
}

/// The red team's memory bombs (`mkbomb.py`): a tensor of `big` elements built from tiny
/// constants (or from a run-time shape), summed and added to the graph's output, so the
/// graph's inputs, outputs and declared constants all still pass.
fn bomb(variant: &str, big: i64) -> Vec<NodeProto> {
    let one = || constant("one", f32_tensor(vec![1], vec![0.0]));
    let zero_value = || AttributeProto {
        name: "value".to_owned(),
        r#type: AttributeType::Tensor as i32,
        t: Some(f32_tensor(vec![1], vec![0.0])),
        ..AttributeProto::default()
    };
    let mut nodes = match variant {
        "expand" => vec![
            one(),
            constant("shp", int64_tensor(vec![1], vec![big])),
            bare_node("Expand", &["one", "shp"], "bigt", vec![]),
        ],
        "tile" => vec![
            one(),
            constant("rep", int64_tensor(vec![1], vec![big])),
            bare_node("Tile", &["one", "rep"], "bigt", vec![]),
        ],
        "range" => vec![
            constant("st", f32_tensor(vec![], vec![0.0])),
            constant("lim", f32_tensor(vec![], vec![big as f32])),
            constant("dl", f32_tensor(vec![], vec![1.0])),
            bare_node("Range", &["st", "lim", "dl"], "bigt", vec![]),
        ],
        "cos_ints" => vec![
            bare_node(
                "Constant",
                &[],
                "shp",
                vec![AttributeProto {
                    name: "value_ints".to_owned(),
                    r#type: AttributeType::Ints as i32,
                    ints: vec![big],
                    ..AttributeProto::default()
                }],
            ),
            bare_node("ConstantOfShape", &["shp"], "bigt", vec![zero_value()]),
        ],
        "cos_dyn" => vec![
            bare_node("Shape", &["z"], "zs", vec![]),
            constant("mul", int64_tensor(vec![2], vec![big, 1])),
            bare_node("Mul", &["zs", "mul"], "shp", vec![]),
            bare_node("ConstantOfShape", &["shp"], "bigt", vec![zero_value()]),
        ],
        other => panic!("no bomb `{other}`"),
    };
    let keepdims = AttributeProto {
        name: "keepdims".to_owned(),
        r#type: AttributeType::Int as i32,
        i: 0,
        ..AttributeProto::default()
    };
    nodes.push(bare_node("ReduceSum", &["bigt"], "s0", vec![keepdims]));
    nodes
}

/// `graph` with `extra` nodes whose sum `s0` is added to its output (renamed `x_pre`).
fn add_to_output(graph: &mut GraphProto, extra: Vec<NodeProto>) {
    let last = graph.node.last_mut().unwrap();
    let output = last.output[0].clone();
    last.output[0] = "x_pre".to_owned();
    last.name = "x_pre_node".to_owned();
    graph.node.extend(extra);
    graph.node.push(bare_node("Add", &["x_pre", "s0"], &output, vec![]));
}

#[test]
fn graphs_with_operators_synth_train_never_writes_are_refused_before_any_engine_sees_them() {
    let root = tempfile::tempdir().unwrap();
    let not_ours =
        "the graph was not written by synth-train, refusing it before any engine loads it";
    // The red team's bombs: 2^34 elements made tract panic (divide by zero), 2^30 took 4.2 GB,
    // a run-time shape a failed 640 GiB allocation. Each is refused naming the node and its op.
    for (variant, node, op) in [
        ("expand", "bigt", "Expand"),
        ("tile", "bigt", "Tile"),
        ("range", "bigt", "Range"),
        ("cos_ints", "bigt", "ConstantOfShape"),
        ("cos_dyn", "zs", "Shape"),
    ] {
        for big in [1_000, 1 << 30, 1 << 34] {
            let bundle = with_graph(root.path(), |model| {
                add_to_output(model.graph.as_mut().unwrap(), bomb(variant, big));
            });
            if big == 1_000 {
                // A small one is a graph tract runs: only the operator check refuses it.
                let model = fs::read(bundle.join("model.onnx")).unwrap();
                let mut engine = TractEngine::from_onnx(&model, 1).unwrap();
                let (z, y) = (vec![0.0; 16], [1.0, 0.0]);
                let inputs =
                    [TensorIn { data: &z, shape: &[1, 16] }, TensorIn { data: &y, shape: &[1, 2] }];
                assert_eq!(engine.run_tensor(&inputs).unwrap().shape, [1, 33], "{variant}");
            }
            let expected = format!("graph node `{node}` uses the operator `{op}`, which");
            let err = Bundle::open(&bundle).unwrap_err().to_string();
            assert!(err.contains(&expected) && err.contains(not_ours), "{variant}: {err}");
            check_refused(root.path(), &bundle, &[], &["/model.onnx: ", &expected, not_ours]);
            for engine in ort_engines() {
                check_refused(root.path(), &bundle, &["--engine", engine], &[&expected]);
            }
            fs::remove_dir_all(&bundle).unwrap();
        }
    }

    // An operator of the exporter's, in another domain; control flow; a custom operator.
    type Edit = fn(&mut GraphProto);
    let cases: [(&str, Edit, &str); 4] = [
        (
            "a Gemm of com.microsoft",
            |graph| {
                for node in graph.node.iter_mut().filter(|node| node.op_type == "Gemm") {
                    node.domain = "com.microsoft".to_owned();
                }
            },
            "uses the operator `Gemm` of the domain `com.microsoft`, which",
        ),
        (
            "If",
            |graph| {
                let branch = GraphProto::default();
                let mut node = bare_node("If", &["cond"], "branch", vec![]);
                node.attribute.push(AttributeProto {
                    name: "then_branch".to_owned(),
                    r#type: AttributeType::Graph as i32,
                    g: Some(branch),
                    ..AttributeProto::default()
                });
                graph.node.insert(0, node);
            },
            "graph node `branch` uses the operator `If`, which",
        ),
        (
            // A subgraph held by an accepted operator is checked too.
            "an Expand in a subgraph",
            |graph| {
                let inner = GraphProto { node: bomb("expand", 1 << 34), ..GraphProto::default() };
                if let Some(first) = graph.node.first_mut() {
                    first.attribute.push(AttributeProto {
                        name: "hidden".to_owned(),
                        r#type: AttributeType::Graph as i32,
                        g: Some(inner),
                        ..AttributeProto::default()
                    });
                }
            },
            "graph node `bigt` uses the operator `Expand`, which",
        ),
        (
            "a custom op",
            |graph| graph.node.insert(0, bare_node("MyGiantOp\n", &[], "giant", vec![])),
            "graph node `giant` uses the operator `MyGiantOp\\n`, which",
        ),
    ];
    for (what, edit, expected) in cases {
        let bundle = with_graph(root.path(), |model| edit(model.graph.as_mut().unwrap()));
        check_refused(root.path(), &bundle, &[], &[expected, not_ours]);
        let err = Bundle::open(&bundle).unwrap_err().to_string();
        assert!(err.contains(expected), "{what}: {err}");
        fs::remove_dir_all(&bundle).unwrap();
    }
}

/// ONNX Runtime too, when this build has it and `ORT_DYLIB_PATH` names its library.
fn ort_engines() -> Vec<&'static str> {
    if cfg!(feature = "ort") && std::env::var_os("ORT_DYLIB_PATH").is_some() {
        vec!["ort"]
    } else {
        Vec::new()
    }
}
