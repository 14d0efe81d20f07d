//! Ed25519 keys and signatures: a trainer's key signs bundles, a device's key signs the sync
//! batches it sends. One format for both, one line of text per file:
//!
//! - secret key: `fieldsynth-ed25519-secret-v1 <64 hex digits>`, written 0600 and never
//!   overwritten;
//! - public key: `fieldsynth-ed25519-public-v1 <64 hex digits>`;
//! - signature: 128 hex digits (64 bytes), carried inside the signed thing's envelope.
//!
//! Verification is `verify_strict` (no malleable or small-order keys). A secret key file that the
//! group or others may read is still used, with a warning on stderr: refusing would strand a
//! device in the field over a `chmod`.

use std::fs;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::error::{Error, Result};

const SECRET_TAG: &str = "fieldsynth-ed25519-secret-v1";
const PUBLIC_TAG: &str = "fieldsynth-ed25519-public-v1";
/// The longest key file read: a tag, a space, 64 hex digits and a newline, with room to spare.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// A secret signing key. Its `Debug` shows the public half only.
pub struct SecretKey(SigningKey);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public().to_hex())
    }
}

/// A public verifying key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl SecretKey {
    /// A new key from 32 bytes of the operating system's randomness.
    pub fn generate() -> Result<SecretKey> {
        let mut seed = [0_u8; 32];
        getrandom::fill(&mut seed).map_err(|err| {
            Error::Invalid(format!("cannot draw a new key: the system's randomness failed: {err}"))
        })?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    /// Reads a secret key file, warning on stderr when the group or others may read it.
    pub fn read(path: &Path) -> Result<SecretKey> {
        if let Some(warning) = exposure_warning(path) {
            eprintln!("warning: {warning}");
        }
        let bytes = read_key_line(path, SECRET_TAG, "a fieldsynth secret key")?;
        Ok(SecretKey(SigningKey::from_bytes(&bytes)))
    }

    /// Writes the key to `path` (mode 0600), refusing to replace an existing file: a key that
    /// signed bundles or enrolled a device must not vanish under a second `keygen`.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = format!("{SECRET_TAG} {}\n", hex::encode(self.0.to_bytes()));
        crate::data::write_new_atomically(path, text.as_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// The signature of `message`, as 128 hex digits.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.0.sign(message).to_bytes())
    }
}

impl PublicKey {
    pub fn read(path: &Path) -> Result<PublicKey> {
        let bytes = read_key_line(path, PUBLIC_TAG, "a fieldsynth public key")?;
        VerifyingKey::from_bytes(&bytes).map(PublicKey).map_err(|_| {
            Error::Invalid(format!("{}: is not a valid ed25519 public key", path.display()))
        })
    }

    /// Writes the key to `path` (mode 0644), refusing to replace an existing file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = format!("{PUBLIC_TAG} {}\n", self.to_hex());
        crate::data::write_new_atomically(path, text.as_bytes())?;
        crate::data::make_readable(path)
    }

    /// The key as 64 hex digits (what a hub stores for an enrolled device).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// Parses 64 hex digits; the error says what was wrong, for the caller to name its source.
    pub fn from_hex(text: &str) -> std::result::Result<PublicKey, String> {
        let bytes = decode_fixed::<32>(text)
            .ok_or_else(|| "expected 64 hex digits of an ed25519 public key".to_owned())?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| "is not a valid ed25519 public key".to_owned())
    }

    /// A short name for messages: the first 16 hex digits.
    pub fn fingerprint(&self) -> String {
        fingerprint_of_hex(&self.to_hex())
    }

    /// Whether `signature_hex` is this key's signature of `message`. Any malformed signature is
    /// simply not one.
    pub fn verifies(&self, message: &[u8], signature_hex: &str) -> bool {
        decode_fixed::<64>(signature_hex).is_some_and(|bytes| {
            self.0.verify_strict(message, &Signature::from_bytes(&bytes)).is_ok()
        })
    }
}

/// The short name of a public key stored as hex ([`PublicKey::fingerprint`] of a parsed one):
/// its first 16 hex digits.
pub fn fingerprint_of_hex(public_key_hex: &str) -> String {
    public_key_hex.chars().take(16).collect()
}

/// A warning when `path` (a secret key or a token) may be read by its group or by others; `None`
/// when it is private, or on a platform without Unix modes.
pub fn exposure_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Some(format!(
                "{}: holds a secret but is readable by its group or others (mode {mode:04o}); \
                 run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

fn read_key_line(path: &Path, tag: &str, what: &str) -> Result<[u8; 32]> {
    let text = crate::data::read_bounded_text(path, MAX_KEY_FILE_BYTES, what)?;
    let (found, digits) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
    if found != tag {
        let hint = if found == SECRET_TAG || found == PUBLIC_TAG {
            " (the other half of a key pair?)"
        } else {
            ""
        };
        return Err(Error::Invalid(format!(
            "{}: is not {what}: expected a line starting `{tag}`{hint}",
            path.display()
        )));
    }
    decode_fixed::<32>(digits.trim()).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: {what} must be `{tag}` followed by 64 hex digits",
            path.display()
        ))
    })
}

fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    hex::decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_key_pair_reads_back_and_verifies_only_its_own_signatures() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        key.write(&dir.path().join("k.key")).unwrap();
        key.public().write(&dir.path().join("k.pub")).unwrap();
        let secret = SecretKey::read(&dir.path().join("k.key")).unwrap();
        let public = PublicKey::read(&dir.path().join("k.pub")).unwrap();
        assert_eq!(secret.public(), public);
        let signature = secret.sign(b"bundle digest");
        assert!(public.verifies(b"bundle digest", &signature));
        assert!(!public.verifies(b"bundle digesT", &signature));
        assert!(!public.verifies(b"bundle digest", &signature[..126]));
        assert!(!public.verifies(b"bundle digest", "zz"));
        let other = SecretKey::generate().unwrap();
        assert!(!other.public().verifies(b"bundle digest", &signature));
        assert_eq!(PublicKey::from_hex(&public.to_hex()), Ok(public));
    }

    #[test]
    fn a_key_is_never_overwritten_and_the_halves_are_not_confused() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        let path = dir.path().join("k.key");
        key.write(&path).unwrap();
        let before = fs::read(&path).unwrap();
        let err = SecretKey::generate().unwrap().write(&path).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(fs::read(&path).unwrap(), before);
        let err = PublicKey::read(&path).unwrap_err();
        assert!(err.to_string().contains("other half"), "{err}");
        fs::write(dir.path().join("junk"), "fieldsynth-ed25519-public-v1 abcd\n").unwrap();
        assert!(PublicKey::read(&dir.path().join("junk")).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_secret_key_is_written_private_and_an_exposed_one_is_warned_about() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        SecretKey::generate().unwrap().write(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(exposure_warning(&path), None);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let warning = exposure_warning(&path).unwrap();
        assert!(warning.contains("0644") && warning.contains("chmod 600"), "{warning}");
    }
}
