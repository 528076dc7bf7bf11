//! SGX ECDSA quotes, versions 3 and 4 (SGX report body), parsed without trusting them.
//!
//! Layout (little-endian integers), from Intel's "SGX ECDSA Quote Library API" reference:
//!
//! ```text
//! 0    header (48)       version u16, att_key_type u16, tee_type u32 (v4; reserved in v3),
//!                        qe_svn u16, pce_svn u16, qe_vendor_id [16], user_data [20]
//! 48   report body (384) see `ReportBody`
//! 432  signature_data_len u32
//! 436  signature data    v3: isv_signature [64], attestation_key [64], qe_report [384],
//!                            qe_report_signature [64], qe_auth_data (u16 len + bytes),
//!                            certification data (u16 type, u32 len, bytes)
//!                        v4: isv_signature [64], attestation_key [64],
//!                            certification data of type 6 whose content is the v3 tail
//!                            from qe_report on
//! ```
//!
//! The header and body are shared with simulated quotes ([`crate::sim`]), which
//! replace the signature data; [`QuoteLayout`] is that common part. Parsing checks every
//! length against the input, allocates nothing, and rejects trailing bytes.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use custos_ids::{MrEnclave, MrSigner};

use crate::claims::ReportData;
use crate::error::ParseError;
use crate::reader::Reader;

/// Header length.
pub const HEADER_LEN: usize = 48;
/// SGX report body length.
pub const REPORT_BODY_LEN: usize = 384;
/// The bytes an SGX quote's attestation key signs: header and report body.
pub const SIGNED_LEN: usize = HEADER_LEN + REPORT_BODY_LEN;

/// Intel's quoting enclave vendor id (`939a7233-f79c-4ca9-940a-0db3957f0607`).
pub const INTEL_QE_VENDOR_ID: [u8; 16] = [
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07,
];
/// Attestation key type of ECDSA-256-with-P-256.
pub const ATT_KEY_TYPE_ECDSA_P256: u16 = 2;
/// TEE type of SGX in a version 4 header.
pub const TEE_TYPE_SGX: u32 = 0;
/// Certification data type: PCK certificate chain (PEM).
pub const CERT_DATA_PCK_CHAIN: u16 = 5;
/// Certification data type: QE report certification data (version 4 quotes).
pub const CERT_DATA_QE_REPORT: u16 = 6;

/// Attributes flag: the enclave is debuggable.
pub const ATTRIBUTE_DEBUG: u64 = 0x02;

/// The 48-byte quote header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteHeader {
    /// 3 or 4.
    pub version: u16,
    /// 2 for ECDSA P-256; [`crate::sim::SIM_ATT_KEY_TYPE`] for simulated quotes.
    pub att_key_type: u16,
    /// Version 4: the TEE type (0 = SGX). Version 3: reserved.
    pub tee_type: u32,
    /// Version 3: the quoting enclave's SVN. Version 4: reserved.
    pub qe_svn: u16,
    /// Version 3: the provisioning certification enclave's SVN. Version 4: reserved.
    pub pce_svn: u16,
    /// Who made the quoting enclave ([`INTEL_QE_VENDOR_ID`], or
    /// [`crate::sim::SIM_QE_VENDOR_ID`] for simulated quotes).
    pub qe_vendor_id: [u8; 16],
    /// Data of the quoting enclave (the platform id for Intel's).
    pub user_data: [u8; 20],
}

impl QuoteHeader {
    fn parse(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        Ok(Self {
            version: r.u16("header.version")?,
            att_key_type: r.u16("header.att_key_type")?,
            tee_type: r.u32("header.tee_type")?,
            qe_svn: r.u16("header.qe_svn")?,
            pce_svn: r.u16("header.pce_svn")?,
            qe_vendor_id: *r.array("header.qe_vendor_id")?,
            user_data: *r.array("header.user_data")?,
        })
    }

    /// The header bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        let mut w = Writer(&mut out[..]);
        w.put(&self.version.to_le_bytes());
        w.put(&self.att_key_type.to_le_bytes());
        w.put(&self.tee_type.to_le_bytes());
        w.put(&self.qe_svn.to_le_bytes());
        w.put(&self.pce_svn.to_le_bytes());
        w.put(&self.qe_vendor_id);
        w.put(&self.user_data);
        out
    }
}

/// The 384-byte SGX report body: the enclave's identity as the CPU measured it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBody {
    /// Security version of the CPU.
    pub cpu_svn: [u8; 16],
    /// Extended features the enclave uses (MISCSELECT).
    pub misc_select: u32,
    /// ISV extended product id.
    pub isv_ext_prod_id: [u8; 16],
    /// Attribute flags (bit 1 = debug).
    pub attributes_flags: u64,
    /// Enabled XSAVE features (XFRM).
    pub attributes_xfrm: u64,
    /// MRENCLAVE.
    pub mr_enclave: MrEnclave,
    /// MRSIGNER.
    pub mr_signer: MrSigner,
    /// Configuration id.
    pub config_id: [u8; 64],
    /// ISV product id.
    pub isv_prod_id: u16,
    /// ISV security version.
    pub isv_svn: u16,
    /// Configuration security version.
    pub config_svn: u16,
    /// ISV family id.
    pub isv_family_id: [u8; 16],
    /// Report data chosen by the enclave.
    pub report_data: ReportData,
}

impl ReportBody {
    /// Parses exactly [`REPORT_BODY_LEN`] bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ParseError> {
        let mut r = Reader::new(bytes);
        let body = Self::read(&mut r)?;
        r.finish("report body")?;
        Ok(body)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, ParseError> {
        let cpu_svn = *r.array("body.cpu_svn")?;
        let misc_select = r.u32("body.misc_select")?;
        r.bytes("body.reserved1", 12)?;
        let isv_ext_prod_id = *r.array("body.isv_ext_prod_id")?;
        let attributes_flags = r.u64("body.attributes.flags")?;
        let attributes_xfrm = r.u64("body.attributes.xfrm")?;
        let mr_enclave = MrEnclave(*r.array("body.mr_enclave")?);
        r.bytes("body.reserved2", 32)?;
        let mr_signer = MrSigner(*r.array("body.mr_signer")?);
        r.bytes("body.reserved3", 32)?;
        let config_id = *r.array("body.config_id")?;
        let isv_prod_id = r.u16("body.isv_prod_id")?;
        let isv_svn = r.u16("body.isv_svn")?;
        let config_svn = r.u16("body.config_svn")?;
        r.bytes("body.reserved4", 42)?;
        let isv_family_id = *r.array("body.isv_family_id")?;
        let report_data = ReportData(*r.array("body.report_data")?);
        Ok(Self {
            cpu_svn,
            misc_select,
            isv_ext_prod_id,
            attributes_flags,
            attributes_xfrm,
            mr_enclave,
            mr_signer,
            config_id,
            isv_prod_id,
            isv_svn,
            config_svn,
            isv_family_id,
            report_data,
        })
    }

    /// Whether the enclave was launched in debug mode (its memory is readable).
    pub fn is_debug(&self) -> bool {
        self.attributes_flags & ATTRIBUTE_DEBUG != 0
    }

    /// The body bytes (reserved fields zero).
    pub fn to_bytes(&self) -> [u8; REPORT_BODY_LEN] {
        let mut out = [0u8; REPORT_BODY_LEN];
        let mut w = Writer(&mut out[..]);
        w.put(&self.cpu_svn);
        w.put(&self.misc_select.to_le_bytes());
        w.put(&[0; 12]);
        w.put(&self.isv_ext_prod_id);
        w.put(&self.attributes_flags.to_le_bytes());
        w.put(&self.attributes_xfrm.to_le_bytes());
        w.put(self.mr_enclave.as_bytes());
        w.put(&[0; 32]);
        w.put(self.mr_signer.as_bytes());
        w.put(&[0; 32]);
        w.put(&self.config_id);
        w.put(&self.isv_prod_id.to_le_bytes());
        w.put(&self.isv_svn.to_le_bytes());
        w.put(&self.config_svn.to_le_bytes());
        w.put(&[0; 42]);
        w.put(&self.isv_family_id);
        w.put(self.report_data.as_bytes());
        out
    }
}

/// The part every quote-shaped evidence shares: header, report body, and the
/// signature data left to the kind-specific parser.
#[derive(Debug, Clone, Copy)]
pub struct QuoteLayout<'a> {
    /// The header.
    pub header: QuoteHeader,
    /// The enclave's report body.
    pub body: ReportBody,
    /// Header and body bytes: what the quote's signature covers.
    pub signed: &'a [u8],
    /// The signature data (after its u32 length), exactly as long as declared.
    pub signature_data: &'a [u8],
}

impl<'a> QuoteLayout<'a> {
    /// Parses header, body and length-delimited signature data, checking only lengths,
    /// the version (3 or 4) and, for version 4, the SGX TEE type.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let signed = bytes.get(..SIGNED_LEN).ok_or(ParseError::Truncated {
            field: "header and report body",
            offset: 0,
            needed: SIGNED_LEN,
            available: bytes.len(),
        })?;
        let mut r = Reader::new(bytes);
        let header = QuoteHeader::parse(&mut r)?;
        match header.version {
            3 => {}
            4 if header.tee_type == TEE_TYPE_SGX => {}
            4 => return Err(ParseError::UnsupportedTeeType(header.tee_type)),
            v => return Err(ParseError::UnsupportedQuoteVersion(v)),
        }
        let body = ReportBody::read(&mut r)?;
        let sig_len = r.u32("signature_data_len")?;
        let signature_data = r.bytes_with_len("signature_data", u64::from(sig_len))?;
        r.finish("signature_data")?;
        Ok(Self {
            header,
            body,
            signed,
            signature_data,
        })
    }
}

/// A parsed SGX ECDSA quote (v3, or v4 with an SGX body). Parsing establishes only
/// that the bytes are well formed: nothing in it is authenticated yet.
#[derive(Debug, Clone, Copy)]
pub struct Quote<'a> {
    /// The header.
    pub header: QuoteHeader,
    /// The enclave's report body.
    pub body: ReportBody,
    /// The bytes the attestation key signed (header and body).
    pub signed: &'a [u8],
    /// ECDSA P-256 signature (r ‖ s) over `signed` by the attestation key.
    pub isv_signature: &'a [u8; 64],
    /// The attestation key (x ‖ y).
    pub attestation_key: &'a [u8; 64],
    /// The quoting enclave's report, vouching for the attestation key.
    pub qe_report: ReportBody,
    /// The raw QE report, as signed by the PCK.
    pub qe_report_raw: &'a [u8],
    /// ECDSA P-256 signature of the QE report by the PCK.
    pub qe_report_signature: &'a [u8; 64],
    /// QE authentication data (hashed into the QE report with the attestation key).
    pub qe_auth_data: &'a [u8],
    /// The certification data: type 5 holds the PCK certificate chain in PEM.
    pub certification: CertificationData<'a>,
}

/// Certification data: how to find the PCK certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificationData<'a> {
    /// The type (5 = PCK certificate chain).
    pub kind: u16,
    /// The content.
    pub data: &'a [u8],
}

impl CertificationData<'_> {
    /// The PEM PCK certificate chain (leaf first), when the type is 5.
    pub fn pck_chain_pem(&self) -> Option<&[u8]> {
        (self.kind == CERT_DATA_PCK_CHAIN).then_some(self.data)
    }
}

impl<'a> Quote<'a> {
    /// Parses an SGX ECDSA quote. Rejects simulated quotes, TDX quotes and anything
    /// malformed.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ParseError> {
        let layout = QuoteLayout::parse(bytes)?;
        Self::from_layout(layout)
    }

    /// Parses the ECDSA signature data of an already split quote.
    pub fn from_layout(layout: QuoteLayout<'a>) -> Result<Self, ParseError> {
        let QuoteLayout {
            header,
            body,
            signed,
            signature_data,
        } = layout;
        if header.att_key_type != ATT_KEY_TYPE_ECDSA_P256 {
            return Err(ParseError::UnsupportedAttestationKeyType(
                header.att_key_type,
            ));
        }
        let mut r = Reader::new(signature_data);
        let isv_signature = r.array("isv_signature")?;
        let attestation_key = r.array("attestation_key")?;
        let tail = if header.version == 3 {
            QeTail::read(&mut r)?
        } else {
            let kind = r.u16("certification_data.type")?;
            if kind != CERT_DATA_QE_REPORT {
                return Err(ParseError::UnexpectedCertificationDataType {
                    field: "certification_data",
                    expected: "6 (QE report certification data)",
                    found: kind,
                });
            }
            let len = r.u32("certification_data.size")?;
            let data = r.bytes_with_len("certification_data", u64::from(len))?;
            let mut inner = Reader::new(data);
            let tail = QeTail::read(&mut inner)?;
            inner.finish("QE report certification data")?;
            tail
        };
        r.finish("signature data")?;
        Ok(Self {
            header,
            body,
            signed,
            isv_signature,
            attestation_key,
            qe_report: ReportBody::parse(tail.qe_report_raw)?,
            qe_report_raw: tail.qe_report_raw,
            qe_report_signature: tail.qe_report_signature,
            qe_auth_data: tail.qe_auth_data,
            certification: tail.certification,
        })
    }
}

/// QE report, its signature, QE auth data and certification data.
struct QeTail<'a> {
    qe_report_raw: &'a [u8],
    qe_report_signature: &'a [u8; 64],
    qe_auth_data: &'a [u8],
    certification: CertificationData<'a>,
}

impl<'a> QeTail<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self, ParseError> {
        let qe_report_raw = r.bytes("qe_report", REPORT_BODY_LEN)?;
        let qe_report_signature = r.array("qe_report_signature")?;
        let auth_len = r.u16("qe_auth_data.size")?;
        let qe_auth_data = r.bytes("qe_auth_data", usize::from(auth_len))?;
        let kind = r.u16("qe_certification_data.type")?;
        let len = r.u32("qe_certification_data.size")?;
        let data = r.bytes_with_len("qe_certification_data", u64::from(len))?;
        Ok(Self {
            qe_report_raw,
            qe_report_signature,
            qe_auth_data,
            certification: CertificationData { kind, data },
        })
    }
}

/// Writes into a fixed buffer; callers size the buffer for what they write.
struct Writer<'b>(&'b mut [u8]);

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let buf = std::mem::take(&mut self.0);
        let (head, tail) = buf.split_at_mut(bytes.len().min(buf.len()));
        head.copy_from_slice(bytes.get(..head.len()).unwrap_or_default());
        self.0 = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_body() -> ReportBody {
        ReportBody {
            cpu_svn: [1; 16],
            misc_select: 2,
            isv_ext_prod_id: [3; 16],
            attributes_flags: 0x07,
            attributes_xfrm: 0x03,
            mr_enclave: MrEnclave([4; 32]),
            mr_signer: MrSigner([5; 32]),
            config_id: [6; 64],
            isv_prod_id: 7,
            isv_svn: 8,
            config_svn: 9,
            isv_family_id: [10; 16],
            report_data: ReportData([11; 64]),
        }
    }

    #[test]
    fn report_body_round_trips() {
        let body = sample_body();
        let bytes = body.to_bytes();
        assert_eq!(ReportBody::parse(&bytes).unwrap(), body);
        assert!(body.is_debug());
        assert_eq!(&bytes[64..96], &[4; 32]);
        assert_eq!(&bytes[128..160], &[5; 32]);
        assert_eq!(&bytes[256..260], &[7, 0, 8, 0]);
        assert_eq!(&bytes[320..], &[11; 64]);
    }

    #[test]
    fn layout_rejects_tdx_and_unknown_versions() {
        let mut header = QuoteHeader {
            version: 4,
            att_key_type: 2,
            tee_type: 0x81,
            qe_svn: 0,
            pce_svn: 0,
            qe_vendor_id: INTEL_QE_VENDOR_ID,
            user_data: [0; 20],
        };
        let mut quote = header.to_bytes().to_vec();
        quote.extend_from_slice(&sample_body().to_bytes());
        quote.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(
            QuoteLayout::parse(&quote).unwrap_err(),
            ParseError::UnsupportedTeeType(0x81)
        );
        header.version = 5;
        quote[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        assert_eq!(
            QuoteLayout::parse(&quote).unwrap_err(),
            ParseError::UnsupportedQuoteVersion(5)
        );
        header.version = 3;
        quote[..HEADER_LEN].copy_from_slice(&header.to_bytes());
        let layout = QuoteLayout::parse(&quote).unwrap();
        assert!(layout.signature_data.is_empty());
        // An empty signature data is not an ECDSA quote.
        assert!(matches!(
            Quote::from_layout(layout),
            Err(ParseError::Truncated {
                field: "isv_signature",
                ..
            })
        ));
        quote.push(0);
        assert!(matches!(
            QuoteLayout::parse(&quote),
            Err(ParseError::TrailingBytes { count: 1, .. })
        ));
    }

    #[test]
    fn huge_declared_lengths_are_truncation_errors_not_allocations() {
        let mut quote = QuoteHeader {
            version: 3,
            att_key_type: 2,
            tee_type: 0,
            qe_svn: 0,
            pce_svn: 0,
            qe_vendor_id: INTEL_QE_VENDOR_ID,
            user_data: [0; 20],
        }
        .to_bytes()
        .to_vec();
        quote.extend_from_slice(&sample_body().to_bytes());
        quote.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = QuoteLayout::parse(&quote).unwrap_err();
        assert_eq!(
            err,
            ParseError::Truncated {
                field: "signature_data",
                offset: 436,
                needed: u32::MAX as usize,
                available: 0
            }
        );
    }
}
