// TPM public areas (TPMT_PUBLIC) as OpenSSL keys.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include "util/ossl.hpp"
#include "tpm/objects.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::tpm {

/// An RSA or ECC (NIST P-256/384/521) public area as an EVP_PKEY.
Result<PkeyPtr> pkey_from_tpm_public(const TPMT_PUBLIC& pub);

/// A TPM 1.2 EK modulus (2048-bit RSA, exponent 65537) as an EVP_PKEY.
Result<PkeyPtr> pkey_from_rsa_modulus(ByteView modulus, uint32_t exponent = 65537);

}  // namespace vtpm::tpm
