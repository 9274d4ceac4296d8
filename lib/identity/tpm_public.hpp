// TPM public areas (TPMT_PUBLIC) as OpenSSL keys.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include "identity/ossl.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::identity {

/// An RSA or ECC (NIST P-256/384/521) public area as an EVP_PKEY.
Result<PkeyPtr> pkey_from_tpm_public(const TPMT_PUBLIC& pub);

/// Unmarshal a TPM2B_PUBLIC (as it sits in a response) into TPMT_PUBLIC.
Result<TPMT_PUBLIC> unmarshal_tpm2b_public(ByteView data, size_t* consumed = nullptr);

/// A TPM 1.2 EK modulus (2048-bit RSA, exponent 65537) as an EVP_PKEY.
Result<PkeyPtr> pkey_from_rsa_modulus(ByteView modulus, uint32_t exponent = 65537);

}  // namespace vtpm::identity
