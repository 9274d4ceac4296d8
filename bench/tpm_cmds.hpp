// TPM 2.0 commands used by the benchmark, marshalled with tss2-mu, and the
// few response fields it reads back.
#pragma once

#include <tss2/tss2_tpm2_types.h>

#include <cstdint>
#include <vector>

#include "tpm/commands.hpp"
#include "vtpm/result.hpp"

namespace bench {

using Bytes = std::vector<uint8_t>;

/// TPM2_GetRandom(bytes).
vtpm::Result<Bytes> cmd_get_random(uint16_t bytes);
/// TPM2_PCR_Extend of one SHA-256 digest (32 × `fill`), empty-password session.
vtpm::Result<Bytes> cmd_pcr_extend(TPM2_HANDLE pcr, uint8_t fill);
/// TPM2_PCR_Read of one SHA-256 PCR.
vtpm::Result<Bytes> cmd_pcr_read(uint32_t pcr);
/// TPM2_CreatePrimary in the owner hierarchy of a restricted ECDSA P-256
/// signing key (usable for Quote). `variant` goes into the template's unique
/// field: every value derives a different key, the same value the same key.
vtpm::Result<Bytes> cmd_create_primary_ecc(uint32_t variant);
/// TPM2_CreatePrimary of an RSA-2048 restricted decryption (storage) key,
/// AES-128-CFB; `variant` as for the ECC key.
vtpm::Result<Bytes> cmd_create_primary_rsa(uint32_t variant);
vtpm::Result<Bytes> cmd_flush_context(TPM2_HANDLE handle);
/// TPM2_Quote over one SHA-256 PCR with the key's own scheme and a 16-byte nonce.
vtpm::Result<Bytes> cmd_quote(TPM2_HANDLE key, uint32_t pcr);
/// TPM2_NV_DefineSpace of an owner read/write ordinary index, empty auth.
vtpm::Result<Bytes> cmd_nv_define(TPM2_HANDLE index, uint16_t size);
/// TPM2_NV_Write of `size` × `fill` at offset 0, authorised by the owner.
vtpm::Result<Bytes> cmd_nv_write(TPM2_HANDLE index, uint16_t size, uint8_t fill);

/// Response code of a response: the TPM layer's.
using vtpm::tpm::response_code;
/// Handle returned by CreatePrimary (through tpm::parse_create_primary).
vtpm::Result<TPM2_HANDLE> response_handle(const Bytes& rsp);
/// Size of the TPM2B_DIGEST returned by GetRandom.
vtpm::Result<uint16_t> random_bytes_returned(const Bytes& rsp);

}  // namespace bench
