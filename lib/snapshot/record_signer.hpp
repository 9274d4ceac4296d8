// Who vouches for snapshot records, and who remembers them: the host's
// AuthKey (in the hardware TPM, used only by vtpm-hostd) signs each record
// after the daemon checked it and moved the VM's ledger to its generation;
// records are checked here in software against the AuthKey's public key.
// The bridge reaches both through the daemon's socket and never the TPM.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "hoststate/ledger.hpp"
#include "snapshot/record.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::snapshot {

class RecordSigner {
public:
    virtual ~RecordSigner() = default;
    /// TPM name of the signing key (recorded, and compared on restore).
    virtual const Bytes& key_name() const = 0;
    /// Marshalled TPMT_SIGNATURE over SHA-256(signed_message(r)). The signer
    /// sees the whole record: it signs records, never a digest it is handed.
    virtual Result<Bytes> sign(const SnapshotRecord& r) = 0;
    /// Check a signature made by the key named `key_name` over `message`;
    /// the error says whether the key is unknown here or the signature bad.
    virtual Result<void> verify(ByteView key_name, ByteView message, ByteView signature) const = 0;
    virtual std::string describe() const = 0;
};

/// The host's memory of each VM's snapshots (hoststate::Ledger, kept by the
/// daemon).
class SnapshotLedger {
public:
    virtual ~SnapshotLedger() = default;
    /// The last record signed for `uuid`, nullopt when there is none.
    virtual Result<std::optional<hoststate::LedgerEntry>> latest(const std::string& uuid) const = 0;
    /// The host holds `e` as the VM's latest save (the daemon commits when it
    /// signs).
    virtual Result<void> commit(const std::string& uuid, const hoststate::LedgerEntry& e) const = 0;
    /// The latest save (`generation`, `root`) was restored and its TPM runs:
    /// it restores no more. An error when it was restored already or is not
    /// the latest.
    virtual Result<void> consume(const std::string& uuid, uint64_t generation, const Digest& root) const = 0;
    /// Keep the page hashes of the save with `root` (best effort).
    virtual void keep_leaves(const std::string& uuid, const Digest& root, const std::vector<Digest>& leaves) const = 0;
    /// The kept page hashes if their Merkle root is `root`.
    virtual std::optional<std::vector<Digest>> leaves_for(const std::string& uuid, const Digest& root) const = 0;
};

struct HostAuthority {
    std::unique_ptr<RecordSigner> signer;
    std::unique_ptr<SnapshotLedger> ledger;
};

/// The host daemon listening on `socket_path`: its AuthKey (public part
/// fetched now) and its ledger. An error names the socket and why.
Result<HostAuthority> connect_host_daemon(const std::string& socket_path);

}  // namespace vtpm::snapshot
