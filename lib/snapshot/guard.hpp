// vPCR save/restore with guest-memory verification. The guard is a blob
// filter of the bridge core: when QEMU fetches the volatile state (save) it
// hashes guest RAM and makes and signs a record that travels inside that
// blob; when QEMU sets it again (restore) it checks the record and re-hashes
// guest RAM before the vPCRs are given back.
#pragma once

#include <sys/types.h>

#include <array>
#include <memory>
#include <optional>
#include <string>

#include "core/blob_filter.hpp"
#include "engine/engine.hpp"
#include "snapshot/guest_memory.hpp"
#include "hoststate/ledger.hpp"
#include "snapshot/record.hpp"
#include "snapshot/record_signer.hpp"

namespace vtpm::snapshot {

/// A digest handed over by a patched QEMU (CMD_VTPM_RAM_DIGEST).
struct QemuDigest {
    uint64_t page_count = 0;
    Digest root{};
};

/// CMD_VTPM_RAM_DIGEST phases. Final: the incoming stream is complete and
/// no vCPU has run yet (the digest for the final verification).
inline constexpr uint32_t kPhaseSave = 1, kPhaseRestore = 2, kPhaseFinal = 3;

/// What a restore that passed (or was let through) needs afterwards.
struct Verdict {
    bool taint = false;  // extend the vPCRs after CMD_INIT so they never attest as good
};

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
    /// verify=before-run: a restore checked at SET_STATEBLOB gets no TPM
    /// command until the final verification (verify_before_run) passed.
    /// Off (verify=load), the first command only logs that it did not run.
    bool verify_before_run = false;
};

class SnapshotGuard final : public core::BlobFilter {
public:
    /// `signer` may be null (no host key: records cannot be made or trusted);
    /// `ledger` goes with it.
    SnapshotGuard(GuardConfig cfg, std::unique_ptr<RecordSigner> signer, std::unique_ptr<SnapshotLedger> ledger);

    const GuardConfig& config() const { return cfg_; }
    /// A patched QEMU's RAM digest for the next save (phase 1) or restore (2).
    void set_qemu_digest(uint32_t phase, const QemuDigest& d);
    /// Save: the record for the volatile state `volatile_plain`, or nullopt
    /// when verification is off or impossible (logged). Errors when
    /// verification is required, and while a restore awaits its final
    /// verification under verify=before-run (a record then would sign guest
    /// RAM nobody checked).
    Result<std::optional<Bytes>> make_record(engine::Engine& e, ByteView permanent_plain, ByteView volatile_plain);
    /// The record for the TPM's state now (CMD_VTPM_SNAPSHOT).
    Result<std::optional<Bytes>> make_record_now(engine::Engine& e);
    /// Restore: check `record` (nullopt: the blob had none) against the blobs
    /// just set and guest RAM. An error means refuse; its message names what
    /// differs.
    Result<Verdict> check_restore(std::optional<ByteView> record, const Digest& permanent_digest,
                                  ByteView volatile_plain);
    /// The taint action, once the TPM runs on the restored state.
    Result<void> taint(engine::Engine& e);
    /// The final verification of a restore (CMD_VTPM_VERIFY_RAM, or QEMU's
    /// phase-3 digest): the whole incoming stream is loaded and no vCPU ran
    /// yet, so guest RAM must still be what the record checked at
    /// SET_STATEBLOB says. Success is logged ("snapshot record verified
    /// before run"). On a mismatch the error names the first differing
    /// pages and the policy acts: refuse answers every TPM command with
    /// TPM_FAILURE until a later restore is verified, and the restore's
    /// state writes (held since SET_STATEBLOB) never reach the disk; taint
    /// extends the vPCRs. Also an error when there is
    /// nothing to verify (no restore checked at load, or the guest ran).
    Result<void> verify_before_run(engine::Engine& e);

    // core::BlobFilter
    void set_peer_pid(pid_t pid) override { peer_pid_ = pid; }
    Result<void> on_export(engine::Engine& e, engine::BlobType type, ByteView plain, Bytes& blob) override;
    Result<void> on_import(engine::Engine& e, engine::BlobType type, ByteView blob, ByteView plain) override;
    Result<void> before_init(engine::Engine& e) override;
    Result<void> after_init(engine::Engine& e) override;
    void before_power_off(engine::Engine& e) override;
    void end_restore() override;
    Result<void> admit_tpm_command(engine::Engine& e) override;
    Result<void> admit_store_volatile(engine::Engine& e) override;

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
    /// Tell the host ledger the restore of `r` is in use (it restores once).
    Result<void> consume(const SnapshotRecord& r);
    /// The permanent state CMD_INIT would start from: the blob set in this
    /// restore, else the one on disk.
    Digest starting_permanent(engine::Engine& e) const;
    /// A restore without a record to check (`what` says which part is
    /// missing): refused (or tainted) once this host has signed a snapshot
    /// of the VM, else skipped as swtpm would (refused when required).
    Result<Verdict> record_missing(const std::string& what);
    /// `event` (a reset, a power-off) ends the wait of the restore the TPM
    /// runs on: from here its state is the TPM's, so it is consumed
    /// (verify=load); with verify=before-run, before its final verification,
    /// it is dropped and the TPM refused. An error means refused, except
    /// a failed consumption at a power-off, which keeps the state (logged).
    Result<void> settle_awaiting(engine::Engine& e, const std::string& event, bool power_off);
    /// A save while the restore the TPM runs on awaits its final
    /// verification: refused with verify=before-run; with verify=load the
    /// restore counts as run (consumed, as at the guest's first command).
    Result<void> settle_before_record(engine::Engine& e);
    /// "the restore of VM U generation G" for `awaiting_`, in messages.
    std::string awaiting_restore() const;
    /// The awaiting restore is put to use without a final verification
    /// (verify=load) at `at`: consumed in the ledger, its held writes
    /// written. A ledger that does not take it refuses the restore.
    Result<void> use_awaiting(engine::Engine& e, const char* at);
    /// The restore is refused: its held writes dropped, no automatic
    /// TPM2_Shutdown, every TPM command answered TPM_FAILURE.
    void refuse_restore(engine::Engine& e);
    /// CMD_INIT without a restore: a volatile state in the state directory
    /// (CMD_STORE_VOLATILE's, or one a restore by swtpm left) would give the
    /// TPM vPCRs that no record covers: judged as a restore without one.
    Result<void> check_volatile_on_disk(engine::Engine& e);

    GuardConfig cfg_;
    std::unique_ptr<RecordSigner> signer_;
    std::unique_ptr<SnapshotLedger> ledger_;
    // Restore in progress: the permanent blob set so far, and whether the
    // vPCRs must be tainted once CMD_INIT brings the TPM up.
    std::optional<Digest> restored_permanent_;
    bool taint_at_init_ = false;
    bool restore_blobs_ = false;     // a blob was set since the last CMD_INIT
    bool volatile_checked_ = false;  // ... and a volatile blob passed check_restore
    pid_t peer_pid_ = 0;
    std::optional<GuestMemory> mapped_;  // kept between uses while it is the same memory
    std::optional<QemuDigest> qemu_save_, qemu_restore_, qemu_final_;
    // The final verification: the record checked at SET_STATEBLOB of the
    // restore in progress (candidate), and of the restore the TPM runs on
    // until its final verification or its first command (awaiting).
    std::optional<SnapshotRecord> candidate_, awaiting_;
    bool awaiting_verified_ = false;  // the final verification of `awaiting_` passed
    bool refused_ = false;            // a final verification failed (policy refuse)
    bool gate_logged_ = false;        // the first command after the restore was logged
};

}  // namespace vtpm::snapshot
