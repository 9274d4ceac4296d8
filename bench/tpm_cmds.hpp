// TPM 2.0 commands for the benchmark, marshalled with tss2-mu.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <vector>

namespace bench {

using Bytes = std::vector<uint8_t>;

Bytes get_random(uint16_t n);
Bytes pcr_extend(TPM2_HANDLE pcr, uint8_t fill);
Bytes pcr_read(uint32_t pcr_mask);
/// Restricted ECDSA P-256 signing key (usable for Quote). Primary keys are
/// derived from the hierarchy seed and the template: `variant` goes into the
/// template's unique field so each value yields a different key.
Bytes create_primary_ecc(uint32_t variant = 0);
/// RSA-2048 restricted decryption (storage) key; see create_primary_ecc.
Bytes create_primary_rsa(uint32_t variant = 0);
Bytes flush_context(TPM2_HANDLE h);
Bytes quote(TPM2_HANDLE key, uint32_t pcr_mask);
Bytes nv_define(TPM2_HANDLE index, uint16_t size);
Bytes nv_write(TPM2_HANDLE index, uint16_t size, uint8_t fill);

uint32_t response_code(const Bytes& rsp);
/// Handle returned by CreatePrimary (right after the header).
TPM2_HANDLE response_handle(const Bytes& rsp);

}  // namespace bench
