// The host's memory of each VM's snapshots: for every VM the generation and
// root of the last record vtpm-hostd signed, in one file, HOSTDIR/ledger,
// that also names the value of the host TPM's ledger counter it belongs to
// (hosttpm/ledger_counter.hpp), so a ledger put back from a copy is found
// out. Each save's page hashes go beside it (HOSTDIR/vms/<uuid>.leaves, so a
// failed restore can name exact pages; not security-relevant).
//
//   counter = 42
//   vm = <uuid> <generation> <root hex> saved|restored
//   old = <uuid> <generation> <root hex>     (earlier saves, for a revert)
//   identity = <uuid> <generation> <vAIK name hex|-> <pending generation|->
//   ek = <uuid> <RSA EK SPKI SHA-256 hex|-> <ECC EK SPKI SHA-256 hex|->
//   ek_files = imported
//   ...
//   mac = <HMAC-SHA256 of the lines above, keyed by the daemon>
//
// The MAC makes an edited file useless; the counter makes an older copy of
// a genuine file useless. The identity lines are the VMs' uniqueness records
// (identity_records.hpp): kept here so that they are anchored too, and
// written out to HOSTDIR/vms/<uuid>.record for verifiers (--host-record).
// The ek lines are the VMs' EK bindings (ek_bindings.hpp), anchored for the
// same reason; `ek_files = imported` says the HOSTDIR/vms/<uuid>.ek files
// of older versions were taken in once and are never read again.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "hoststate/ek_bindings.hpp"
#include "hoststate/identity_records.hpp"
#include "merkle/merkle.hpp"
#include "util/secure_memory.hpp"
#include "vtpm/result.hpp"

namespace vtpm::hoststate {

/// The file's name under HOSTDIR.
inline constexpr const char* kLedgerFile = "ledger";

struct LedgerEntry {
    uint64_t generation = 0;
    Digest root{};
    bool restored = false;  // the save was restored and ran: it restores no more
};

/// Earlier saves kept per VM for `vtpm-host revert` (the newest ones).
inline constexpr size_t kLedgerHistory = 16;

/// What HOSTDIR/ledger holds.
struct LedgerBook {
    uint64_t counter = 0;  // the host TPM counter value this content belongs to
    std::map<std::string, LedgerEntry> vms;  // the latest save, by canonical UUID text
    std::map<std::string, std::vector<LedgerEntry>> history;  // earlier saves, oldest first
    std::map<std::string, IdentityRecord> identities;         // uniqueness records, by canonical UUID text
    std::map<std::string, EkBinding> ek_bindings;             // EK keys certified per VM, by canonical UUID text
    bool ek_files_imported = false;                           // HOSTDIR/vms/*.ek taken in (never read again)
};

/// Parse the ledger file's text (without its mac line); the error names
/// `source` and the line.
Result<LedgerBook> parse_ledger_book(std::string_view text, const std::string& source);
/// The file's text without the mac line (parse_ledger_book(format_ledger_book(b)) == b).
std::string format_ledger_book(const LedgerBook& b);

class Ledger {
public:
    /// `mac_key`: the daemon's key for the file's MAC (derived from its auth
    /// value; copied into protected memory).
    Ledger(std::string host_dir, ByteView mac_key) : dir_(std::move(host_dir)), mac_key_(mac_key) {}
    /// Read HOSTDIR/ledger into memory: false when there is none (a new
    /// host), an error when it is damaged or its MAC does not verify.
    Result<bool> load();
    const LedgerBook& book() const { return book_; }
    /// The last record signed for `uuid`, nullopt when there is none.
    std::optional<LedgerEntry> latest(const std::string& uuid) const;
    /// The generation a new save of `uuid` gets: one above any it had, so a
    /// number is never reused after a revert.
    uint64_t next_generation(const std::string& uuid) const;
    /// Record a new save and the counter value it will be anchored at, and
    /// write the file durably (before the record leaves). The caller moves
    /// the TPM counter to `counter` afterwards. The previous save goes to
    /// the history.
    Result<void> commit(const std::string& uuid, const LedgerEntry& e, uint64_t counter);
    /// The latest save (`generation`, `root`) was restored: mark it so.
    /// Errors name why not: another or no save, or restored already.
    Result<void> consume(const std::string& uuid, uint64_t generation, const Digest& root, uint64_t counter);
    /// Make save `generation` (the latest or one in the history) the latest
    /// again, not restored.
    Result<void> revert(const std::string& uuid, uint64_t generation, uint64_t counter);
    /// The VM's uniqueness record, nullopt when the ledger has none (none
    /// issued, or only a record file from before records were kept here).
    std::optional<IdentityRecord> identity(const std::string& uuid) const;
    /// Record `r` and the counter value it will be anchored at, and write
    /// the file durably. The caller moves the TPM counter to `counter`.
    Result<void> commit_identity(const IdentityRecord& r, uint64_t counter);
    /// The VM's EK binding; an empty one when the ledger has none.
    EkBinding ek_binding(const std::string& uuid) const;
    /// Record `b` as VM `uuid`'s EK binding and the counter value it will be
    /// anchored at, and write the file durably. The caller moves the TPM
    /// counter to `counter`.
    Result<void> commit_ek_binding(const std::string& uuid, const EkBinding& b, uint64_t counter);
    /// Take in the bindings read from older versions' HOSTDIR/vms/*.ek files
    /// (for VMs the ledger has none of) and mark the files as taken in, at
    /// `counter`. The caller moves the TPM counter there (unless it stands
    /// there already: a new host).
    Result<void> import_ek_files(const std::map<std::string, EkBinding>& files, uint64_t counter);
    /// Write a new host's ledger, empty, at `counter` (it has no older
    /// version's files to take in).
    Result<void> create(uint64_t counter);
    /// Keep the leaves of the save with `root` (best effort, not synced).
    void keep_leaves(const std::string& uuid, const std::vector<Digest>& leaves) const;
    /// The kept leaves if their Merkle root is `root`.
    std::optional<std::vector<Digest>> leaves_for(const std::string& uuid, const Digest& root) const;

private:
    Result<void> save(const LedgerBook& b) const;
    // `next` with `counter`, written durably, then in memory (left as it
    // was when the write fails).
    Result<void> replace_book(LedgerBook next, uint64_t counter);
    std::string mac_line(std::string_view body) const;
    std::string dir_;
    ProtectedBytes mac_key_;
    LedgerBook book_;
};

}  // namespace vtpm::hoststate
