// The host's memory of each VM's snapshots: the generation of the last
// record it signed (HOSTDIR/vms/<uuid>.snapshot, written durably, so an
// older image put back is recognised) and that save's page hashes
// (HOSTDIR/vms/<uuid>.leaves, so a failed restore can name exact pages).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "merkle/merkle.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hoststate {

struct LedgerEntry {
    uint64_t generation = 0;
    Digest root{};
};

/// The text of a ledger file; the error names `source` and what is missing.
Result<LedgerEntry> parse_ledger_entry(std::string_view text, const std::string& source);

class Ledger {
public:
    explicit Ledger(std::string host_dir) : dir_(std::move(host_dir) + "/vms") {}
    /// The last record signed for `uuid`, nullopt when there is none.
    Result<std::optional<LedgerEntry>> latest(const std::string& uuid) const;
    /// Record a new save (durable before the record leaves the bridge).
    Result<void> commit(const std::string& uuid, const LedgerEntry& e) const;
    /// Keep the leaves of the save with `root` (best effort, not synced).
    void keep_leaves(const std::string& uuid, const std::vector<Digest>& leaves) const;
    /// The kept leaves if their Merkle root is `root`.
    std::optional<std::vector<Digest>> leaves_for(const std::string& uuid, const Digest& root) const;

private:
    std::string dir_;
};

}  // namespace vtpm::hoststate
