//! `cosign` commands: sign an image by digest (never by tag) and verify the signature, with a
//! key (a file, `env://VAR`, or a KMS URI) or keyless (OIDC in CI: identity and issuer).

use super::CommandSpec;

/// How images are signed and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signer {
    /// `--key` for signing; the public key (or the same KMS URI) for verifying.
    Key { key: String, public: String },
    /// Keyless (Fulcio/Rekor): verified against the certificate's identity and issuer.
    Keyless { identity: String, issuer: String },
}

/// `cosign sign --yes [--key K] REPO@DIGEST` (`--recursive` signs an index's platforms too).
pub fn sign(cosign: &str, signer: &Signer, digest_ref: &str, recursive: bool) -> CommandSpec {
    let mut cmd = CommandSpec::new(cosign).args(["sign", "--yes"]);
    if let Signer::Key { key, .. } = signer {
        cmd = cmd.args(["--key", key]);
    }
    if recursive {
        cmd = cmd.arg("--recursive");
    }
    cmd.arg(digest_ref)
}

/// `cosign verify` of the same digest with the expected key or identity.
pub fn verify(cosign: &str, signer: &Signer, digest_ref: &str) -> CommandSpec {
    let cmd = CommandSpec::new(cosign).arg("verify");
    let cmd = match signer {
        Signer::Key { public, .. } => cmd.args(["--key", public]),
        Signer::Keyless { identity, issuer } => cmd
            .args(["--certificate-identity", identity])
            .args(["--certificate-oidc-issuer", issuer]),
    };
    cmd.arg(digest_ref)
}

/// `cosign attest --yes [--key K] --type cyclonedx --predicate SBOM REPO@DIGEST`: the SBOM as
/// a signed in-toto attestation, stored beside the image (`sha256-<hex>.att`).
pub fn attest_sbom(cosign: &str, signer: &Signer, digest_ref: &str, sbom: &str) -> CommandSpec {
    let mut cmd = CommandSpec::new(cosign).args(["attest", "--yes"]);
    if let Signer::Key { key, .. } = signer {
        cmd = cmd.args(["--key", key]);
    }
    cmd.args(["--type", "cyclonedx", "--predicate", sbom])
        .arg(digest_ref)
}

/// `cosign verify-attestation --type cyclonedx` with the expected key or identity.
pub fn verify_sbom(cosign: &str, signer: &Signer, digest_ref: &str) -> CommandSpec {
    let mut v = verify(cosign, signer, digest_ref);
    v.args[0] = "verify-attestation".into();
    let at = v.args.len() - 1;
    v.args.insert(at, "--type".into());
    v.args.insert(at + 1, "cyclonedx".into());
    v
}

/// The tag cosign stores a digest's attestations under: `sha256-<hex>.att`.
pub fn attestation_tag(digest: &str) -> String {
    format!("{}.att", digest.replace(':', "-"))
}

/// The tag cosign stores a digest's signature under: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &str) -> String {
    format!("{}.sig", digest.replace(':', "-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_by_digest() {
        let key = Signer::Key {
            key: "env://COSIGN_KEY".into(),
            public: "cosign.pub".into(),
        };
        assert_eq!(
            sign("cosign", &key, "r/web@sha256:ab", false).argv(),
            [
                "cosign",
                "sign",
                "--yes",
                "--key",
                "env://COSIGN_KEY",
                "r/web@sha256:ab"
            ]
        );
        assert_eq!(
            verify("cosign", &key, "r/web@sha256:ab").argv(),
            ["cosign", "verify", "--key", "cosign.pub", "r/web@sha256:ab"]
        );
        assert_eq!(
            attest_sbom("cosign", &key, "r/web@sha256:ab", "sbom.json").argv(),
            [
                "cosign",
                "attest",
                "--yes",
                "--key",
                "env://COSIGN_KEY",
                "--type",
                "cyclonedx",
                "--predicate",
                "sbom.json",
                "r/web@sha256:ab"
            ]
        );
        assert_eq!(
            verify_sbom("cosign", &key, "r/web@sha256:ab").argv(),
            [
                "cosign",
                "verify-attestation",
                "--key",
                "cosign.pub",
                "--type",
                "cyclonedx",
                "r/web@sha256:ab"
            ]
        );
        assert_eq!(attestation_tag("sha256:ab"), "sha256-ab.att");
        let keyless = Signer::Keyless {
            identity: "https://github.com/acme/repo/.github/workflows/publish.yml@refs/heads/main"
                .into(),
            issuer: "https://token.actions.githubusercontent.com".into(),
        };
        assert_eq!(
            sign("cosign", &keyless, "r/web@sha256:ab", true).argv(),
            ["cosign", "sign", "--yes", "--recursive", "r/web@sha256:ab"]
        );
        assert!(verify("cosign", &keyless, "r/web@sha256:ab")
            .argv()
            .windows(2)
            .any(|w| w
                == [
                    "--certificate-oidc-issuer",
                    "https://token.actions.githubusercontent.com"
                ]));
        assert_eq!(signature_tag("sha256:ab12"), "sha256-ab12.sig");
    }
}
