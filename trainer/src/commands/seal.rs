//! `synth-train seal`: (re)write a bundle's seal after checking that its model is the one its
//! manifest names and that the edge runtime would accept its graph; signed with `--sign-key`.
//! For bundles exported before seals, and for moving bundles to a new signing key.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edge_runtime::bundle::{Bundle, Trust, check_unsealed, seal};
use edge_runtime::keys::SecretKey;

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Sign the seal with this secret key (`trainer.key` from `synth-train keygen`); without it
    /// the seal is unsigned, and devices that `--trust` a key refuse the bundle.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
}

pub fn run(args: &SealArgs) -> anyhow::Result<()> {
    let key = args.sign_key.as_deref().map(SecretKey::read).transpose()?;
    let dir = &args.bundle;
    if !dir.is_dir() {
        anyhow::bail!("{}: is not a bundle folder", dir.display());
    }
    check_unsealed(dir).with_context(|| format!("{}: not sealed", dir.display()))?;
    let written = seal(dir, key.as_ref())?;
    let trust = key.as_ref().map_or(Trust::Sealed, |key| Trust::SignedBy(vec![key.public()]));
    Bundle::open_with(dir, &trust)
        .with_context(|| format!("{}: sealed, but does not open", dir.display()))?;
    let names: Vec<&str> = written.files.iter().map(|file| file.name.as_str()).collect();
    println!(
        "sealed {} ({}; digest {}){}",
        dir.display(),
        names.join(", "),
        written.digest,
        key.map(|key| format!(", signed by key {}", key.public().fingerprint()))
            .unwrap_or_else(|| ", unsigned".to_owned())
    );
    Ok(())
}
