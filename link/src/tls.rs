//! TLS for QUIC. Identity is *not* established here: each endpoint uses a
//! throwaway self-signed certificate and accepts any certificate. What TLS
//! gives the link is encryption and a per-connection exporter secret that
//! the Noise handshake binds to.

use std::sync::Arc;

use alp_protocol::ALPN;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::settings::LinkSettings;

/// The one crypto provider of the whole binary: aws-lc-rs, which the
/// handshake's X25519 and SHA-256 use too.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// TLS or certificate setup failed (a bug or a broken build, not input).
#[derive(Debug, thiserror::Error)]
#[error("TLS setup failed: {0}")]
pub struct TlsSetupError(String);

fn err(e: impl std::fmt::Display) -> TlsSetupError {
    TlsSetupError(e.to_string())
}

/// Bytes a peer may have in flight towards this node on one connection.
pub const CONNECTION_WINDOW: u32 = 4 << 20;

/// QUIC transport parameters shared by both roles.
pub fn transport(settings: &LinkSettings) -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    let idle =
        quinn::IdleTimeout::try_from(settings.idle_timeout).unwrap_or(quinn::IdleTimeout::from(quinn::VarInt::MAX));
    t.max_idle_timeout(Some(idle));
    t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(settings.max_streams));
    t.max_concurrent_uni_streams(quinn::VarInt::from_u32(0));
    // What a peer can make QUIC buffer here, whatever it sends: a bounded
    // window per connection (each stream's stays quinn's 1.25 MB), and no
    // datagrams, which alp does not use.
    t.receive_window(quinn::VarInt::from_u32(CONNECTION_WINDOW));
    t.datagram_receive_buffer_size(None);
    Arc::new(t)
}

/// A server config with a fresh self-signed Ed25519 certificate.
pub fn server_config(settings: &LinkSettings) -> Result<quinn::ServerConfig, TlsSetupError> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).map_err(err)?;
    let cert = rcgen::CertificateParams::new(vec!["alp".to_owned()]).map_err(err)?.self_signed(&key).map_err(err)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key)
        .map_err(err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(err)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    config.transport_config(transport(settings));
    Ok(config)
}

/// A client config that accepts any certificate (see the module docs).
pub fn client_config(settings: &LinkSettings) -> Result<quinn::ClientConfig, TlsSetupError> {
    let provider = provider();
    let verifier = AnyCertificate(provider.signature_verification_algorithms);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(err)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(transport(settings));
    Ok(config)
}

/// Accepts any certificate, but still checks that the server holds the key
/// of the certificate it presented.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
