// Uniqueness of VM identities: the host keeps one record
// per VM — the identity generation it last issued and the vAIK's name — and
// the vTPM carries the same generation in NV. A cloned state directory or an
// older copy put back has a generation the record does not expect, so no
// second valid identity is issued for it. vtpm-hostd keeps the records in
// its ledger (ledger.hpp, anchored in the host TPM's counter) and writes
// each out as HOSTDIR/vms/<uuid>.record for verifiers (--host-record).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "util/bytes.hpp"
#include "util/fd.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hoststate {

struct IdentityRecord {
    std::string vm_uuid;
    uint64_t generation = 0;
    Bytes vaik_name;
    /// Set while an issuance is in flight: the vTPM may already hold it.
    std::optional<uint64_t> pending;
};

/// Text form ("key = value" lines).
std::string format_identity_record(const IdentityRecord& r);
Result<IdentityRecord> parse_identity_record(std::string_view text);

/// The record files of one host, HOSTDIR/vms/<uuid>.record, written for
/// verifiers (the daemon reads its ledger, never these), durably, under an
/// exclusive lock on HOSTDIR/vms/.lock.
class IdentityRecords {
public:
    /// Open (creating HOSTDIR/vms) and take the lock.
    static Result<IdentityRecords> open_locked(const std::string& host_dir);
    /// Write `r` to its file (temp file, fsync, rename).
    Result<void> save(const IdentityRecord& r) const;
    /// Where the record of `uuid` is written.
    std::string path_of(const std::string& uuid) const;

private:
    IdentityRecords(std::string dir, UniqueFd lock) : dir_(std::move(dir)), lock_(std::move(lock)) {}
    std::string dir_;
    UniqueFd lock_;
};

/// The generation an issuance certifies: past the vTPM's, the host's last
/// and one still pending, so two issuances (two copies of one state asking
/// in turn) never certify the same generation.
uint64_t next_identity_generation(const std::optional<IdentityRecord>& rec, uint64_t vtpm_generation);

/// What the vTPM's generation says about a record. Empty when consistent;
/// otherwise the reason the state is a clone or an older copy.
std::optional<std::string> generation_clash(const std::optional<IdentityRecord>& rec, uint64_t vtpm_generation,
                                            const std::optional<Bytes>& vtpm_vaik_name);

}  // namespace vtpm::hoststate
