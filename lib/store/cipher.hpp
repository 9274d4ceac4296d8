// swtpm's blob encryption: AES-CBC with its own padding, a random IV of key
// length, and HMAC-SHA256(key, ciphertext || iv) (state-format.md §2.4).
#pragma once

#include "store/key.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::store {

/// Encrypt `plain` and return the TLV records
/// TLV(ct_tag, ciphertext) TLV(kTagHmac, hmac) TLV(iv_tag, iv).
Result<Bytes> encrypt_to_tlvs(const Key& key, ByteView plain, uint16_t ct_tag, uint16_t iv_tag);

/// Find ct_tag/kTagHmac/iv_tag in `tlvs`, verify the HMAC (rc::kDecryptError
/// on mismatch), decrypt and strip the padding (rc::kDecryptError if bad).
Result<SecureBytes> decrypt_from_tlvs(const Key& key, ByteView tlvs, uint16_t ct_tag, uint16_t iv_tag);

/// Legacy version-1 files: whole payload AES-CBC with zero IV, plaintext is
/// SHA-256(data) || data.
Result<SecureBytes> decrypt_legacy_v1(const Key& key, ByteView payload);

}  // namespace vtpm::store
