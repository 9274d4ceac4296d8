// One state file's bytes (what sits on disk as tpm2-00.permall etc.) <-> the
// plain libtpms blob, and the migration blobs of GET/SET_STATEBLOB
// (state-format.md §2.3 and §3). Pure apart from the random IV.
#pragma once

#include <cstdint>

#include "store/key.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::store {

/// control-channel state_flags bits.
inline constexpr uint32_t kStateFlagDecrypted = 1;
inline constexpr uint32_t kStateFlagEncrypted = 2;

/// Plain libtpms blob -> file bytes; encrypted when state_key is given.
Result<Bytes> encode_state_file(ByteView plain, const Key* state_key);

/// File bytes -> plain libtpms blob. With a key the file must be encrypted;
/// without one it must be plain. Files without a valid v2 header are read as
/// legacy version-1 files.
Result<SecureBytes> decode_state_file(ByteView file, const Key* state_key);

/// A blob as returned by CMD_GET_STATEBLOB with the response state_flags.
struct MigrationBlob {
    Bytes bytes;
    uint32_t state_flags = 0;
};

/// Wrap a plain libtpms blob for CMD_GET_STATEBLOB. `decrypted` = the client
/// asked for PTM_STATE_FLAG_DECRYPTED.
Result<MigrationBlob> encode_migration_blob(ByteView plain, const Key* state_key,
                                            const Key* migration_key, bool decrypted);

/// Unwrap a CMD_SET_STATEBLOB blob; `request_flags` are the request's
/// state_flags. rc::kKeyNotFound when a needed key is not configured.
Result<SecureBytes> decode_migration_blob(ByteView blob, uint32_t request_flags,
                                          const Key* state_key, const Key* migration_key);

}  // namespace vtpm::store
