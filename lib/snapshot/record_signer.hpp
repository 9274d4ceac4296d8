// Who vouches for snapshot records: a key held by the host TPM. The record
// is signed with TPM2_Sign by the host's AuthKey (non-migratable, usable only
// while the host PCRs are as provisioned) and checked in software against its
// public key, so only this host, in its measured state, can make a record.
#pragma once

#include <memory>
#include <string>

#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::snapshot {

class RecordSigner {
public:
    virtual ~RecordSigner() = default;
    /// TPM name of the signing key (recorded, and compared on restore).
    virtual const Bytes& key_name() const = 0;
    /// Marshalled TPMT_SIGNATURE over SHA-256(message).
    virtual Result<Bytes> sign(ByteView message) = 0;
    /// Check a signature made by the key named `key_name` over `message`;
    /// the error says whether the key is unknown here or the signature bad.
    virtual Result<void> verify(ByteView key_name, ByteView message, ByteView signature) const = 0;
    virtual std::string describe() const = 0;
};

/// The AuthKey of the host whose files are in `host_dir` (vtpm-host
/// provision), reached through `tcti` for signing.
Result<std::unique_ptr<RecordSigner>> open_host_signer(const std::string& host_dir, const std::string& tcti);

}  // namespace vtpm::snapshot
