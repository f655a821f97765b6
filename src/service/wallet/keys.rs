//! The operator's wallet key material, read once at start-up, and what is made with it: the
//! detached CMS (PKCS #7) signature of a pass manifest, and the RS256 signature of a Google
//! Wallet JWT.

use std::path::Path;

use cms::{
    builder::{SignedDataBuilder, SignerInfoBuilder, create_signing_time_attribute},
    cert::{CertificateChoices, IssuerAndSerialNumber},
    signed_data::{EncapsulatedContentInfo, SignerIdentifier},
};
use rsa::{
    pkcs1v15::{Signature, SigningKey},
    pkcs8::{DecodePrivateKey, EncodePublicKey},
    signature::{Keypair, SignatureEncoding, Signer},
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use x509_cert::{
    Certificate,
    der::{DecodePem, Encode, oid::ObjectIdentifier},
    spki::AlgorithmIdentifierOwned,
};

use crate::{
    config::WalletConfig,
    domain::wallet::{AppleIds, GoogleIds},
};

/// CMS content type `id-data` (RFC 5652 § 4).
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
/// SHA-256 (RFC 5754 § 2.2).
const ID_SHA_256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");

/// Wallet settings that cannot be used; the text names the setting and what is wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SetupError(String);

/// What the service can make: Apple passes, Google Wallet links, either, or neither.
#[derive(Default)]
pub struct Wallet {
    pub(super) apple: Option<ApplePasses>,
    pub(super) google: Option<GoogleWallet>,
}

/// The pass type certificate, its key and Apple's WWDR intermediate.
pub(super) struct ApplePasses {
    pub ids: AppleIds,
    certificate: Certificate,
    wwdr: Certificate,
    key: SigningKey<Sha256>,
}

/// The Google Wallet issuer and its service account key.
pub(super) struct GoogleWallet {
    pub ids: GoogleIds,
    key: SigningKey<Sha256>,
}

impl Wallet {
    /// Reads and checks the configured files: a missing partner setting, an unreadable file,
    /// or a key that does not belong to its certificate is an error naming the setting.
    pub fn load(config: &WalletConfig) -> Result<Wallet, SetupError> {
        Ok(Wallet {
            apple: ApplePasses::load(config)?,
            google: GoogleWallet::load(config)?,
        })
    }
}

fn required<'a, T: ?Sized>(
    value: Option<&'a T>,
    name: &str,
    because: &str,
) -> Result<&'a T, SetupError> {
    value.ok_or_else(|| SetupError(format!("{name} must be set when {because} is")))
}

fn read(path: &Path, name: &str) -> Result<String, SetupError> {
    std::fs::read_to_string(path)
        .map_err(|e| SetupError(format!("{name}: cannot read {}: {e}", path.display())))
}

fn certificate(path: &Path, name: &str) -> Result<Certificate, SetupError> {
    Certificate::from_pem(read(path, name)?).map_err(|e| {
        SetupError(format!(
            "{name}: {} is not a PEM certificate: {e}",
            path.display()
        ))
    })
}

fn rsa_key(pem: &str, name: &str) -> Result<SigningKey<Sha256>, SetupError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|e| {
        SetupError(format!(
            "{name}: not an unencrypted RSA key in PKCS #8 PEM (BEGIN PRIVATE KEY): {e}; \
             `openssl pkcs8 -topk8 -nocrypt` converts one"
        ))
    })
}

impl ApplePasses {
    fn load(config: &WalletConfig) -> Result<Option<ApplePasses>, SetupError> {
        const CERT: &str = "COUPOND_WALLET_APPLE_CERT";
        let Some(cert_path) = &config.wallet_apple_cert else {
            return match config.wallet_apple_key {
                Some(_) => Err(SetupError(format!(
                    "COUPOND_WALLET_APPLE_KEY is set without {CERT}"
                ))),
                None => Ok(None),
            };
        };
        let key_path = required(
            config.wallet_apple_key.as_deref(),
            "COUPOND_WALLET_APPLE_KEY",
            CERT,
        )?;
        let wwdr_path = required(
            config.wallet_apple_wwdr_cert.as_deref(),
            "COUPOND_WALLET_APPLE_WWDR_CERT",
            CERT,
        )?;
        let ids = AppleIds {
            pass_type_id: required(
                config.wallet_apple_pass_type_id.as_deref(),
                "COUPOND_WALLET_APPLE_PASS_TYPE_ID",
                CERT,
            )?
            .to_string(),
            team_id: required(
                config.wallet_apple_team_id.as_deref(),
                "COUPOND_WALLET_APPLE_TEAM_ID",
                CERT,
            )?
            .to_string(),
        };
        let passes = ApplePasses {
            ids,
            certificate: certificate(cert_path, CERT)?,
            wwdr: certificate(wwdr_path, "COUPOND_WALLET_APPLE_WWDR_CERT")?,
            key: rsa_key(
                &read(key_path, "COUPOND_WALLET_APPLE_KEY")?,
                "COUPOND_WALLET_APPLE_KEY",
            )?,
        };
        passes.check_chain()?;
        Ok(Some(passes))
    }

    /// The key must be the certificate's and the WWDR certificate its issuer, or Wallet would
    /// refuse every pass.
    fn check_chain(&self) -> Result<(), SetupError> {
        let tbs = self.certificate.tbs_certificate();
        let certified = tbs.subject_public_key_info().to_der().ok();
        let key = self.key.verifying_key().to_public_key_der().ok();
        if certified.is_none() || certified.as_deref() != key.as_ref().map(|k| k.as_bytes()) {
            return Err(SetupError(
                "COUPOND_WALLET_APPLE_KEY is not the key of COUPOND_WALLET_APPLE_CERT".into(),
            ));
        }
        if tbs.issuer() != self.wwdr.tbs_certificate().subject() {
            return Err(SetupError(
                "COUPOND_WALLET_APPLE_WWDR_CERT did not issue COUPOND_WALLET_APPLE_CERT \
                 (download the WWDR generation named in the certificate's issuer)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The detached signature of `manifest`: CMS SignedData (DER) with a SHA-256 RSA signature,
    /// the signing time, and the pass and WWDR certificates.
    pub fn sign(&self, manifest: &[u8]) -> Result<Vec<u8>, cms::builder::Error> {
        let digest = Sha256::digest(manifest);
        let content = EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        };
        let sha256 = AlgorithmIdentifierOwned {
            oid: ID_SHA_256,
            parameters: None,
        };
        let tbs = self.certificate.tbs_certificate();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        });
        let mut signer = SignerInfoBuilder::new(sid, sha256.clone(), &content, Some(&digest))?;
        signer.add_signed_attribute(create_signing_time_attribute()?)?;
        let signed = SignedDataBuilder::new(&content)
            .add_digest_algorithm(sha256)?
            .add_certificate(CertificateChoices::Certificate(self.certificate.clone()))?
            .add_certificate(CertificateChoices::Certificate(self.wwdr.clone()))?
            .add_signer_info::<_, Signature>(signer, &self.key)?
            .build()?;
        Ok(signed.to_der()?)
    }
}

/// The fields of a service account key file that signing needs.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
}

impl GoogleWallet {
    fn load(config: &WalletConfig) -> Result<Option<GoogleWallet>, SetupError> {
        const ACCOUNT: &str = "COUPOND_WALLET_GOOGLE_SERVICE_ACCOUNT";
        let Some(path) = &config.wallet_google_service_account else {
            return Ok(None);
        };
        let issuer_id = required(
            config.wallet_google_issuer_id.as_deref(),
            "COUPOND_WALLET_GOOGLE_ISSUER_ID",
            ACCOUNT,
        )?;
        let account: ServiceAccount = serde_json::from_str(&read(path, ACCOUNT)?).map_err(|e| {
            SetupError(format!(
                "{ACCOUNT}: {} is not a service account key file: {e}",
                path.display()
            ))
        })?;
        Ok(Some(GoogleWallet {
            ids: GoogleIds {
                issuer_id: issuer_id.to_string(),
                client_email: account.client_email,
            },
            key: rsa_key(&account.private_key, ACCOUNT)?,
        }))
    }

    /// The RS256 (RSASSA-PKCS1-v1_5 with SHA-256) signature of a JWT's signing input.
    pub fn sign(&self, signing_input: &str) -> Vec<u8> {
        self.key.sign(signing_input.as_bytes()).to_vec()
    }
}
