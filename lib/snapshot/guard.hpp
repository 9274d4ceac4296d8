// vPCR save/restore with guest-memory verification (design.md §1, seed 002
// step 1). The control-channel dispatcher calls the guard when QEMU fetches
// the volatile state (save: hash guest RAM, make and sign a record that
// travels inside that blob) and when QEMU sets it again (restore: check the
// record and re-hash guest RAM before the vPCRs are given back).
#pragma once

#include <sys/types.h>

#include <array>
#include <memory>
#include <optional>
#include <string>

#include "engine/engine.hpp"
#include "snapshot/guest_memory.hpp"
#include "snapshot/hooks.hpp"
#include "snapshot/ledger.hpp"
#include "snapshot/record.hpp"
#include "snapshot/record_signer.hpp"

namespace vtpm::snapshot {

/// What a restore that fails verification does.
enum class Policy {
    Refuse,  // SET_STATEBLOB fails with a message naming what differs; nothing changes
    Taint,   // the vTPM comes up with vPCRs extended so they never attest as good
    Skip,    // no records, no checks: exactly swtpm
};
Result<Policy> parse_policy(std::string_view text);
std::string_view policy_name(Policy p);

struct GuardConfig {
    Policy policy = Policy::Refuse;
    /// Refuse (rather than skip with a log line) when verification is not
    /// possible: no guest memory, no record, no host key, no VM UUID.
    bool required = false;
    std::optional<std::array<uint8_t, 16>> vm_uuid;
    /// Guest RAM: a file (memory-backend-file mem-path), or else QEMU's
    /// mappings found through the control socket's peer.
    std::string memory_path;
    bool memory_from_peer = false;
    /// Hashing threads (0: one per CPU).
    unsigned threads = 0;
};

class SnapshotGuard final : public SnapshotHooks {
public:
    /// `signer` may be null (no host key: records cannot be made or trusted);
    /// `ledger` goes with it.
    SnapshotGuard(GuardConfig cfg, std::unique_ptr<RecordSigner> signer, std::optional<Ledger> ledger);

    const GuardConfig& config() const { return cfg_; }
    void set_peer_pid(pid_t pid) override { peer_pid_ = pid; }
    void set_qemu_digest(uint32_t phase, const QemuDigest& d) override;
    /// Errors only when verification is required.
    Result<std::optional<Bytes>> make_record(engine::Engine& e, ByteView permanent_plain,
                                             ByteView volatile_plain) override;
    Result<Verdict> check_restore(std::optional<ByteView> record, const Digest& permanent_digest,
                                  ByteView volatile_plain) override;
    Result<void> taint(engine::Engine& e) override;

private:
    struct MemoryDigest {
        DigestSource source = DigestSource::MappedMemory;
        PageDigests pages;
        uint64_t page_count = 0;
        std::string where;
    };
    /// Hash guest RAM (or take QEMU's digest for `phase`); an error says why
    /// there is none.
    Result<MemoryDigest> digest_memory(DigestSource want, uint32_t phase);
    Result<GuestMemory*> memory();
    /// Apply the policy to a failed check.
    Result<Verdict> failed(const std::string& why);
    /// Verification could not run: skip (logged) or, when required, refuse.
    Result<Verdict> not_checked(const std::string& why);
    std::string first_differences(const SnapshotRecord& r, const PageDigests& now);

    GuardConfig cfg_;
    std::unique_ptr<RecordSigner> signer_;
    std::optional<Ledger> ledger_;
    pid_t peer_pid_ = 0;
    std::optional<GuestMemory> mapped_;  // kept between uses while it is the same memory
    std::optional<QemuDigest> qemu_save_, qemu_restore_;
};

}  // namespace vtpm::snapshot
