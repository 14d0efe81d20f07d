//! `synth-train seal`: (re)write a bundle's seal after checking that its model is the one its
//! manifest names and that the edge runtime would accept its graph; signed with `--sign-key`.
//! For bundles exported before seals, and for moving bundles to a new signing key.
//!
//! A bundle that already has a seal is opened first, as a device would open it: its files must
//! match the seal and a signature must verify (against the `--trust` keys when given). Re-sealing
//! is no way to launder a changed bundle; `--force` replaces a broken seal on purpose.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edge_runtime::bundle::{Bundle, Trust, check_unsealed, seal};
use edge_runtime::cli::TrustArgs;
use edge_runtime::keys::SecretKey;
use models::manifest::SEAL_FILE;

#[derive(Debug, Args)]
pub struct SealArgs {
    /// The bundle folder.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Sign the seal with this secret key (`trainer.key` from `synth-train keygen`); without it
    /// the seal is unsigned, and devices that `--trust` a key refuse the bundle.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Option<PathBuf>,
    /// When the bundle is sealed already, accept it only if this public key signed it (repeat
    /// for several), e.g. the old key when re-signing with a new one. Without it, the existing
    /// seal must be intact and a signature on it must verify.
    #[arg(long = "trust", value_name = "FILE")]
    pub trust: Vec<PathBuf>,
    /// Re-seal a bundle whose existing seal is broken or untrusted (its files changed after
    /// sealing). Only after you checked the files: the new seal vouches for them.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &SealArgs) -> anyhow::Result<()> {
    let key = args.sign_key.as_deref().map(SecretKey::read).transpose()?;
    let trust = TrustArgs { trust: args.trust.clone() }.to_trust()?;
    let dir = &args.bundle;
    if !dir.is_dir() {
        anyhow::bail!("{}: is not a bundle folder", dir.display());
    }
    if std::fs::symlink_metadata(dir.join(SEAL_FILE)).is_ok() {
        match Bundle::open_with(dir, &trust) {
            Ok(_) => {}
            Err(err) if args.force => eprintln!(
                "warning: {}: replacing a seal that does not hold: {}",
                dir.display(),
                edge_runtime::error::chain(&err)
            ),
            Err(err) => {
                return Err(anyhow::Error::new(err).context(format!(
                    "{}: not re-sealed: its existing seal does not hold; check the files, then \
                     re-seal with --force",
                    dir.display()
                )));
            }
        }
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
