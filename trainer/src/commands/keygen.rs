//! `synth-train keygen`: a new ed25519 key pair for signing bundles, `DIR/trainer.key` (secret,
//! 0600) and `DIR/trainer.pub` (what devices trust). Neither file is ever overwritten.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use edge_runtime::keys::SecretKey;

/// The secret key's file name.
pub const SECRET_KEY_FILE: &str = "trainer.key";
/// The public key's file name.
pub const PUBLIC_KEY_FILE: &str = "trainer.pub";

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The folder to write trainer.key and trainer.pub in (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(args: &KeygenArgs) -> anyhow::Result<()> {
    let secret_path = args.out.join(SECRET_KEY_FILE);
    let public_path = args.out.join(PUBLIC_KEY_FILE);
    // Both halves are checked before either is written: never half a pair.
    for path in [&secret_path, &public_path] {
        edge_runtime::data::refuse_existing(path)
            .context("no key written (move the old pair away, or choose another --out)")?;
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create the key folder", args.out.display()))?;
    let key = SecretKey::generate()?;
    key.write(&secret_path)?;
    key.public().write(&public_path)?;
    println!(
        "wrote {} (secret: keep it on the workstation) and {} (public: give it to devices as \
         --trust); key fingerprint {}",
        secret_path.display(),
        public_path.display(),
        key.public().fingerprint()
    );
    Ok(())
}
