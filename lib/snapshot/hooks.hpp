// The seam between the control channel and snapshot verification: what the
// dispatcher calls on save and restore. SnapshotGuard (guard.hpp) is the
// implementation; the dispatcher works without one, exactly as swtpm.
#pragma once

#include <sys/types.h>

#include <optional>

#include "engine/engine.hpp"
#include "snapshot/merkle.hpp"
#include "util/bytes.hpp"
#include "vtpm/result.hpp"

namespace vtpm::snapshot {

/// A digest handed over by a patched QEMU (CMD_VTPM_RAM_DIGEST).
struct QemuDigest {
    uint64_t page_count = 0;
    Digest root{};
};

/// CMD_VTPM_RAM_DIGEST phases.
inline constexpr uint32_t kPhaseSave = 1, kPhaseRestore = 2;

/// What a restore that passed (or was let through) needs afterwards.
struct Verdict {
    bool taint = false;  // extend the vPCRs after CMD_INIT so they never attest as good
};

class SnapshotHooks {
public:
    virtual ~SnapshotHooks() = default;
    /// The process at the other end of the control connection (QEMU), 0 if unknown.
    virtual void set_peer_pid(pid_t pid) = 0;
    /// A patched QEMU's RAM digest for the next save (phase 1) or restore (2).
    virtual void set_qemu_digest(uint32_t phase, const QemuDigest& d) = 0;
    /// Save: the record to attach to the volatile blob, or nullopt when
    /// verification is off or impossible (logged). An error fails the save.
    virtual Result<std::optional<Bytes>> make_record(engine::Engine& e, ByteView permanent_plain,
                                                     ByteView volatile_plain) = 0;
    /// Restore: check `record` (nullopt: the blob had none) against the blobs
    /// just set and guest RAM. An error means refuse; its message names what
    /// differs.
    virtual Result<Verdict> check_restore(std::optional<ByteView> record, const Digest& permanent_digest,
                                          ByteView volatile_plain) = 0;
    /// The taint action, once the TPM runs on the restored state.
    virtual Result<void> taint(engine::Engine& e) = 0;
};

}  // namespace vtpm::snapshot
