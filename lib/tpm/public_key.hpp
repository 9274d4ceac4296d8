// TPM public areas (TPMT_PUBLIC) as OpenSSL keys.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <string>

#include "util/ossl.hpp"
#include "tpm/objects.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::tpm {

/// An RSA or ECC (NIST P-256/384/521) public area as an EVP_PKEY.
Result<PkeyPtr> pkey_from_tpm_public(const TPMT_PUBLIC& pub);

/// A key from PEM text: a private key when `want_private`, else a public
/// key (a private key's public part is accepted too). `what` names it in
/// errors.
Result<PkeyPtr> parse_pem_key(ByteView pem, bool want_private, const std::string& what);

/// The host owner's policy key (an EC P-256 key) as the TPM public area
/// TPM2_LoadExternal loads and PolicyAuthorize names: sign, userWithAuth,
/// ECDSA-SHA256. One fixed encoding, so every side derives the same name.
Result<TPMT_PUBLIC> owner_public(EVP_PKEY* key);

/// ECDSA-SHA256 over `message` by the private `key`, as a TPMT_SIGNATURE
/// (what TPM2_VerifySignature takes for an approval).
Result<TPMT_SIGNATURE> sign_ecdsa_sha256(EVP_PKEY* key, ByteView message);

/// A TPM 1.2 EK modulus (2048-bit RSA, exponent 65537) as an EVP_PKEY.
Result<PkeyPtr> pkey_from_rsa_modulus(ByteView modulus, uint32_t exponent = 65537);

}  // namespace vtpm::tpm
