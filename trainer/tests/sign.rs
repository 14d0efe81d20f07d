//! Signing bundles: `synth-train keygen` makes a key pair it never overwrites, `fit --sign-key`
//! signs the bundle it writes, `seal` seals an older bundle or signs it with a new key, and the
//! edge runtime accepts a bundle under `--trust` only when a trusted key signed it. `fit` also
//! opens and samples what it wrote before moving it into place.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail loudly too; clippy.toml's allow-unwrap-in-tests covers #[test] fns only"
)]

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use clap::Parser as _;
use edge_runtime::bundle::Bundle;
use edge_runtime::keys::PublicKey;
use models::manifest::Manifest;
use prost::Message as _;
use trainer::bundle::Staging;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures").join(name)
}

fn synth_train(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_synth-train"))
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("cannot run synth-train: {err}"))
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap_or_default()
}

fn succeeds(args: &[&str]) -> String {
    let output = synth_train(args);
    assert!(output.status.success(), "{args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Fails with a message holding every part of `expected`, without a panic.
fn fails(args: &[&str], expected: &[&str]) {
    let output = synth_train(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "`{stderr}` should contain `{part}`");
    }
}

fn keygen(dir: &Path) -> PublicKey {
    let stdout = succeeds(&["keygen", "--out", path_str(dir)]);
    let public = PublicKey::read(&dir.join("trainer.pub")).unwrap();
    assert!(stdout.contains(&public.fingerprint()), "{stdout}");
    public
}

/// `synth-edge generate --n 4` through the edge runtime's own command line, in this process.
fn edge_generate(bundle: &Path, out: &Path, trust: &[&Path]) -> anyhow::Result<()> {
    let mut args = vec!["synth-edge", "generate", "--model", path_str(bundle)];
    args.extend(["--out", path_str(out), "--n", "4"]);
    for key in trust {
        args.extend(["--trust", path_str(key)]);
    }
    let cli = edge_runtime::cli::Cli::try_parse_from(&args)?;
    let edge_runtime::cli::Command::Generate(generate) = cli.command else {
        anyhow::bail!("not a generate command")
    };
    edge_runtime::commands::generate::run(&generate).map(|_| ())
}

fn fit_wine(out: &Path, extra: &[&str]) -> Vec<String> {
    let wine = fixture("wine.csv");
    let mut args: Vec<String> = [
        "fit",
        "--data",
        path_str(&wine),
        "--label",
        "cultivar",
        "--family",
        "vae",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        path_str(out),
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    args
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn keygen_writes_a_private_key_and_never_overwrites_one() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    keygen(&keys);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| fs::metadata(keys.join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode("trainer.key"), 0o600);
        assert_eq!(mode("trainer.pub"), 0o644);
    }
    let before = fs::read(keys.join("trainer.key")).unwrap();
    fails(
        &["keygen", "--out", path_str(&keys)],
        &["trainer.key", "already exists", "never overwritten"],
    );
    assert_eq!(fs::read(keys.join("trainer.key")).unwrap(), before);
    // Half a pair in the way: nothing is written, not even the missing half.
    fs::remove_file(keys.join("trainer.key")).unwrap();
    fails(&["keygen", "--out", path_str(&keys)], &["trainer.pub", "already exists"]);
    assert!(!keys.join("trainer.key").exists());
}

#[test]
fn a_signed_fit_is_trusted_under_its_key_and_refused_under_another() {
    let dir = tempfile::tempdir().unwrap();
    let (old_keys, new_keys) = (dir.path().join("old"), dir.path().join("new"));
    let old = keygen(&old_keys);
    let new = keygen(&new_keys);
    let bundle = dir.path().join("wine-vae");
    let old_key = old_keys.join("trainer.key");
    succeeds(&as_strs(&fit_wine(&bundle, &["--sign-key", path_str(&old_key)])));
    assert_eq!(Bundle::open_trusted(&bundle, &[old]).unwrap().signer, Some(old));

    let out = dir.path().join("synthetic.csv");
    let (old_pub, new_pub) = (old_keys.join("trainer.pub"), new_keys.join("trainer.pub"));
    edge_generate(&bundle, &out, &[&old_pub]).unwrap();
    assert_eq!(fs::read_to_string(&out).unwrap().lines().count(), 5, "a header and 4 rows");
    fs::remove_file(&out).unwrap();
    let err = edge_generate(&bundle, &out, &[&new_pub]).unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains(&old.fingerprint()) && message.contains("not trusted"), "{message}");
    assert!(message.contains(path_str(&bundle)), "{message}");
    assert!(!out.exists());

    // Rotation: re-signed with the new key, trusted by a fleet that trusts both keys.
    let new_key = new_keys.join("trainer.key");
    let bundle_arg = path_str(&bundle);
    let stdout = succeeds(&[
        "seal",
        "--bundle",
        bundle_arg,
        "--sign-key",
        path_str(&new_key),
        "--trust",
        path_str(&old_pub),
    ]);
    assert!(stdout.contains(&new.fingerprint()), "{stdout}");
    edge_generate(&bundle, &out, &[&old_pub, &new_pub]).unwrap();
    fs::remove_file(&out).unwrap();
    let err = edge_generate(&bundle, &out, &[&old_pub]).unwrap_err();
    assert!(format!("{err:#}").contains(&new.fingerprint()), "{err:#}");
    assert!(!out.exists());

    // Resealed unsigned: an intact seal, but no longer trusted.
    succeeds(&["seal", "--bundle", path_str(&bundle)]);
    let err = edge_generate(&bundle, &out, &[&new_pub]).unwrap_err();
    assert!(format!("{err:#}").contains("is not signed"), "{err:#}");
    edge_generate(&bundle, &out, &[]).unwrap();
}

#[test]
fn fit_refuses_an_unusable_signing_key_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    keygen(&keys);
    let bundle = dir.path().join("bundle");
    for (key, expected) in
        [(dir.path().join("missing.key"), "missing.key"), (keys.join("trainer.pub"), "other half")]
    {
        fails(&as_strs(&fit_wine(&bundle, &["--sign-key", path_str(&key)])), &[expected]);
        assert!(!bundle.exists());
    }
    let leftovers: Vec<_> =
        fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the keys: {leftovers:?}");
}

#[test]
fn seal_seals_an_older_bundle_only_when_its_model_matches_its_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    fs::create_dir(&bundle).unwrap();
    for file in ["manifest.json", "model.onnx"] {
        fs::copy(fixture("bundles/wheat-gan").join(file), bundle.join(file)).unwrap();
    }
    let err = Bundle::open(&bundle).unwrap_err();
    assert!(err.to_string().contains("synth-train seal"), "{err}");
    let stdout = succeeds(&["seal", "--bundle", path_str(&bundle)]);
    assert!(stdout.contains("unsigned"), "{stdout}");
    let sealed = Bundle::open(&bundle).unwrap();
    assert_eq!(sealed.signer, None);
    assert_eq!(
        fs::read(bundle.join("seal.json")).unwrap(),
        fs::read(fixture("bundles/wheat-gan/seal.json")).unwrap(),
        "the same files give the same seal"
    );

    // A model that is not the manifest's is not sealed over, even with --force, and the old
    // seal stays.
    let seal_before = fs::read(bundle.join("seal.json")).unwrap();
    let model = fs::read(fixture("bundles/wheat-vae/model.onnx")).unwrap();
    fs::write(bundle.join("model.onnx"), model).unwrap();
    fails(
        &["seal", "--bundle", path_str(&bundle)],
        &["model.onnx", "changed after export", "not re-sealed", "--force"],
    );
    fails(
        &["seal", "--bundle", path_str(&bundle), "--force"],
        &["model.onnx", "the manifest expects", "not sealed"],
    );
    assert_eq!(fs::read(bundle.join("seal.json")).unwrap(), seal_before);
    let leftovers: Vec<_> =
        fs::read_dir(&bundle).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 3, "no temporary file left: {leftovers:?}");
    fails(&["seal", "--bundle", path_str(&dir.path().join("nothing"))], &["not a bundle folder"]);
}

/// Every file of a folder, by name.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|entry| {
            (entry.file_name().to_string_lossy().into_owned(), fs::read(entry.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// `seal` on a sealed bundle first opens it as a device would: a bundle changed after sealing, or
/// one signed by a key not trusted, is refused and left as it was; `--force` re-seals it on
/// purpose; re-signing under `--trust OLD` is the key rotation path.
#[test]
fn seal_refuses_to_re_seal_a_changed_or_untrusted_bundle_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let (old_keys, new_keys) = (dir.path().join("old"), dir.path().join("new"));
    let old = keygen(&old_keys);
    let new = keygen(&new_keys);
    let (old_key, old_pub) = (old_keys.join("trainer.key"), old_keys.join("trainer.pub"));
    let (new_key, new_pub) = (new_keys.join("trainer.key"), new_keys.join("trainer.pub"));
    let bundle = dir.path().join("bundle");
    fs::create_dir(&bundle).unwrap();
    for file in ["manifest.json", "model.onnx", "seal.json"] {
        fs::copy(fixture("bundles/wheat-gan").join(file), bundle.join(file)).unwrap();
    }
    let b = path_str(&bundle);
    // An intact unsigned seal may be signed.
    succeeds(&["seal", "--bundle", b, "--sign-key", path_str(&old_key)]);
    assert_eq!(Bundle::open_trusted(&bundle, &[old]).unwrap().signer, Some(old));

    // Signed by the old key, which is not the one trusted: refused, nothing changed.
    let before = snapshot(&bundle);
    let rotate = |trusted: &Path| {
        synth_train(&[
            "seal",
            "--bundle",
            b,
            "--sign-key",
            path_str(&new_key),
            "--trust",
            path_str(trusted),
        ])
    };
    let refused = rotate(&new_pub);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    for part in [&old.fingerprint(), "not trusted", "not re-sealed", b] {
        assert!(stderr.contains(part), "`{stderr}` should contain `{part}`");
    }
    assert_eq!(snapshot(&bundle), before);

    // Rotation: trusted under the old key, re-signed with the new one.
    let rotated = rotate(&old_pub);
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));
    assert_eq!(Bundle::open_trusted(&bundle, &[new]).unwrap().signer, Some(new));
    assert!(Bundle::open_trusted(&bundle, &[old]).is_err());

    // A manifest edited after sealing (still a valid manifest whose model matches): the seal no
    // longer holds, so it is not re-sealed, signed or not, trusted key or not.
    let mut manifest = fs::read(bundle.join("manifest.json")).unwrap();
    manifest.extend_from_slice(b"\n ");
    fs::write(bundle.join("manifest.json"), &manifest).unwrap();
    let before = snapshot(&bundle);
    let expected = ["manifest.json", "changed after export", "not re-sealed", "--force"];
    fails(&["seal", "--bundle", b], &expected);
    fails(&["seal", "--bundle", b, "--sign-key", path_str(&new_key)], &expected);
    fails(&["seal", "--bundle", b, "--trust", path_str(&new_pub)], &expected);
    assert_eq!(snapshot(&bundle), before, "no file changed, no temporary file left");
    assert!(Bundle::open(&bundle).is_err());

    // --force: re-sealed over the changed files, with a warning that says what was replaced.
    let forced = synth_train(&["seal", "--bundle", b, "--force", "--sign-key", path_str(&new_key)]);
    let stderr = String::from_utf8_lossy(&forced.stderr);
    assert!(forced.status.success(), "{stderr}");
    assert!(stderr.contains("warning") && stderr.contains("changed after export"), "{stderr}");
    let opened = Bundle::open_trusted(&bundle, &[new]).unwrap();
    assert_eq!(opened.signer, Some(new));
    assert_eq!(fs::read(bundle.join("manifest.json")).unwrap(), manifest);
}

/// A staged bundle that the edge runtime cannot load, or that samples non-finite values, is
/// refused, and neither it nor its staging folder is left behind.
#[test]
fn a_bundle_that_fails_in_the_edge_runtime_is_never_moved_into_place() {
    let manifest_text = fs::read_to_string(fixture("bundles/wheat-vae/manifest.json")).unwrap();
    let manifest = Manifest::from_json(&manifest_text, "manifest.json").unwrap();
    let vae = fs::read(fixture("bundles/wheat-vae/model.onnx")).unwrap();
    let gan = fs::read(fixture("bundles/wheat-gan/model.onnx")).unwrap();
    // The VAE decoder with every float weight NaN.
    let mut poisoned = tract_onnx::pb::ModelProto::decode(vae.as_slice()).unwrap();
    for tensor in poisoned.graph.iter_mut().flat_map(|graph| graph.initializer.iter_mut()) {
        if tensor.data_type == 1 {
            tensor.float_data.iter_mut().for_each(|value| *value = f32::NAN);
            for chunk in tensor.raw_data.chunks_exact_mut(4) {
                chunk.copy_from_slice(&f32::NAN.to_le_bytes());
            }
        }
    }
    let poisoned = poisoned.encode_to_vec();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("bundle");
    for (what, onnx, expected) in
        [("another family's graph", &gan, "graph inputs are"), ("NaN weights", &poisoned, "NaN")]
    {
        let staging = Staging::new(&out, false).unwrap();
        let err = staging.commit(manifest.clone(), onnx, None, &HashMap::new(), None).unwrap_err();
        let message = edge_runtime::error::chain(&err);
        assert!(message.contains(path_str(&out)), "{what}: {message}");
        assert!(message.contains("fails in the edge runtime"), "{what}: {message}");
        assert!(message.contains(expected), "{what}: {message}");
        let left: Vec<_> =
            fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.is_empty(), "{what}: nothing left behind: {left:?}");
    }
    let staging = Staging::new(&out, false).unwrap();
    staging.commit(manifest, &vae, None, &HashMap::new(), None).unwrap();
    Bundle::open(&out).unwrap();
}
